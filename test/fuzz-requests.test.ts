import { readFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imageClassifier } from "../src/classifier/image-classifier.js";
import { tokenStreamApi } from "../src/bench/runs/stream-overhead.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { openAISpec } from "../src/openai/spec.js";
import { expectCleanError, rawRequest } from "./fixtures/raw-http.js";
import { image } from "./helpers/paths.js";

// Generated malformed requests (fast-check) against one real server: the classifier (MobileNetV2 int8 in a worker)
// on /predict and the OpenAI spec (a token generator standing in for the model) on /v1/chat/completions. Every
// answer must be a 4xx in the error contract; afterwards the server is healthy and no worker was restarted.
// FUZZ_SEED=<n> replays a failing run (fast-check prints the seed and the shrunk counterexample).

const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
let server: BatchwiseServer;
let url: string;
const photos = ["darknet_dog.jpg", "skimage_chelsea.png"].map((name) => readFileSync(image(name)));
const answers = { total: 0, byStatus: {} as Record<number, number> };

beforeAll(async () => {
  server = await createServer({
    endpoints: [
      { api: imageClassifier({ labels: "cat-dog", precision: "int8" }), maxBatchSize: 8, accelerator: "cpu" },
      { api: tokenStreamApi(), spec: openAISpec(), maxBatchSize: 8 },
    ],
    maxPayloadSize: 256 * 1024,
    requestTimeout: 5,
    port: 0,
    log: false,
  });
  url = await server.listen();
});
afterAll(() => server?.close());

function record(status: number) {
  answers.total++;
  answers.byStatus[status] = (answers.byStatus[status] ?? 0) + 1;
}

async function send(path: string, body: string | Uint8Array, contentType = "application/json") {
  const response = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": contentType }, body });
  const text = await response.text();
  record(response.status);
  expectCleanError(response.status, text);
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const SIGNATURES = [
  [0xff, 0xd8, 0xff],
  [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
  [...Buffer.from("RIFF\0\0\0\0WEBPVP8 ", "latin1")],
  [...Buffer.from("GIF89a", "latin1")],
  [...Buffer.from("<svg ", "latin1")],
  [...Buffer.from("II*\0", "latin1")],
];

/** Values for `image` that are never a whole, decodable image within the limits. */
const badImage = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.base64String({ maxLength: 400 }),
  fc.uint8Array({ maxLength: 2000 }).map(b64),
  fc.tuple(fc.constantFrom(...SIGNATURES), fc.uint8Array({ maxLength: 3000 })).map(([head, tail]) => b64(Uint8Array.from([...head, ...tail]))),
  // a real photo cut short anywhere before its last two bytes
  fc.tuple(fc.constantFrom(...photos), fc.double({ min: 0, max: 1, noNaN: true })).map(([photo, at]) => {
    const cut = Math.min(photo.length - 2, Math.floor(at * photo.length), 150_000);
    return b64(photo.subarray(0, Math.max(1, cut)));
  }),
  fc.string({ maxLength: 100 }).map((s) => `data:image/png;base64,${s}!`),
  fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.object({ maxDepth: 2 })),
);

/** A body for /predict that is JSON but never a valid request. */
const badClassifierBody = fc.oneof(
  badImage.map((image) => JSON.stringify({ image })),
  fc.jsonValue({ maxDepth: 4 }).filter((v) => !(typeof v === "object" && v !== null && !Array.isArray(v) && "image" in v)).map((v) => JSON.stringify(v)),
  fc.tuple(fc.constantFrom("__proto__", "constructor"), badImage).map(([key, image]) =>
    `{"image": ${JSON.stringify(image)}, "${key}": ${key === "constructor" ? '{"prototype": {"x": 1}}' : '{"x": 1}'}}`),
);

/** Not JSON at all: random text, truncations of JSON, random bytes. */
const notJson = fc.oneof(
  fc.string({ minLength: 1, maxLength: 300 }).filter((s) => !isJson(s)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)).filter((s) => s.length > 1).map((s) => s.slice(0, -1)).filter((s) => !isJson(s)),
  fc.uint8Array({ minLength: 1, maxLength: 500 }).filter((b) => !isJson(Buffer.from(b).toString())),
);

function isJson(text: string) {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** A valid chat request with exactly one field replaced by a value of the wrong type or range. */
const badChatBody = fc
  .tuple(
    fc.constantFrom("model", "messages", "role", "content", "max_tokens", "temperature", "top_p", "n", "stream", "stop", "seed", "stream_options"),
    fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.anything({ maxDepth: 1 }), { maxLength: 3 }), fc.object({ maxDepth: 1 })),
  )
  // what the server will see: JSON turns NaN and ±Infinity into null and -0 into 0
  .map(([field, value]) => [field, JSON.parse(JSON.stringify(value))] as [string, unknown])
  .filter(([field, value]) => !acceptable(field, value))
  .map(([field, value]) => {
    const body: Record<string, unknown> = { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 3 };
    if (field === "role" || field === "content") body.messages = [{ role: "user", content: "hi", [field]: value }];
    else body[field] = value;
    return JSON.stringify(body);
  });

