import { errors } from "../api/errors.js";
import { latin1String, printableAscii } from "./latin1-string.js";

/**
 * Deepest nesting a request body may have. Real requests nest a few levels; a body nested thousands deep (10 kB of
 * "[[[[…") parses fine, but overflows the stack when its decoded input is copied to a worker thread (structured
 * clone is recursive), which turned client input into a 500.
 */
export const MAX_BODY_DEPTH = 128;

/**
 * String values at least this long are lifted out of a Buffer body before JSON.parse (see liftLongStrings). Below it
 * the plain path is as fast: V8 allocates short strings in its young generation, and only strings over 128 KiB land
 * in large-object space, where each one is a fresh mapping.
 */
const LONG_STRING_BYTES = 16 * 1024;

export interface JsonBodyOptions {
  maxDepth?: number;
  /** Override of LONG_STRING_BYTES (tests lift every string to exercise the path). */
  longStringBytes?: number;
}

/**
 * The server's JSON body parser: JSON.parse, then one iterative walk that refuses bodies nested deeper than
 * `maxDepth` and prototype-poisoning keys (an own `__proto__`, or a `constructor` holding a `prototype`), whatever
 * escapes spelled them. fastify's default parser finds those keys by running two regular expressions over the whole
 * text, which for an image body costs more than the walk (docs/performance.md); the walk visits a handful of nodes
 * for such a body.
 *
 * A Buffer body (what the server passes) has its long plain string values — a base64 image — lifted out first, so
 * the text JSON.parse reads is a small skeleton and each long value becomes a string once, straight from the bytes.
 * The plain path makes three 200 kB strings per image body (the decoded body, JSON.parse's copy, the flattening of
 * a chunked body), each a fresh mapping whose pages fault in: on a virtual machine that was milliseconds per request.
 */
export function parseJsonBody(body: string | Buffer, options: JsonBodyOptions = {}): unknown {
  const maxDepth = options.maxDepth ?? MAX_BODY_DEPTH;
  const lifted = typeof body === "string" ? undefined : liftLongStrings(body, options.longStringBytes ?? LONG_STRING_BYTES);
  let text = lifted ? lifted.skeleton : typeof body === "string" ? body : body.toString("utf8");
  // A leading byte-order mark is not JSON, but RFC 8259 lets parsers ignore it and fastify's parser (secure-json-parse)
  // did: bodies saved by Windows tools start with one. Found by the differential fuzz (test/json-body-fuzz.test.ts).
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // The skeleton's error would point into the skeleton: the whole body's own error says where the client's text is wrong.
    if (lifted) return parseJsonBody((body as Buffer).toString("utf8"), { maxDepth });
    if (text.trim() === "") throw errors.badRequest("The request body is empty: send a JSON document", "empty_body");
    throw errors.badRequest(`The body is not valid JSON: ${(error as Error).message}`, "invalid_json");
  }
  const restore = lifted && lifted.values.length > 0 ? lifted : undefined;
  if (restore && typeof parsed === "string") return restore.value(parsed);
  const stack: [object, number][] = [];
  if (parsed !== null && typeof parsed === "object") stack.push([parsed, 1]);
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (depth > maxDepth) {
      throw errors.badRequest(`The JSON body is nested more than ${maxDepth} levels deep`, "nested_too_deep");
    }
    if (Object.hasOwn(value, "__proto__") || isObject((value as { constructor?: unknown }).constructor, "prototype")) {
      throw errors.badRequest("The JSON body has a forbidden key (__proto__, or constructor.prototype)", "forbidden_key");
    }
    const record = value as Record<string | number, unknown>;
    const visit = (key: string | number) => {
      const child = record[key];
      if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
      else if (restore && typeof child === "string") record[key] = restore.value(child);
    };
    if (Array.isArray(value)) for (let i = 0; i < value.length; i++) visit(i);
    else for (const key of Object.keys(value)) visit(key);
  }
  return parsed;
}

/** A process-wide random tag: a placeholder is "<tag><n>", which a client cannot guess to forge (see liftLongStrings). */
const PLACEHOLDER_TAG = `\\u0000batchwise-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}:`;
const PLACEHOLDER_PREFIX = JSON.parse(`"${PLACEHOLDER_TAG}"`) as string;

interface LiftedStrings {
  skeleton: string;
  values: string[];
  /** The lifted value a placeholder stands for; any other string as it is. */
  value(text: string): string;
}

/**
 * Copy the body into a skeleton where each long string VALUE (not a key) that is plain printable ASCII — no escapes,
 * no control or non-ASCII bytes, so its bytes are its characters — is replaced by a placeholder, and read those values
 * straight from the bytes (latin1String: in place where the native addon is built, else one latin1 decode each).
 * Anything else (escapes, UTF-8, keys, short strings) stays in the skeleton for JSON.parse, so what the caller gets
 * is exactly JSON.parse(body) (checked by the differential fuzz).
 * Returns undefined when nothing is worth lifting (the caller parses the text as usual).
 */
function liftLongStrings(body: Buffer, minBytes: number): LiftedStrings | undefined {
  if (body.length < minBytes + 2) return undefined;
  const values: string[] = [];
  const parts: string[] = [];
  let copied = 0;
  let position = 0;
  for (;;) {
    const open = body.indexOf(QUOTE, position);
    if (open < 0) break;
    const close = closingQuote(body, open);
    if (close < 0) break; // unterminated: JSON.parse reports it
    position = close + 1;
    if (close - open - 1 < minBytes || !isPlainValue(body, open, close)) continue;
    const value = latin1String(body, open + 1, close);
    parts.push(body.toString("utf8", copied, open), `"${PLACEHOLDER_TAG}${values.length}"`);
    values.push(value);
    copied = close + 1;
  }
  if (values.length === 0) return undefined;
  parts.push(body.toString("utf8", copied));
  return {
    skeleton: parts.join(""),
    values,
    value(text) {
      if (!text.startsWith(PLACEHOLDER_PREFIX)) return text;
      const lifted = values[Number(text.slice(PLACEHOLDER_PREFIX.length))];
      return lifted ?? text;
    },
  };
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The index of the quote that closes the string opened at `open` (one preceded by an even run of backslashes), or -1. */
function closingQuote(body: Buffer, open: number): number {
  let close = body.indexOf(QUOTE, open + 1);
  while (close > 0) {
    let backslashes = 0;
    while (body[close - 1 - backslashes] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return close;
    close = body.indexOf(QUOTE, close + 1);
  }
  return -1;
}

/**
 * The string between `open` and `close` is printable ASCII without escapes, and is a value (no colon follows it).
 * One that is not stays in the skeleton, where JSON.parse reads it (or reports a raw control character in it).
 */
function isPlainValue(body: Buffer, open: number, close: number): boolean {
  if (body.subarray(open + 1, close).indexOf(BACKSLASH) >= 0 || !printableAscii(body, open + 1, close)) return false;
  let next = close + 1;
  while (next < body.length && (body[next] === 0x20 || body[next] === 0x0a || body[next] === 0x0d || body[next] === 0x09)) next++;
  return body[next] !== 0x3a; // a key: keys stay in the skeleton
}

/** An own property `key` of a plain parsed object (inherited `constructor`s, i.e. Object, do not count). */
function isObject(value: unknown, key: string): boolean {
  return value !== null && typeof value === "object" && Object.hasOwn(value, key);
}
