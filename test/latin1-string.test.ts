/**
 * latin1String (src/server/latin1-string.ts): strings over a Buffer's bytes in place where the native addon is built
 * (CI builds it), the same strings as Buffer#toString("latin1") either way, and alive for as long as the strings are;
 * printableAscii, which says whether a range may be such a string in JSON.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { latin1String, latin1StringsInPlace, printableAscii } from "../src/server/latin1-string.js";

it.runIf(process.env.BATCHWISE_REQUIRE_NATIVE_JPEG === "1")("the native addon is built where the native path is required", () => {
  expect(latin1StringsInPlace).toBe(true);
});

/** Printable ASCII bytes, different for every seed. */
function asciiBytes(length: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    bytes[i] = 0x20 + ((state >>> 16) % 95);
  }
  return bytes;
}

describe("latin1String", () => {
  it("gives the same string as toString for long, short and empty ranges, and views into a larger buffer", () => {
    const bytes = asciiBytes(300_000, 7);
    const view = bytes.subarray(1000, 250_000);
    for (const [source, start, end] of [[bytes, 0, bytes.length], [bytes, 17, 200_017], [bytes, 5, 9], [bytes, 3, 3], [view, 100, 200_000]] as const) {
      expect(latin1String(source, start, end)).toBe(source.toString("latin1", start, end));
    }
  });

  it.runIf(latin1StringsInPlace)("refuses what is not a Uint8Array with a TypeError, and a range outside the bytes with a RangeError", () => {
    const bytes = asciiBytes(100, 1);
    expect(() => latin1String("abc" as never, 0, 1)).toThrow(TypeError);
    expect(() => latin1String(new Float32Array(4) as never, 0, 1)).toThrow(TypeError);
    expect(() => latin1String(bytes, "0" as never, 1)).toThrow(TypeError);
    for (const [start, end] of [[0, 101], [50, 40], [-1, 10], [0.5, 10], [Number.NaN, 10], [0, Infinity]]) {
      expect(() => latin1String(bytes, start, end), `${start}…${end}`).toThrow(RangeError);
    }
  });

  it("strings outlive the variables that held their bytes: 2,000 made, GC run, the kept ones still read right", () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const kept: Array<[string, string]> = [];
    for (let i = 0; i < 2000; i++) {
      const bytes = asciiBytes(i % 2 ? 40_000 : 200, i);
      const text = latin1String(bytes, 1, bytes.length - 1);
      if (i % 100 === 0) kept.push([text, bytes.toString("latin1", 1, bytes.length - 1)]);
    }
    for (let round = 0; round < 3; round++) gc();
    asciiBytes(5_000_000, 99); // fresh allocations that would reuse freed memory
    for (const [text, expected] of kept) expect(text).toBe(expected);
  });
});

describe("printableAscii", () => {
  it("is true exactly when every byte of the range is 0x20–0x7f, wherever a bad byte sits in a long range", () => {
    const bytes = asciiBytes(100_000, 3);
    expect(printableAscii(bytes, 0, bytes.length)).toBe(true);
    expect(printableAscii(bytes, 5, 5)).toBe(true);
    expect(printableAscii(Buffer.from([0x20, 0x7e, 0x7f]), 0, 3)).toBe(true);
    for (const bad of [0x00, 0x09, 0x0a, 0x1f, 0x80, 0xc3, 0xff]) {
      for (const at of [0, 4095, 4096, 50_001, bytes.length - 1]) {
        const copy = Buffer.from(bytes);
        copy[at] = bad;
        expect(printableAscii(copy, 0, copy.length), `0x${bad.toString(16)} at ${at}`).toBe(false);
        expect(printableAscii(copy, 0, at), "a range that ends before it").toBe(true);
        expect(printableAscii(copy, at + 1, copy.length), "a range that starts after it").toBe(true);
      }
    }
  });

  it.runIf(latin1StringsInPlace)("refuses a range outside the bytes with a RangeError", () => {
    expect(() => printableAscii(asciiBytes(10, 1), 0, 11)).toThrow(RangeError);
    expect(() => printableAscii([] as never, 0, 0)).toThrow(TypeError);
  });
});
