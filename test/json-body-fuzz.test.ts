import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import sjson from "secure-json-parse";
import { describe, expect, it } from "vitest";
import { MAX_BODY_DEPTH, parseJsonBody } from "../src/server/json-body.js";

// Differential fuzz of the server's JSON body parser against the reference: JSON.parse behind secure-json-parse
// (fastify's own safe parser, which the hand-written one replaced) plus the server's documented depth limit. For
// every generated body both must give the same value, or both refuse it for the same reason.

type Verdict = { value: unknown } | { refused: Set<string> };

/** Nesting depth as the server counts it: a top-level object or array is depth 1. Recursive: independent of ours. */
function depthOf(value: unknown): number {
  if (value === null || typeof value !== "object") return 0;
  let deepest = 0;
  for (const child of Object.values(value)) deepest = Math.max(deepest, depthOf(child));
  return 1 + deepest;
}

function reference(text: string): Verdict {
  try {
    const value = sjson.parse(text, undefined, { protoAction: "error", constructorAction: "error" });
    if (depthOf(value) > MAX_BODY_DEPTH) return { refused: new Set(["nested_too_deep"]) };
    return { value };
  } catch (error) {
    if (!/forbidden prototype property/.test((error as Error).message)) return { refused: new Set(["syntax"]) };
    // poisoned; when it is also too deep, either refusal is right (whichever the walk meets first)
    const refused = new Set(["forbidden_key"]);
    if (depthOf(JSON.parse(text.replace(/^\uFEFF/, ""))) > MAX_BODY_DEPTH) refused.add("nested_too_deep");
    return { refused };
  }
}

/**
 * Ours, on the text itself or on its UTF-8 bytes (what the server passes) with every string value of a byte or more
 * lifted out before JSON.parse (see liftLongStrings), so the lifting path meets every generated body too.
 */
function ours(body: string | Buffer): Verdict {
  try {
    return { value: parseJsonBody(body, typeof body === "string" ? {} : { longStringBytes: 1 }) };
  } catch (error) {
    const code = (error as { code?: string }).code ?? `threw ${(error as Error).name}: ${(error as Error).message}`;
    // empty_body is a syntax refusal with a friendlier message
    return { refused: new Set([code === "empty_body" || code === "invalid_json" ? "syntax" : code]) };
  }
}

function compare(expected: Verdict, actual: Verdict): string | undefined {
  if ("value" in expected) {
    if ("value" in actual && isDeepStrictEqual(actual.value, expected.value)) return undefined;
    return `reference accepts, ours ${"value" in actual ? "gives a different value" : `refuses (${[...actual.refused]})`}`;
  }
  if ("refused" in actual && [...actual.refused].every((code) => expected.refused.has(code))) return undefined;
  return `reference refuses (${[...expected.refused]}), ours ${"value" in actual ? "accepts" : `refuses (${[...actual.refused]})`}`;
}

/** Ours agrees with the reference on the text, and on its bytes (UTF-8 turns lone surrogates into U+FFFD: the reference reads the same). */
function agree(text: string): string | undefined {
  const bytes = Buffer.from(text);
  const onText = compare(reference(text), ours(text));
  if (onText) return onText;
  const onBytes = compare(reference(bytes.toString()), ours(bytes));
  return onBytes && `${onBytes} (from bytes, strings lifted)`;
}

// ---- generators -------------------------------------------------------------------------------------------------

const hex = (code: number, upper: boolean) => {
  const digits = code.toString(16).padStart(4, "0");
  return `\\u${upper ? digits.toUpperCase() : digits}`;
};

/** A JSON string literal for `s`, each character randomly spelled plainly or as a \u escape (either hex case). */
const spelled = (s: string) =>
  fc.array(fc.tuple(fc.boolean(), fc.boolean()), { minLength: s.length, maxLength: s.length }).map((choices) => {
    let out = '"';
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      const mustEscape = c < 0x20 || c === 0x22 || c === 0x5c;
      out += mustEscape || choices[i][0] ? hex(c, choices[i][1]) : s[i];
    }
    return out + '"';
  });

