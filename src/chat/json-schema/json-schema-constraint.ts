/**
 * A JSON Schema (the subset structured output needs) compiled into a character-level automaton that says, one
 * character at a time, whether the text so far is still the prefix of a JSON value matching the schema.
 *
 * States are immutable linked stacks of small frames, so checking a token is "feed its characters to the current
 * state" with no copying, and a state inside a plain string is returned unchanged by a plain character (the state
 * after `"abc` is the very object after `"a`): the per-state mask cache of the constrained sampler hits on it.
 *
 * Supported: type (one or a list of distinct types) object/array/string/number/integer/boolean/null, properties,
 * required, additionalProperties (false, or a schema for objects without properties), items, minItems, maxItems,
 * enum, const, anyOf (alternatives that begin with different characters), and annotations (title, description, …).
 * Anything else is refused by {@link compileSchema} with an {@link UnsupportedSchemaError} naming the keywords, so a
 * request never gets output that silently ignores part of its schema.
 *
 * Outputs are kept sane for JSON.parse: numbers have at most 15 integer, 6 fraction and 2 exponent digits, and
 * nothing may follow the value (the sampler then only allows end-of-sequence).
 */

export type SchemaNode =
  | { id: number; kind: "object"; props: { name: string; node: SchemaNode }[]; required: number; open: SchemaNode | null }
  | { id: number; kind: "array"; items: SchemaNode; minItems: number; maxItems: number }
  | { id: number; kind: "string" }
  | { id: number; kind: "number"; integer: boolean }
  | { id: number; kind: "literal"; options: string[] }
  | { id: number; kind: "union"; alternatives: SchemaNode[] };

export class UnsupportedSchemaError extends Error {
  constructor(message: string, readonly keywords: string[]) {
    super(message);
    this.name = "UnsupportedSchemaError";
  }
}

/** Keywords that describe but do not constrain: accepted and ignored. */
const ANNOTATIONS = new Set(["title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly"]);
const SUPPORTED: Record<string, Set<string>> = {
  object: new Set(["type", "properties", "required", "additionalProperties"]),
  array: new Set(["type", "items", "minItems", "maxItems"]),
  string: new Set(["type"]),
  number: new Set(["type"]),
  integer: new Set(["type"]),
  boolean: new Set(["type"]),
  null: new Set(["type"]),
};
/** Most properties one object schema may declare (the used ones are a bit mask). */
const MAX_PROPERTIES = 30;

/** `pointer.key`, dotted: JSON pointers look like file paths to the error cleaner and would be masked. */
const child = (pointer: string, key: string) => (pointer ? `${pointer}.${key}` : key);

/** One compilation: hands out node ids and collects every keyword it cannot enforce. */
class SchemaCompiler {
  private nextId = 0;
  readonly unsupported: string[] = [];

  private refuse(pointer: string, keyword: string): void {
    this.unsupported.push(child(pointer, keyword));
  }

  compile(s: unknown, pointer: string): SchemaNode {
    if (s === undefined || s === null || s === true) return this.anyValue();
    if (typeof s !== "object" || Array.isArray(s)) {
      this.refuse(pointer, "(not an object schema)");
      return this.anyValue();
    }
    const o = s as Record<string, unknown>;
    if ("enum" in o || "const" in o) return this.literal(o, pointer);
    if ("anyOf" in o) {
      for (const key of Object.keys(o)) if (!ANNOTATIONS.has(key) && key !== "anyOf") this.refuse(pointer, key);
      const list = Array.isArray(o.anyOf) ? o.anyOf : [];
      return this.union(list.map((alt, i) => this.compile(alt, child(pointer, `anyOf.${i}`))), child(pointer, "anyOf"));
    }
    const types = o.type === undefined ? undefined : Array.isArray(o.type) ? o.type : [o.type];
    if (types === undefined) {
      for (const key of Object.keys(o)) if (!ANNOTATIONS.has(key)) this.refuse(pointer, key);
      return this.anyValue();
    }
    const nodes = types.map((type) => {
      if (typeof type !== "string" || !SUPPORTED[type]) {
        this.refuse(pointer, `type ${JSON.stringify(type)}`);
        return this.anyValue();
      }
      return this.typed(type, o, pointer);
    });
    for (const key of Object.keys(o)) {
      if (!ANNOTATIONS.has(key) && !types.some((t) => typeof t === "string" && SUPPORTED[t]?.has(key))) this.refuse(pointer, key);
    }
    return nodes.length === 1 ? nodes[0] : this.union(nodes, child(pointer, "type"));
  }

