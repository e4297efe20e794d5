import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { BadRequestError, errorCodes, HttpError, isUserError } from "../src/index.js";
import { toHttpError } from "../src/api/errors.js";

// Every error code the server answers with is declared once, in the catalogue, and listed in docs/reference.md.

const files = (function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : []));
})(path.resolve("src"));

/**
 * Codes thrown in src: `new HttpError("code"`, `BadRequestError(…, "code"`, `errors.badRequest(…, "code"`. (HttpError and
 * its subclasses such as the OpenAI spec's InvalidRequestError take an `ErrorCode`: the compiler checks those.)
 */
function thrownCodes(): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    const patterns = [
      /new HttpError\(\s*"([a-z_]+)"/g,
      /(?:BadRequestError|badRequest)\((?:[^()]|\([^()]*\))*?,\s*"([a-z_]+)"/g,
      /code:\s*"([a-z_]+)"\s+as\s+ErrorCode/g,
    ];
    for (const pattern of patterns) for (const m of text.matchAll(pattern)) found.set(m[1], path.relative("src", file));
  }
  return found;
}

describe("the error catalogue", () => {
  it("every code thrown in src is declared in errorCodes", () => {
    const codes = thrownCodes();
    expect(codes.size).toBeGreaterThan(15); // the scan sees the throw sites
    const undeclared = [...codes].filter(([code]) => !(code in errorCodes)).map(([code, file]) => `${code} (${file})`);
    expect(undeclared).toEqual([]);
  });

  it("docs/reference.md lists every code with its status", () => {
    const readme = readFileSync("docs/reference.md", "utf8");
    const missing = Object.entries(errorCodes).filter(([code, { status }]) => !new RegExp(`\\| \`${code}\` \\| ${status} \\|`).test(readme));
    expect(missing.map(([code]) => code)).toEqual([]);
  });

  it("a catalogue code carries its status and default message", () => {
    const error = new HttpError("queue_full");
    expect([error.status, error.code, error.message]).toEqual([503, "queue_full", errorCodes.queue_full.message]);
  });

  it("user errors are recognised by their brand, even from another copy of the class", () => {
    class ForeignBadRequest extends Error {
      code = "invalid_numbers";
      status = 422;
      constructor() {
        super("numbers must be numbers");
        Object.defineProperty(this, Symbol.for("batchwise.userError"), { value: true });
      }
    }
    const foreign = new ForeignBadRequest();
    expect(isUserError(foreign)).toBe(true);
    expect(toHttpError(foreign)).toMatchObject({ status: 422, code: "invalid_numbers", message: "numbers must be numbers" });
    expect(toHttpError(new BadRequestError("odd image", "invalid_image"))).toMatchObject({ status: 400, code: "invalid_image" });
    // an ordinary Error is not the client's fault and says nothing about internals
    expect(toHttpError(new Error("/secret/path exploded"))).toMatchObject({ status: 500, code: "internal_error", message: "Internal server error" });
  });
});