const dangerous = ["__proto__", "constructor", "prototype", "__proto", "_proto__", "__PROTO__", "Constructor", "constructor ", "proto"];
const keyText = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...dangerous).chain(spelled) },
  { weight: 1, arbitrary: fc.constantFrom("a", "b", "image", "").chain(spelled) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 8 }).map((s) => JSON.stringify(s)) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 6 }).map((s) => JSON.stringify(s)) }, // lone surrogates
);

const edgeNumbers = [
  "0", "-0", "1e309", "-1e309", "1e-400", "5e-324", "1.7976931348623157e308", "9007199254740993", "-9007199254740993",
  "123456789012345678901234567890", "0.1e+5", "1E-7", "1e0", "0.0000000000000000000001",
  // not JSON
  "01", "1.", ".5", "+1", "-", "1e", "1e+", "NaN", "Infinity", "-Infinity", "0x10", "1_000", "1 2",
];
const numberText = fc.oneof(fc.constantFrom(...edgeNumbers), fc.double().map((n) => (Number.isFinite(n) ? JSON.stringify(n) : "0")));

const whitespace = fc.constantFrom("", " ", "\n", "\t", "\r\n", "  ", "\u00a0", "\v", "\f", "\u2028", "\uFEFF");

const scalarText = fc.oneof(
  numberText,
  fc.constantFrom("true", "false", "null", "True", "nul", "undefined"),
  fc.string({ unit: "grapheme", maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.string({ unit: "grapheme-ascii", maxLength: 6 }).chain(spelled),
  fc.constantFrom('"\\x41"', '"\\u12"', '"\\uZZZZ"', '"\\ud800"', '"\\udc00\\ud800"', "'single'", '"tab\there"'),
);

/** JSON-ish texts built from the pieces above, with duplicate keys (keys come from a small set) and noise. */
const valueText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    { weight: 4, arbitrary: scalarText },
    { weight: 1, arbitrary: fc.array(tie("value"), { maxLength: 4 }).map((items) => `[${items.join(",")}]`) },
    {
      weight: 2,
      arbitrary: fc
        .array(fc.tuple(keyText, whitespace, tie("value")), { maxLength: 4 })
        .map((entries) => `{${entries.map(([k, ws, v]) => `${k}${ws}:${v}`).join(",")}}`),
    },
  ),
})).value;

/** Deep nesting around a value, near and far past the limit, as arrays, objects or a mix. */
const deepText = fc
  .tuple(fc.integer({ min: 1, max: 3 * MAX_BODY_DEPTH }), fc.constantFrom("array", "object", "mixed"), valueText, fc.integer())
  .map(([depth, kind, inner, seed]) => {
    let open = "";
    let close = "";
    for (let i = 0; i < depth; i++) {
      const object = kind === "object" || (kind === "mixed" && ((seed >> i % 31) & 1) === 1);
      open += object ? '{"k":' : "[";
      close = (object ? "}" : "]") + close;
    }
    return open + inner + close;
  });

/** Small damage that often turns valid JSON invalid: truncation, a stray character, a doubled comma, a BOM. */
const mutated = fc
  .tuple(valueText, fc.nat(), fc.constantFrom("truncate", "insert", "delete", "bom", "trailing-comma", "wrap-ws", "none"), fc.constantFrom(",", "}", "]", '"', "\\", ":", "\u0000", "x"))
  .map(([text, at, how, char]) => {
    const i = text.length === 0 ? 0 : at % text.length;
    switch (how) {
      case "truncate":
        return text.slice(0, i);
      case "insert":
        return text.slice(0, i) + char + text.slice(i);
      case "delete":
        return text.slice(0, i) + text.slice(i + 1);
      case "bom":
        return `\uFEFF${text}`;
      case "trailing-comma":
        return text.replace(/([\]}])$/, ",$1");
      case "wrap-ws":
        return ` \n${text}\t `;
      default:
        return text;
    }
  });

/**
 * Poisoning attempts, spelled every way: `__proto__` holding anything, `constructor` holding an object with or
 * without `prototype`, overridden by a duplicate key or not, wrapped a few levels deep in arrays and objects.
 */