  /** `enum` or `const`: one of the listed values, written as JSON. */
  private literal(o: Record<string, unknown>, pointer: string): SchemaNode {
    for (const key of Object.keys(o)) if (!ANNOTATIONS.has(key) && key !== "enum" && key !== "const" && key !== "type") this.refuse(pointer, key);
    const values = "const" in o ? [o.const] : Array.isArray(o.enum) ? o.enum : [];
    if (values.length === 0) this.refuse(pointer, "enum (must be a non-empty list)");
    return { id: this.nextId++, kind: "literal", options: [...new Set(values.map((v) => JSON.stringify(v)))] };
  }

  /** Any JSON value; its object values and array elements are any values again (the node refers to itself). */
  private anyValue(): SchemaNode {
    const alternatives: SchemaNode[] = [];
    const node: SchemaNode = { id: this.nextId++, kind: "union", alternatives };
    alternatives.push(
      { id: this.nextId++, kind: "object", props: [], required: 0, open: node },
      { id: this.nextId++, kind: "array", items: node, minItems: 0, maxItems: Infinity },
      { id: this.nextId++, kind: "string" },
      { id: this.nextId++, kind: "number", integer: false },
      { id: this.nextId++, kind: "literal", options: ["true", "false", "null"] },
    );
    return node;
  }

  private typed(type: string, o: Record<string, unknown>, pointer: string): SchemaNode {
    switch (type) {
      case "object":
        return this.object(o, pointer);
      case "array": {
        const minItems = nonNegativeInt(o.minItems, 0);
        const maxItems = nonNegativeInt(o.maxItems, Infinity);
        if (Number.isNaN(minItems) || Number.isNaN(maxItems) || minItems > maxItems) this.refuse(pointer, "minItems/maxItems");
        if (Array.isArray(o.items)) this.refuse(pointer, "items (tuple form)");
        return { id: this.nextId++, kind: "array", items: this.compile(o.items, child(pointer, "items")), minItems, maxItems };
      }
      case "string":
        return { id: this.nextId++, kind: "string" };
      case "number":
      case "integer":
        return { id: this.nextId++, kind: "number", integer: type === "integer" };
      case "boolean":
        return { id: this.nextId++, kind: "literal", options: ["true", "false"] };
      default:
        return { id: this.nextId++, kind: "literal", options: ["null"] };
    }
  }

