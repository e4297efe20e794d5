import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { Channel } from "../src/server/channel.js";
import { openAISpec, parseChatRequest, type ChatStep } from "../src/openai/spec.js";
import { abortRecordingTokenApi } from "./fixtures/token-api.js";

// The OpenAI wire format over real HTTP, with a token generator standing in for the model (the chat model's own
// tests are in chat-*.test.ts): what the official client sees, what invalid requests get, and disconnects.
const abortLog = path.join(mkdtempSync(path.join(os.tmpdir(), "batchwise-openai-")), "aborts.log");
let server: BatchwiseServer;
let url: string;
let client: OpenAI;

beforeAll(async () => {
  server = await createServer({
    api: abortRecordingTokenApi({ abortLog, intervalMs: 2 }),
    spec: openAISpec(),
    maxBatchSize: 8,
    batchTimeout: 0.005,
    port: 0,
    log: false,
  });
  url = await server.listen();
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 });
});
afterAll(() => server?.close());

const user = (content: string) => [{ role: "user" as const, content }];

/** Pass values through `layers` async generators, as the server's encode and metrics stages do. */
async function* throughLayers<T>(source: AsyncIterable<T>, layers: number): AsyncGenerator<T> {
  if (layers === 0) return yield* source;
  for await (const value of throughLayers(source, layers - 1)) yield value;
}

/** The SSE events of a stream body. */
async function sseEvents(body: AsyncIterable<string>): Promise<unknown[]> {
  let text = "";
  for await (const piece of body) text += piece;
  return text.split("\n\n").filter(Boolean).map((e) => (e === "data: [DONE]" ? "[DONE]" : JSON.parse(e.replace(/^data: /, ""))));
}

describe("SSE chunks merge the steps already waiting", () => {
  it("a client that fell behind gets the backlog in one chunk, a valid delta, even through several async layers", async () => {
    const steps = new Channel<ChatStep>();
    for (let i = 0; i < 5; i++) steps.push({ text: ` t${i}` });
    steps.push({ text: " t5", finishReason: "length", usage: { promptTokens: 1, completionTokens: 6 } });
    steps.end();
    const request = parseChatRequest({ messages: user("hi"), stream: true, stream_options: { include_usage: true } });
    const response = await openAISpec().respond(request, throughLayers(steps, 3), { signal: new AbortController().signal, headers: {}, state: {}, requestId: "test" });
    if (response.kind !== "stream") throw new Error("expected a stream");
    const events = (await sseEvents(response.body)) as OpenAI.ChatCompletionChunk[];
    const deltas = events.filter((e) => e !== ("[DONE]" as unknown) && e.choices[0]?.delta?.content).map((e) => e.choices[0].delta);
    expect(deltas).toEqual([{ role: "assistant", content: " t0 t1 t2 t3 t4 t5" }]);
    expect(events.find((e) => e !== ("[DONE]" as unknown) && e.choices[0]?.finish_reason)?.choices[0].finish_reason).toBe("length");
    expect(events[events.length - 2]).toMatchObject({ usage: { completion_tokens: 6 } });
    expect(events[events.length - 1]).toBe("[DONE]");
  });

  it("a step that is not there yet is not waited for: each step arriving later gets its own chunk", async () => {
    const steps = new Channel<ChatStep>();
    steps.push({ text: " a" });
    const request = parseChatRequest({ messages: user("hi"), stream: true });
    const response = await openAISpec().respond(request, throughLayers(steps, 3), { signal: new AbortController().signal, headers: {}, state: {}, requestId: "test" });
    if (response.kind !== "stream") throw new Error("expected a stream");
    const body = response.body[Symbol.asyncIterator]();
    // The first chunk goes out with what there is, without the next step (which needs a later event-loop turn).
    expect((await body.next()).value).toContain('"content":" a"');
    setImmediate(() => {
      steps.push({ text: " b", finishReason: "stop", usage: { promptTokens: 1, completionTokens: 2 } });
      steps.end();
    });
    expect((await body.next()).value).toContain('"content":" b"');
  });
});

