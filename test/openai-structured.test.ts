import { Ajv } from "ajv";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatModel } from "../src/chat/chat-api.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { openAISpec } from "../src/openai/spec.js";

// Structured output by constrained decoding, seen through the official `openai` client against a real server with
// the random-weight test model: whatever the weights prefer, the text must parse and match the schema.
const MODEL = "tiny-random-llama";
let server: BatchwiseServer;
let client: OpenAI;
let url: string;
const ajv = new Ajv({ strict: false });

beforeAll(async () => {
  server = await createServer({
    api: chatModel({ model: MODEL }),
    spec: openAISpec(),
    maxBatchSize: 8,
    batchTimeout: 0.005,
    maxBatchesPerWorker: 4,
    port: 0,
    log: false,
  });
  url = await server.listen();
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 });
}, 120_000);
afterAll(() => server?.close());

/** Seeded generator (mulberry32) so every run asks the same 50 questions. */
function rng(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(list: T[]) => list[Math.floor(next() * list.length)] };
}

const WORDS = ["name", "age", "tags", "city", "score", "ok", "items", "id", "note", "level", "color", "size"];

/** A random schema from the supported keywords, `depth` levels of objects/arrays deep. */
function randomSchema(r: ReturnType<typeof rng>, depth: number): Record<string, unknown> {
  const kinds = ["string", "number", "integer", "boolean", "null", "enum", "nullable", "anyOf", ...(depth > 0 ? ["object", "object", "array"] : [])];
  switch (r.pick(kinds)) {
    case "object": {
      const names = [...new Set(Array.from({ length: 1 + r.int(4) }, () => r.pick(WORDS)))];
      const properties = Object.fromEntries(names.map((n) => [n, randomSchema(r, depth - 1)]));
      const required = r.next() < 0.7 ? names : names.filter(() => r.next() < 0.5);
      return { type: "object", properties, required, additionalProperties: false, description: "an object" };
    }
    case "array": {
      const minItems = r.int(3);
      return { type: "array", items: randomSchema(r, depth - 1), minItems, maxItems: minItems + r.int(3) };
    }
    case "enum":
      return { enum: r.next() < 0.5 ? ["red", "green", "blue"] : [1, 10, 100, "x", null] };
    case "nullable":
      return { type: [r.pick(["string", "integer", "boolean"]), "null"] };
    case "anyOf":
      return { anyOf: [{ type: "integer" }, { type: "string" }, { type: "array", items: { type: "boolean" } }] };
    default:
      return { type: r.pick(["string", "number", "integer", "boolean", "null"]) };
  }
}

function rootSchema(r: ReturnType<typeof rng>): Record<string, unknown> {
  if (r.next() < 0.15) return { type: "array", items: randomSchema(r, 1), maxItems: 4 };
  const names = [...new Set(Array.from({ length: 1 + r.int(4) }, () => r.pick(WORDS)))];
  return {
    type: "object",
    properties: Object.fromEntries(names.map((n) => [n, randomSchema(r, 2)])),
    required: names,
    additionalProperties: false,
  };
}

describe("structured output (constrained decoding) with the openai client", () => {
  it("returns JSON that parses and validates for 50 seeded random schemas and prompts, greedy and sampled", async () => {
    const r = rng(20261202);
    const cases = Array.from({ length: 50 }, (_, i) => ({
      schema: rootSchema(r),
      prompt: `Describe item ${i}: ${Array.from({ length: 1 + r.int(12) }, () => r.pick(WORDS)).join(" ")}`,
      temperature: i % 2 === 0 ? 0 : 1,
      seed: i,
    }));
    const failures: string[] = [];
    let stopped = 0;
    // Eight at a time: the requests share the worker's decode loop as real traffic would.
    for (let start = 0; start < cases.length; start += 8) {
      await Promise.all(
        cases.slice(start, start + 8).map(async (c) => {
          const reply = await client.chat.completions.create({
            model: MODEL,
            messages: [{ role: "user", content: c.prompt }],
            max_tokens: 400,
            temperature: c.temperature,
            seed: c.seed,
            response_format: { type: "json_schema", json_schema: { name: "answer", schema: c.schema, strict: true } },
          });
          const text = reply.choices[0].message.content ?? "";
          if (reply.choices[0].finish_reason === "stop") stopped++;
          let value: unknown;
          try {
            value = JSON.parse(text);
          } catch (error) {
            failures.push(`${JSON.stringify(c.schema)} → unparsable ${JSON.stringify(text)}`);
            return;
          }
          if (!ajv.validate(c.schema, value)) failures.push(`${JSON.stringify(c.schema)} → ${text}: ${ajv.errorsText()}`);
        }),
      );
    }
    expect(failures).toEqual([]);
    // The value completes within the budget, and the model stops there (end of sequence forced after the value).
    expect(stopped).toBe(cases.length);
  }, 240_000);

  it("json_object mode returns a JSON object", async () => {
    for (const seed of [1, 2, 3]) {
      const reply = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "Give me JSON" }],
        max_tokens: 120,
        temperature: 1,
        seed,
        response_format: { type: "json_object" },
      });
      const value = JSON.parse(reply.choices[0].message.content ?? "");
      expect(typeof value === "object" && value !== null && !Array.isArray(value)).toBe(true);
    }
  });

  it("completes the value before max_tokens when the budget is tight", async () => {
    const schema = { type: "object", properties: { a: { type: "string" }, b: { type: "array", items: { type: "integer" }, minItems: 2 } }, required: ["a", "b"], additionalProperties: false };
    // The shortest matching value, {"a":"","b":[0,0]}, is 19 characters.
    const reply = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "tight" }],
      max_tokens: 24,
      temperature: 1,
      seed: 7,
      response_format: { type: "json_schema", json_schema: { name: "t", schema, strict: true } },
    });
    expect(ajv.validate(schema, JSON.parse(reply.choices[0].message.content ?? ""))).toBe(true);
    expect(reply.usage!.completion_tokens).toBeLessThanOrEqual(24);
  });

  it("streams constrained output: the deltas concatenate to valid JSON", async () => {
    const schema = { type: "object", properties: { title: { type: "string" }, n: { type: "integer" }, ok: { type: "boolean" } }, required: ["title", "n", "ok"], additionalProperties: false };
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "stream it" }],
      max_tokens: 200,
      stream: true,
      stream_options: { include_usage: true },
      response_format: { type: "json_schema", json_schema: { name: "s", schema, strict: true } },
    });
    let text = "";
    let chunks = 0;
    let finish: string | null = null;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) {
        text += chunk.choices[0].delta.content;
        chunks++;
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(chunks).toBeGreaterThan(1);
    expect(finish).toBe("stop");
    expect(ajv.validate(schema, JSON.parse(text))).toBe(true);
  });

  it("refuses schema keywords it cannot enforce with a 400 naming them, in OpenAI's error shape", async () => {
    const schema = { type: "object", properties: { s: { type: "string", pattern: "^a+$" }, n: { type: "number", minimum: 3 } }, required: ["s"] };
    const error = await client.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "x" }], response_format: { type: "json_schema", json_schema: { name: "x", schema } } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const e = error as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.code).toBe("unsupported_schema");
    expect(e.message).toContain("properties.s.pattern");
    expect(e.message).toContain("properties.n.minimum");
    const raw = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "x" }], response_format: { type: "json_schema", json_schema: { schema: { $ref: "#/$defs/a" } } } }),
    });
    expect(raw.status).toBe(400);
    const body = (await raw.json()) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ type: "invalid_request_error", code: "unsupported_schema" });
    expect(body.error.message).toContain("$ref");
  });
});
