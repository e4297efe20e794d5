import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RequestContext } from "../src/api/model-api.js";
import { ChatAPI, chatModel } from "../src/chat/chat-api.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { openAISpec, parseChatRequest } from "../src/openai/spec.js";
import type { ChatStep } from "../src/chat/types.js";

// The chat model behind the OpenAI spec on a real server (model in a worker thread, dynamic batching on), through
// the official openai client, checked against the same model generating in this process.
const MODEL = "tiny-random-llama";
let server: BatchwiseServer;
let client: OpenAI;
let local: ChatAPI;
let baseUrl: string;

beforeAll(async () => {
  // One batch per worker (chatModel()'s serving defaults admit 8): concurrent streams then queue and form one batch.
  const options = { maxBatchSize: 8, batchTimeout: 0.01, maxBatchesPerWorker: 1 };
  server = await createServer({ api: chatModel({ model: MODEL }), spec: openAISpec(), ...options, port: 0, log: false });
  baseUrl = await server.listen();
  client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: "unused", maxRetries: 0 });
  local = new ChatAPI({ model: MODEL });
  await local.setup({ accelerator: "cpu", index: 0, threads: 1, id: "cpu" }, { workerId: -1, maxBatchSize: 1 });
});
afterAll(() => server?.close());

/** Greedy text of the same model in this process, no HTTP. */
async function inProcess(content: string, maxTokens: number) {
  const ctx: RequestContext = { signal: new AbortController().signal, headers: {}, state: {}, requestId: "test" };
  const input = await local.decodeRequest(parseChatRequest({ messages: [{ role: "user", content }], max_tokens: maxTokens }), ctx);
  let text = "";
  for await (const step of local.predict([input], { signals: [ctx.signal], device: { accelerator: "cpu", index: 0, threads: 1, id: "cpu" } })) {
    text += (step[0] as ChatStep | undefined)?.text ?? "";
  }
  return text;
}

async function streamText(content: string, maxTokens: number) {
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content }],
    max_tokens: maxTokens,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let contentChunks = 0;
  let finishReason: string | null = null;
  let usage: OpenAI.CompletionUsage | null | undefined;
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta.content;
    if (delta) {
      text += delta;
      contentChunks++;
    }
    finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
    usage = chunk.usage ?? usage;
  }
  return { text, contentChunks, finishReason, usage };
}