const poisonedText = fc
  .tuple(
    fc.constantFrom("__proto__", "constructor").chain(spelled),
    fc.constantFrom("prototype", "prototyp", "Prototype").chain(spelled),
    valueText,
    fc.constantFrom("plain", "nested", "duplicate-after", "duplicate-before"),
    fc.array(fc.constantFrom("array", "object"), { maxLength: 5 }),
  )
  .map(([key, inner, value, shape, wrappers]) => {
    let text = shape === "plain" ? `{${key}:${value}}` : `{${key}:{${inner}:${value}}}`;
    if (shape === "duplicate-after") text = `{${key}:{${inner}:${value}},${key}:1}`;
    if (shape === "duplicate-before") text = `{${key}:1,"x":[],${key}:{${inner}:${value}}}`;
    for (const wrapper of wrappers) text = wrapper === "array" ? `[1,${text}]` : `{"a":${text}}`;
    return text;
  });

/** Real JSON documents from fast-check's JSON generator, keys included, stringified (so also well-formed). */
const realJson = fc.json({ depthSize: "medium" });

const body = fc.oneof(
  { weight: 3, arbitrary: valueText },
  { weight: 2, arbitrary: mutated },
  { weight: 1, arbitrary: deepText },
  { weight: 1, arbitrary: poisonedText },
  { weight: 2, arbitrary: realJson },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
);

// ---- the fuzz ---------------------------------------------------------------------------------------------------

describe("JSON body parser, differential against JSON.parse + secure-json-parse", () => {
  it("20,000 generated bodies: the same value or the same refusal, every time", () => {
    const tally: Record<string, number> = { accepted: 0, syntax: 0, forbidden_key: 0, nested_too_deep: 0 };
    fc.assert(
      fc.property(body, (text) => {
        const difference = agree(text);
        const verdict = reference(text);
        for (const kind of "value" in verdict ? ["accepted"] : verdict.refused) tally[kind]++;
        if (difference) throw new Error(`${difference} for ${JSON.stringify(text).slice(0, 300)}`);
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 20_000), seed: Number(process.env.FUZZ_SEED ?? 17) },
    );
    console.log(`json-body fuzz, 20,000 bodies, verdicts both parsers gave: ${JSON.stringify(tally)}`);
    // the generators must reach every verdict, or the comparison says little
    expect(tally.accepted).toBeGreaterThan(2_000);
    expect(tally.syntax).toBeGreaterThan(2_000);
    expect(tally.forbidden_key).toBeGreaterThan(500);
    expect(tally.nested_too_deep).toBeGreaterThan(500);
  }, 120_000);

  it("the dangerous spellings are all refused, whatever the escapes, at any depth", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("__proto__", "constructor").chain(spelled),
        fc.integer({ min: 0, max: MAX_BODY_DEPTH - 3 }),
        (key, depth) => {
          const inner = key.includes("c") || key.includes("0063") ? `{${key}: {"prototype": 1}}` : `{${key}: {}}`;
          const text = "[".repeat(depth) + inner + "]".repeat(depth);
          expect(ours(text)).toEqual({ refused: new Set(["forbidden_key"]) });
          expect(agree(text)).toBeUndefined();
        },
      ),
      { numRuns: 2_000, seed: 17 },
    );
  });

  it("known differences found by the fuzz stay fixed", () => {
    const long = "QUJD".repeat(5000);
    for (const text of [
      '\uFEFF{"a": 1}', "\uFEFF[]", "\uFEFF", '{"a":1,"a":{"__proto__":1}}', '{"constructor":{"prototype":1},"constructor":1}',
      // lifted strings: top level, in arrays, duplicated keys, a long key (stays), an escape or a control character in a long value
      `"${long}"`, `[1,"${long}",{"${long}":"${long}"}]`, `{"image":"${long}","image":"x"}`, `{"a":"${long}\\n"}`,
      `{"a":"${long}\n"}`, `{"a": "${long}" , "b" : "${long}é"}`, `{"a":"${long}"`, `{"a":"${long}`, `{"a":"${long}\\"}`,
    ]) {
      expect(agree(text), JSON.stringify(text)).toBeUndefined();
    }
  });
});