/** Values the OpenAI spec rightly accepts for a field: those are not malformed, so the generator skips them. */
function acceptable(field: string, value: unknown): boolean {
  const isInt = (v: unknown, min: number) => typeof v === "number" && Number.isSafeInteger(v) && v >= min;
  switch (field) {
    case "model":
      return typeof value === "string" || value === null;
    case "messages":
      return false; // only arrays of {role, content} are valid, and the generator's arrays never are
    case "role":
      return ["system", "developer", "user", "assistant"].includes(value as string);
    case "content":
      return typeof value === "string" || (Array.isArray(value) && value.length === 0);
    case "max_tokens":
      return value === null || isInt(value, 1);
    case "seed":
      return value === null || (typeof value === "number" && Number.isSafeInteger(value));
    case "temperature":
      return value === null || (typeof value === "number" && value >= 0 && value <= 2);
    case "top_p":
      return value === null || (typeof value === "number" && value > 0 && value <= 1);
    case "n":
      return value === null || value === 1;
    case "stream":
      return value === null || typeof value === "boolean";
    case "stop":
      return value === null || (typeof value === "string" && value.length > 0) ||
        (Array.isArray(value) && value.length <= 4 && value.every((s) => typeof s === "string" && s.length > 0));
    case "stream_options":
      return value === null;
    default:
      return false;
  }
}

const NOT_JSON_TYPES = ["text/plain", "text/html", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "image/jpeg", "application/octet-stream"];

describe("fuzzing with generated malformed requests", () => {
  it("/predict: JSON bodies that are not valid requests, each a clean 4xx", async () => {
    await fc.assert(fc.asyncProperty(badClassifierBody, (body) => send("/predict", body)), { numRuns: 800, seed });
  });

  it("/v1/chat/completions: a valid request with one field wrong, each a clean 4xx", async () => {
    await fc.assert(fc.asyncProperty(badChatBody, (body) => send("/v1/chat/completions", body)), { numRuns: 600, seed });
  });

  it("both routes: bodies that are not JSON, and bodies under other content types", async () => {
    const path = fc.constantFrom("/predict", "/v1/chat/completions");
    await fc.assert(fc.asyncProperty(path, notJson, (p, body) => send(p, body)), { numRuns: 300, seed });
    const typed = fc.tuple(path, fc.constantFrom(...NOT_JSON_TYPES), fc.string({ maxLength: 200 }));
    await fc.assert(fc.asyncProperty(typed, ([p, type, body]) => send(p, body, type)), { numRuns: 100, seed });
  });

  it("raw bytes as the request itself: every answer a 4xx, every connection closed", async () => {
    const request = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.concat([Buffer.from(b), Buffer.from("\r\n\r\n")])),
      fc
        .tuple(fc.constantFrom("GET", "POST", "PUT", "BREW", "G\u0000T", ""), fc.string({ maxLength: 40 }), fc.constantFrom("HTTP/1.1", "HTTP/2.0", "HTTP/1.1 x", ""))
        .map(([method, junk, version]) => Buffer.from(`${method} /${junk}\u0001 ${version}\r\nHost: x\r\n\r\n`, "latin1")),
    );
    await fc.assert(
      fc.asyncProperty(request, async (payload) => {
        const response = await rawRequest(url, payload, 8_000);
        expect(response.closed).toBe(true);
        record(response.status);
        expect(response.status).toBeGreaterThanOrEqual(400);
        expect(response.status).toBeLessThan(500);
      }),
      { numRuns: 200, seed },
    );
  });

  it("after all of it: 2,000 malformed requests answered, all 4xx; healthy; no worker restarted", async () => {
    console.log(`fuzz: ${answers.total} malformed requests, by status ${JSON.stringify(answers.byStatus)}`);
    expect(answers.total).toBe(2000);
    expect(Object.keys(answers.byStatus).every((s) => Number(s) >= 400 && Number(s) < 500)).toBe(true);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const info = (await (await fetch(`${url}/info`)).json()) as { endpoints: { workers: { restarts: number } }[] };
    expect(info.endpoints.map((e) => e.workers.restarts)).toEqual([0, 0]);
    const photo = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ image: b64(photos[0]) }) });
    expect(photo.status).toBe(200);
  });
});