describe("chat model served through the OpenAI spec", () => {
  it("answers with the in-process greedy text, real token usage and finish_reason length", async () => {
    const reply = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Hello there" }],
      max_tokens: 20,
      temperature: 0,
    });
    expect(reply.model).toBe(MODEL);
    expect(reply.choices[0].message.content).toBe(await inProcess("Hello there", 20));
    expect(reply.choices[0].finish_reason).toBe("length");
    expect(reply.usage?.completion_tokens).toBe(20);
    expect(reply.usage?.prompt_tokens).toBe(22); // the ChatML-templated prompt, counted by the tokenizer
  });

  it("streams the same text token by token, with usage at the end", async () => {
    const streamed = await streamText("Hello there", 20);
    expect(streamed.text).toBe(await inProcess("Hello there", 20));
    // several chunks, not one answer; how many depends on how far behind the client is (steps already waiting for
    // it are merged into one chunk)
    expect(streamed.contentChunks).toBeGreaterThan(1);
    expect(streamed.finishReason).toBe("length");
    expect(streamed.usage).toEqual({ prompt_tokens: 22, completion_tokens: 20, total_tokens: 42 });
  });

  it("gives concurrent streams (batched together on the worker) each its own tokens", async () => {
    const prompts = ["Tell me about dragons", "hi", "What is the capital of France?", "Count to ten"];
    // long enough that whichever stream reaches the idle worker first keeps it busy while the others queue up
    const tokens = (i: number) => 100 + 8 * i;
    const served = await Promise.all(prompts.map((p, i) => streamText(p, tokens(i))));
    for (let i = 0; i < prompts.length; i++) {
      expect(served[i].text).toBe(await inProcess(prompts[i], tokens(i)));
      // all max_tokens, unless the (random-weight) model happened to emit its end token first
      if (served[i].finishReason === "length") expect(served[i].usage?.completion_tokens).toBe(tokens(i));
      else expect(served[i].usage?.completion_tokens).toBeLessThan(tokens(i));
    }
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    const batches = Number(/batchwise_batch_size_count\{[^}]*\} (\d+)/.exec(metrics)?.[1]);
    const singles = Number(/batchwise_batch_size_bucket\{le="1"[^}]*\} (\d+)/.exec(metrics)?.[1]);
    expect(batches - singles).toBeGreaterThan(0); // at least one batch generated several streams at once
  });

  it("a short stream batched with a long one ends when its own tokens are done, not when the long one's are", async () => {
    const multiBatches = async () => {
      const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
      const count = Number(/batchwise_batch_size_count\{[^}]*\} (\d+)/.exec(metrics)?.[1]);
      return (count - Number(/batchwise_batch_size_bucket\{le="1"[^}]*\} (\d+)/.exec(metrics)?.[1])) || 0; // no batch yet: NaN
    };
    const before = await multiBatches();
    let longText = "";
    const stream = async (content: string, maxTokens: number, onText: (text: string) => void = () => {}) => {
      const chunks = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content }], max_tokens: maxTokens, temperature: 0, stream: true });
      for await (const chunk of chunks) onText(chunk.choices[0]?.delta.content ?? "");
    };
    // the blocker holds the worker, so the next two queue up and are generated as one batch
    let blockerStarted = false;
    const blocker = stream("Count to ten", 400, () => (blockerStarted = true));
    while (!blockerStarted) await new Promise((r) => setTimeout(r, 5));
    const long = stream("Tell me about dragons", 120, (text) => (longText += text));
    await new Promise((r) => setTimeout(r, 20));
    await stream("hi", 2);
    const longTextWhenShortEnded = longText;
    await Promise.all([long, blocker]);
    expect(await multiBatches()).toBeGreaterThan(before);
    // ordering, not timing: the 2-token answer was complete long before the 120-token one
    expect(longTextWhenShortEnded.length).toBeLessThan(longText.length / 2);
  });

  it("ends with finish_reason stop at a stop string", async () => {
    const full = await inProcess("Hello there", 30);
    const stop = full.slice(8, 11);
    const reply = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Hello there" }],
      max_tokens: 30,
      temperature: 0,
      stop,
    });
    expect(reply.choices[0].finish_reason).toBe("stop");
    expect(reply.choices[0].message.content).toBe(full.slice(0, full.indexOf(stop)));
  });

  it("lists the model and refuses a prompt beyond the context window with a 400", async () => {
    expect((await client.models.list()).data.map((m) => m.id)).toEqual([MODEL]);
    await expect(
      client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "word ".repeat(3000) }] }),
    ).rejects.toMatchObject({ status: 400, code: "context_length_exceeded" });
  });

  it("counts tokens in the worker: a too-long prompt is a 400 there too, streamed or not, and fails only itself", async () => {
    // Within the main thread's character cap, so only the worker's tokenizer can tell it does not fit.
    const long = [{ role: "user" as const, content: "word ".repeat(3000) }];
    const [refused, refusedStream, fine] = await Promise.allSettled([
      client.chat.completions.create({ model: MODEL, messages: long }),
      client.chat.completions.create({ model: MODEL, messages: long, stream: true }),
      client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
    ]);
    expect(refused).toMatchObject({ status: "rejected", reason: { status: 400, code: "context_length_exceeded" } });
    expect(refusedStream).toMatchObject({ status: "rejected", reason: { status: 400, code: "context_length_exceeded" } });
    expect(fine).toMatchObject({ status: "fulfilled", value: { usage: { completion_tokens: 4 } } });
  });
});
