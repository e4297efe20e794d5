import { errors } from "./errors.js";

/**
 * Deepest nesting a request body may have. Real requests nest a few levels; a body nested thousands deep (10 kB of
 * "[[[[…") parses fine, but overflows the stack when its decoded input is copied to a worker thread (structured
 * clone is recursive), which turned client input into a 500.
 */
export const MAX_BODY_DEPTH = 128;

/** Throw a 400 if a parsed JSON body nests deeper than `maxDepth`. Iterative: the check itself cannot overflow. */
export function checkBodyDepth(body: unknown, maxDepth = MAX_BODY_DEPTH): void {
  const stack: [object, number][] = [];
  if (body !== null && typeof body === "object") stack.push([body, 1]);
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (depth > maxDepth) {
      throw errors.badRequest(`The JSON body is nested more than ${maxDepth} levels deep`, "nested_too_deep");
    }
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
    }
  }
}