  private object(o: Record<string, unknown>, pointer: string): SchemaNode {
    const properties = (o.properties ?? {}) as Record<string, unknown>;
    if (typeof properties !== "object" || Array.isArray(properties)) this.refuse(pointer, "properties (must be an object)");
    const names = Object.keys(properties);
    if (names.length > MAX_PROPERTIES) this.refuse(pointer, `properties (more than ${MAX_PROPERTIES})`);
    for (const name of names) if (/["\\\u0000-\u001f]/.test(name)) this.refuse(pointer, `properties (name ${JSON.stringify(name)} needs escaping)`);
    const props = names.map((name) => ({ name, node: this.compile(properties[name], child(pointer, `properties.${name}`)) }));
    const requiredList = (o.required ?? []) as unknown[];
    let required = 0;
    if (!Array.isArray(requiredList)) this.refuse(pointer, "required (must be a list)");
    else {
      for (const name of requiredList) {
        const index = names.indexOf(name as string);
        if (index < 0) this.refuse(pointer, `required (${JSON.stringify(name)} is not a property)`);
        else required |= 1 << index;
      }
    }
    const additional = o.additionalProperties;
    let open: SchemaNode | null = null;
    if (names.length === 0) {
      // No declared properties: keys are free, values follow additionalProperties (any when absent or true).
      if (additional === false) open = null;
      else open = additional === undefined || additional === true ? this.anyValue() : this.compile(additional, child(pointer, "additionalProperties"));
    } else if (additional !== undefined && additional !== false && additional !== true) {
      this.refuse(pointer, "additionalProperties (a schema beside properties)");
    }
    // With properties, only the declared keys are generated: a valid subset of what additionalProperties allows.
    return { id: this.nextId++, kind: "object", props, required, open };
  }

  private union(alternatives: SchemaNode[], pointer: string): SchemaNode {
    const seen = new Set<string>();
    for (const alt of alternatives) {
      for (const c of firstChars(alt)) {
        if (seen.has(c)) {
          this.refuse(pointer, "(alternatives that can begin with the same character)");
          return alternatives[0] ?? this.anyValue();
        }
        seen.add(c);
      }
    }
    if (alternatives.length === 0) this.refuse(pointer, "(empty)");
    return { id: this.nextId++, kind: "union", alternatives };
  }
}

/**
 * Compile a JSON Schema into automaton nodes. `null`/`undefined`/`true`/`{}` = any JSON value. Throws
 * {@link UnsupportedSchemaError} listing every keyword it cannot enforce, with its path (`properties.a.pattern`).
 */
export function compileSchema(schema: unknown): SchemaNode {
  const compiler = new SchemaCompiler();
  const root = compiler.compile(schema, "");
  if (compiler.unsupported.length > 0) {
    throw new UnsupportedSchemaError(
      `The JSON schema uses keywords constrained decoding cannot enforce: ${compiler.unsupported.join(", ")}`,
      compiler.unsupported,
    );
  }
  return root;
}

function nonNegativeInt(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : Number.NaN;
}

function firstChars(node: SchemaNode): string[] {
  switch (node.kind) {
    case "object":
      return ["{"];
    case "array":
      return ["["];
    case "string":
      return ['"'];
    case "number":
      return ["-", ..."0123456789"];
    case "literal":
      return [...new Set(node.options.map((o) => o[0]))];
    case "union":
      return node.alternatives.flatMap(firstChars);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The automaton. A state is a stack of frames (top first); every transition returns a new state or null.

type Frame =
  /** Expecting a value (whitespace may come first). */
  | { k: 0; node: SchemaNode }
  /**
   * Inside an object. phase 0: after `{`; 1: after `,`; 2: in a key (declared keys: `key` holds the prefix so
   * far; free keys: a string frame is above); 3: after a key; 4: in a value (a frame is above); 5: after a value.
   */
  | { k: 1; node: Extract<SchemaNode, { kind: "object" }>; phase: number; used: number; key: string; current: number }
  /** Inside an array. phase 0: after `[`; 1: after `,`; 2: after an element; 3: in an element. */
  | { k: 2; node: Extract<SchemaNode, { kind: "array" }>; phase: number; count: number }
  /** Inside a string. esc 0: plain; 1: after `\`; 2–5: in `\u` expecting hex digit esc-1 of 4. */
  | { k: 3; esc: number }
  /** Inside a number: phase of the JSON number grammar and digits in the current part. */
  | { k: 4; integer: boolean; phase: number; digits: number }
  /** Inside one of a set of literal texts (true/false/null, enum values as JSON). */
  | { k: 5; options: string[]; typed: string }
  /** The value is complete: nothing more may follow. */
  | { k: 6 };

export interface JsonState {
  readonly f: Frame;
  readonly up: JsonState | null;
  /** Whitespace characters just fed between two tokens of JSON (bounded by MAX_WHITESPACE). */
  readonly ws?: number;
}

/**
 * Most whitespace characters in a row between JSON tokens: enough for a newline and indentation, while a model
 * that favours whitespace (the random test model does) cannot spend its whole budget on it.
 */
const MAX_WHITESPACE = 8;

function whitespace(state: JsonState): JsonState | null {
  const ws = state.ws ?? 0;
  return ws >= MAX_WHITESPACE ? null : { f: state.f, up: state.up, ws: ws + 1 };
}

const DONE: JsonState = { f: { k: 6 }, up: null };
const PLAIN_STRING: Frame = { k: 3, esc: 0 };

export function initialState(node: SchemaNode): JsonState {
  return { f: { k: 0, node }, up: null };
}

const isWs = (c: string) => c === " " || c === "\n" || c === "\t" || c === "\r";
const isDigit = (c: string) => c >= "0" && c <= "9";
const isHex = (c: string) => isDigit(c) || (c >= "a" && c <= "f") || (c >= "A" && c <= "F");
const push = (f: Frame, up: JsonState | null): JsonState => ({ f, up });

/** The state after one more character, or null when it cannot continue a matching value. */
export function feed(state: JsonState, c: string): JsonState | null {
  const f = state.f;
  switch (f.k) {
    case 0:
      return isWs(c) ? whitespace(state) : startValue(f.node, c, state.up);
    case 1:
      return feedObject(f, c, state);
    case 2:
      return feedArray(f, c, state);
    case 3:
      if (f.esc === 0) {
        if (c === '"') return complete(state.up);
        if (c === "\\") return push({ k: 3, esc: 1 }, state.up);
        return c.charCodeAt(0) < 0x20 ? null : state;
      }
      if (f.esc === 1) {
        if (c === "u") return push({ k: 3, esc: 2 }, state.up);
        return '"\\/bfnrt'.includes(c) ? push(PLAIN_STRING, state.up) : null;
      }
      if (!isHex(c)) return null;
      return push(f.esc === 5 ? PLAIN_STRING : { k: 3, esc: f.esc + 1 }, state.up);
    case 4: {
      const next = numberStep(f, c);
      if (next) return push(next, state.up);
      return numberEnds(f.phase) ? continueAfter(state.up, c) : null;
    }
    case 5: {
      const typed = f.typed + c;
      const options = f.options.filter((o) => o.startsWith(typed));
      if (options.length > 0) return push({ k: 5, options, typed }, state.up);
      return f.options.includes(f.typed) ? continueAfter(state.up, c) : null;
    }
    case 6:
      return null;
  }
}

/** A number or literal ended because `c` cannot extend it: the value is complete and `c` goes to its parent. */
function continueAfter(up: JsonState | null, c: string): JsonState | null {
  return feed(complete(up), c);
}

/** The parent's state once the value on top of it is complete. */
function complete(up: JsonState | null): JsonState {
  if (up === null) return DONE;
  const f = up.f;
  if (f.k === 1) return push({ ...f, phase: f.phase === 2 ? 3 : 5 }, up.up);
  if (f.k === 2) return push({ k: 2, node: f.node, phase: 2, count: f.count + 1 }, up.up);
  return up; // unreachable: only objects and arrays hold values
}

function startValue(node: SchemaNode, c: string, up: JsonState | null): JsonState | null {
  switch (node.kind) {
    case "object":
      return c === "{" ? push({ k: 1, node, phase: 0, used: 0, key: "", current: -1 }, up) : null;
    case "array":
      return c === "[" ? push({ k: 2, node, phase: 0, count: 0 }, up) : null;
    case "string":
      return c === '"' ? push(PLAIN_STRING, up) : null;
    case "number": {
      const f = numberStep({ k: 4, integer: node.integer, phase: 0, digits: 0 }, c);
      return f ? push(f, up) : null;
    }
    case "literal": {
      const options = node.options.filter((o) => o[0] === c);
      return options.length > 0 ? push({ k: 5, options, typed: c }, up) : null;
    }
    case "union":
      for (const alt of node.alternatives) {
        const s = startValue(alt, c, up);
        if (s) return s;
      }
      return null;
  }
}

const LIMITS = { int: 15, frac: 6, exp: 2 };

/**
 * JSON numbers: phase 0 start, 1 after `-`, 2 after a leading 0, 3 integer digits, 4 after `.`, 5 fraction digits,
 * 6 after `e`, 7 after the exponent sign, 8 exponent digits. Phases 2, 3, 5 and 8 may end the number.
 */
function numberStep(f: Extract<Frame, { k: 4 }>, c: string): Extract<Frame, { k: 4 }> | null {
  const to = (phase: number, digits = 0) => ({ k: 4 as const, integer: f.integer, phase, digits });
  const digit = isDigit(c);
  switch (f.phase) {
    case 0:
      if (c === "-") return to(1);
    // fallthrough: a digit starts the integer part as after a minus
    case 1:
      if (c === "0") return to(2, 1);
      return digit ? to(3, 1) : null;
    case 2:
    case 3:
      if (digit && f.phase === 3 && f.digits < LIMITS.int) return to(3, f.digits + 1);
      if (f.integer) return null;
      if (c === ".") return to(4);
      return c === "e" || c === "E" ? to(6) : null;
    case 4:
      return digit ? to(5, 1) : null;
    case 5:
      if (digit && f.digits < LIMITS.frac) return to(5, f.digits + 1);
      return c === "e" || c === "E" ? to(6) : null;
    case 6:
      if (c === "+" || c === "-") return to(7);
    // fallthrough
    case 7:
      return digit ? to(8, 1) : null;
    case 8:
      return digit && f.digits < LIMITS.exp ? to(8, f.digits + 1) : null;
  }
  return null;
}

const numberEnds = (phase: number) => phase === 2 || phase === 3 || phase === 5 || phase === 8;

type ObjectFrame = Extract<Frame, { k: 1 }>;

function remainingKeys(f: ObjectFrame): number[] {
  const out: number[] = [];
  for (let i = 0; i < f.node.props.length; i++) if (!(f.used & (1 << i))) out.push(i);
  return out;
}

const requiredDone = (f: ObjectFrame) => (f.node.required & ~f.used) === 0;

function feedObject(f: ObjectFrame, c: string, state: JsonState): JsonState | null {
  const node = f.node;
  const declared = node.props.length > 0;
  switch (f.phase) {
    case 0:
    case 1:
      if (isWs(c)) return whitespace(state);
      if (c === '"') {
        if (declared) return remainingKeys(f).length > 0 ? push({ ...f, phase: 2, key: "" }, state.up) : null;
        return node.open ? push(PLAIN_STRING, push({ ...f, phase: 2 }, state.up)) : null;
      }
      return c === "}" && f.phase === 0 && requiredDone(f) ? complete(state.up) : null;
    case 2: {
      // Declared keys only (a free key has a string frame above this one).
      if (c === '"') {
        const index = node.props.findIndex((p, i) => !(f.used & (1 << i)) && p.name === f.key);
        return index < 0 ? null : push({ ...f, phase: 3, used: f.used | (1 << index), current: index }, state.up);
      }
      const key = f.key + c;
      return node.props.some((p, i) => !(f.used & (1 << i)) && p.name.startsWith(key)) ? push({ ...f, key }, state.up) : null;
    }
    case 3:
      if (isWs(c)) return whitespace(state);
      if (c !== ":") return null;
      return push({ k: 0, node: declared ? node.props[f.current].node : node.open! }, push({ ...f, phase: 4 }, state.up));
    case 5:
      if (isWs(c)) return whitespace(state);
      if (c === ",") return !declared || remainingKeys(f).length > 0 ? push({ ...f, phase: 1, key: "" }, state.up) : null;
      return c === "}" && requiredDone(f) ? complete(state.up) : null;
  }
  return null;
}

function feedArray(f: Extract<Frame, { k: 2 }>, c: string, state: JsonState): JsonState | null {
  if (isWs(c)) return f.phase === 3 ? null : whitespace(state);
  const element = () => (f.count < f.node.maxItems ? startValue(f.node.items, c, push({ ...f, phase: 3 }, state.up)) : null);
  switch (f.phase) {
    case 0:
      if (c === "]") return f.node.minItems === 0 ? complete(state.up) : null;
      return element();
    case 1:
      return element();
    case 2:
      if (c === ",") return f.count < f.node.maxItems ? push({ ...f, phase: 1 }, state.up) : null;
      return c === "]" && f.count >= f.node.minItems ? complete(state.up) : null;
  }
  return null;
}

/** The value is complete here (end of sequence may come now). */
export function canEnd(state: JsonState): boolean {
  const f = state.f;
  if (f.k === 6) return true;
  if (f.k === 4) return numberEnds(f.phase) && canEnd(complete(state.up));
  if (f.k === 5) return f.options.includes(f.typed) && canEnd(complete(state.up));
  return false;
}

/** The value is complete and nothing else can follow (only end of sequence is left). */
export const isDone = (state: JsonState) => state.f.k === 6;

/**
 * The shortest text that completes a matching value from this state (deterministic, so that after emitting a
 * prefix of it, the completion of the new state is the rest). The sampler forces it when the token budget runs out.
 */
export function completion(state: JsonState): string {
  let text = "";
  let s: JsonState | null = state;
  while (s !== null && s.f.k !== 6) {
    const f: Frame = s.f;
    switch (f.k) {
      case 0:
        text += minimal(f.node);
        break;
      case 1:
        text += finishObject(f);
        break;
      case 2:
        if (f.phase === 1) text += minimal(f.node.items) + repeat("," + minimal(f.node.items), f.node.minItems - f.count - 1) + "]";
        else if (f.phase === 0) text += f.node.minItems > 0 ? [...Array(f.node.minItems)].map(() => minimal(f.node.items)).join(",") + "]" : "]";
        else text += repeat("," + minimal(f.node.items), f.node.minItems - f.count) + "]";
        break;
      case 3:
        text += f.esc === 0 ? '"' : f.esc === 1 ? 'n"' : "0".repeat(6 - f.esc) + '"';
        break;
      case 4:
        text += numberEnds(f.phase) ? "" : "0";
        break;
      case 5: {
        const rest = shortest(f.options.filter((o) => o.startsWith(f.typed)));
        text += rest.slice(f.typed.length);
        break;
      }
    }
    // Whatever was on top is now complete; its parent continues after the value (an object: after a key or value).
    s = s.up === null ? null : complete(s.up);
    // complete() moved an object in phase 2 (free key) to 3, or in phase 4 to 5; arrays to 2. Loop finishes those.
  }
  return text;
}

function finishObject(f: ObjectFrame): string {
  const node = f.node;
  const missing = (used: number) =>
    node.props
      .map((p, i) => ({ p, i }))
      .filter(({ i }) => node.required & (1 << i) && !(used & (1 << i)))
      .map(({ p }) => `"${p.name}":${minimal(p.node)}`);
  const declared = node.props.length > 0;
  switch (f.phase) {
    case 0:
      return missing(f.used).join(",") + "}";
    case 1: {
      const keys = missing(f.used);
      if (keys.length > 0) return keys.join(",") + "}";
      if (!declared) return `"":${minimal(node.open!)}}`;
      const first = remainingKeys(f)[0];
      return `"${node.props[first].name}":${minimal(node.props[first].node)}}`;
    }
    case 2: {
      const candidates = remainingKeys(f).filter((i) => node.props[i].name.startsWith(f.key));
      const pick = candidates.find((i) => node.required & (1 << i)) ?? candidates[0];
      const after = missing(f.used | (1 << pick));
      return `${node.props[pick].name.slice(f.key.length)}":${minimal(node.props[pick].node)}${after.map((k) => "," + k).join("")}}`;
    }
    case 3: {
      const value = declared ? node.props[f.current].node : node.open!;
      return `:${minimal(value)}${missing(f.used).map((k) => "," + k).join("")}}`;
    }
    default:
      return missing(f.used).map((k) => "," + k).join("") + "}";
  }
}

const minimalCache = new WeakMap<SchemaNode, string>();

/** The shortest JSON text of a value matching the node. */
function minimal(node: SchemaNode): string {
  const cached = minimalCache.get(node);
  if (cached !== undefined) return cached;
  let text: string;
  switch (node.kind) {
    case "object":
      text =
        "{" +
        node.props
          .filter((_, i) => node.required & (1 << i))
          .map((p) => `"${p.name}":${minimal(p.node)}`)
          .join(",") +
        "}";
      break;
    case "array":
      text = "[" + [...Array(node.minItems)].map(() => minimal(node.items)).join(",") + "]";
      break;
    case "string":
      text = '""';
      break;
    case "number":
      text = "0";
      break;
    case "literal":
      text = shortest(node.options);
      break;
    case "union":
      // "any" nests itself through its array/object alternatives: the number alternative ends that recursion.
      text = shortest(node.alternatives.filter((a) => a.kind !== "object" && a.kind !== "array").map(minimal));
      if (text === "") text = shortest(node.alternatives.map(minimal));
      break;
  }
  minimalCache.set(node, text);
  return text;
}

function shortest(options: string[]): string {
  return options.reduce((best, o) => (best === "" || o.length < best.length ? o : best), "");
}

function repeat(text: string, times: number): string {
  return times > 0 ? text.repeat(times) : "";
}

/** A string that identifies a state for caching (equal keys ⇒ the same continuations). */
export function stateKey(state: JsonState): string {
  let key = `w${state.ws ?? 0}|`;
  for (let s: JsonState | null = state; s !== null; s = s.up) {
    const f = s.f;
    switch (f.k) {
      case 0:
        key += `v${f.node.id}|`;
        break;
      case 1:
        key += `o${f.node.id}.${f.phase}.${f.used}.${f.current}.${f.key.length}:${f.key}|`;
        break;
      case 2:
        key += `a${f.node.id}.${f.phase}.${f.count}|`;
        break;
      case 3:
        key += `s${f.esc}|`;
        break;
      case 4:
        key += `n${f.integer ? 1 : 0}.${f.phase}.${f.digits}|`;
        break;
      case 5:
        key += `l${f.options.join("\u0001")}.${f.typed.length}|`;
        break;
      case 6:
        key += "d|";
        break;
    }
  }
  return key;
}