describe("OpenAI chat completions spec", () => {
  it("answers a non-streaming request with the whole text, usage and a truthful finish_reason", async () => {
    const reply = await client.chat.completions.create({ model: "anything", messages: user("hi"), max_tokens: 5 });
    expect(reply.object).toBe("chat.completion");
    expect(reply.id).toMatch(/^chatcmpl-/);
    expect(reply.choices).toHaveLength(1);
    expect(reply.choices[0].message).toEqual({ role: "assistant", content: " t0 t1 t2 t3 t4" });
    expect(reply.choices[0].finish_reason).toBe("length");
    expect(reply.usage).toEqual({ prompt_tokens: 1, completion_tokens: 5, total_tokens: 6 });
  });

  it("streams the tokens as they come (each chunk one or more whole tokens), then the finish reason, then usage when asked, then [DONE]", async () => {
    const stream = await client.chat.completions.create({
      model: "anything",
      messages: user("hi"),
      max_tokens: 6,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const content = chunks.filter((c) => c.choices[0]?.delta.content);
    // One chunk per token while the server keeps up; tokens that were already waiting share a chunk (see below).
    const deltas = content.map((c) => c.choices[0].delta.content);
    expect(deltas.join("")).toBe(" t0 t1 t2 t3 t4 t5");
    for (const delta of deltas) expect(delta).toMatch(/^( t\d)+$/);
    expect(content[0].choices[0].delta.role).toBe("assistant");
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id)).toBe(true);
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(finish?.choices[0].finish_reason).toBe("length");
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 1, completion_tokens: 6, total_tokens: 7 });
  });

  it("ends the raw SSE stream with data: [DONE] and sends no usage chunk unless asked", async () => {
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: user("hi"), max_tokens: 3, stream: true }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = (await response.text()).split("\n\n").filter(Boolean);
    expect(events[events.length - 1]).toBe("data: [DONE]");
    const bodies = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, "")));
    expect(bodies.some((b) => "usage" in b)).toBe(false);
    // The tokens (one chunk each, or fewer chunks when some were already waiting), then the finish chunk.
    expect(bodies.map((b) => b.choices[0].delta.content ?? "").join("")).toBe(" t0 t1 t2");
    expect(bodies[bodies.length - 1].choices[0]).toMatchObject({ delta: {}, finish_reason: "length" });
  });

  it("lists the served model", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["token-stream"]);
    expect(models.data[0].object).toBe("model");
  });

  it.each([
    ["empty messages", { messages: [] }, "messages"],
    ["an unknown role", { messages: [{ role: "wizard", content: "hi" }] }, "messages[0].role"],
    ["negative max_tokens", { messages: user("hi"), max_tokens: -3 }, "max_tokens"],
    ["n = 2", { messages: user("hi"), n: 2 }, "n"],
    ["temperature out of range", { messages: user("hi"), temperature: 7 }, "temperature"],
    ["a non-text content part", { messages: [{ role: "user", content: [{ type: "image_url" }] }] }, "messages[0].content[0]"],
    ["stop as a number", { messages: user("hi"), stop: 5 }, "stop"],
  ])("rejects %s with a 400 in OpenAI's error shape", async (_name, body, param) => {
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: Record<string, unknown> };
    expect(error).toMatchObject({ type: "invalid_request_error", param, code: "invalid_request" });
    expect(error.message).toEqual(expect.any(String));
  });

  it("raises the client's BadRequestError for invalid input, and a 400 for malformed JSON", async () => {
    await expect(client.chat.completions.create({ model: "x", messages: [] })).rejects.toMatchObject({ status: 400 });
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: unknown }).error).toMatchObject({ type: "invalid_request_error" });
  });

  it("gives two concurrent streams their own tokens", async () => {
    const run = async (tokens: number) => {
      const stream = await client.chat.completions.create({ model: "x", messages: user("go"), max_tokens: tokens, stream: true });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      return text;
    };
    const [a, b] = await Promise.all([run(12), run(30)]);
    expect(a).toBe(Array.from({ length: 12 }, (_, i) => ` t${i}`).join(""));
    expect(b).toBe(Array.from({ length: 30 }, (_, i) => ` t${i}`).join(""));
  });

  it("stops generating for a client that disconnects mid-stream", async () => {
    const controller = new AbortController();
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: user("long"), max_tokens: 5000, stream: true }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    let received = "";
    while (!received.includes(" t3")) received += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    // 5000 tokens at ≥ 2 ms each would take ≥ 10 s: the worker must notice the abort long before.
    const deadline = Date.now() + 5_000;
    while (!existsSync(abortLog) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const [index, step] = readFileSync(abortLog, "utf8").trim().split(" ").map(Number);
    expect(index).toBe(0);
    expect(step).toBeGreaterThan(3);
    expect(step).toBeLessThan(5000);
  });
});

describe("parseChatRequest", () => {
  it("normalises text parts, the developer role, stop strings and max_completion_tokens", () => {
    const parsed = parseChatRequest({
      model: "m",
      messages: [
        { role: "developer", content: "be brief" },
        { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] },
      ],
      max_tokens: 10,
      max_completion_tokens: 20,
      stop: "END",
      seed: 7,
      top_p: 0.5,
    });
    expect(parsed).toMatchObject({
      messages: [{ role: "system", content: "be brief" }, { role: "user", content: "ab" }],
      maxTokens: 20,
      stop: ["END"],
      seed: 7,
      topP: 0.5,
      stream: false,
      includeUsage: false,
    });
  });
});
