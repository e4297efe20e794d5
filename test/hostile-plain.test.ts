import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_BODY_DEPTH } from "../src/server/json-body.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { echoApi } from "./fixtures/echo-api.js";
import { expectCleanError } from "./fixtures/raw-http.js";

// Hostile bodies against an API with no decodeRequest of its own (the default passes the parsed body on), so that
// only the server stands between the client and the worker thread.

let server: BatchwiseServer;
let url: string;

beforeAll(async () => {
  server = await createServer({ api: echoApi(), maxBatchSize: 8, port: 0, log: false });
  url = await server.listen();
});
afterAll(() => server?.close());

const post = (body: string) => fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body });
const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;

describe("bodies that reach the worker as they are", () => {
  it(`nesting beyond ${MAX_BODY_DEPTH} levels is a 400 (it used to overflow the stack on the way to the worker: 500)`, async () => {
    for (const body of [nested(MAX_BODY_DEPTH + 1), nested(5_000), nested(200_000), `{"a": ${nested(10_000)}}`, `[${'{"a":'.repeat(1000)}1${"}".repeat(1000)}]`]) {
      const response = await post(body);
      expect(expectCleanError(response.status, await response.text(), [400]).code).toBe("nested_too_deep");
    }
    const deepest = await post(nested(MAX_BODY_DEPTH));
    expect(deepest.status).toBe(200);
    expect(await deepest.json()).toEqual({ type: "array", bytes: 2 * MAX_BODY_DEPTH });
  });

  it("empty and malformed JSON, and poisoning keys spelled with escapes, are 400s with their own codes", async () => {
    const code = async (body: string) => {
      const response = await post(body);
      return expectCleanError(response.status, await response.text(), [400]).code;
    };
    expect(await code("")).toBe("empty_body");
    expect(await code("  \n")).toBe("empty_body");
    expect(await code('{"a": ')).toBe("invalid_json");
    expect(await code('{"\\u005f_proto__": {"polluted": 1}}')).toBe("forbidden_key");
    expect(await code('[{"constructor": {"\\u0070rototype": {"polluted": 1}}}]')).toBe("forbidden_key");
    expect(Object.prototype).not.toHaveProperty("polluted");
    const notPoisoned = await post('{"constructor": "a string", "prototype": 1}');
    expect(notPoisoned.status).toBe(200);
  });

  it("wide bodies, odd strings and odd keys are carried to the worker and back intact", async () => {
    const wide = JSON.stringify(Array.from({ length: 300_000 }, (_, i) => i));
    const manyKeys = JSON.stringify(Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, i])));
    const odd = JSON.stringify({ "": "\u0000", "\ud800": "\udfff", "toString": 1, "hasOwnProperty": 2, "valueOf": { "length": -1 } });
    for (const body of [wide, manyKeys, odd, "1", '"text"', "null", "[]"]) {
      const response = await post(body);
      expect(response.status, body.slice(0, 50)).toBe(200);
      const expected = JSON.parse(body) as unknown;
      expect(await response.json()).toEqual({
        type: Array.isArray(expected) ? "array" : typeof expected,
        bytes: JSON.stringify(expected).length,
      });
    }
  });

  it("after all of it the worker was never restarted and nothing is left in flight", async () => {
    const info = (await (await fetch(`${url}/info`)).json()) as { endpoints: { workers: { restarts: number } }[] };
    expect(info.endpoints[0].workers.restarts).toBe(0);
    expect(server.endpoints[0].load().busyWorkers).toBe(0);
    expect(server.endpoints[0].load().queued).toBe(0);
  });
});
