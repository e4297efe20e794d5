import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { END_OF_STREAM, type Device, type RequestContext } from "../src/api/model-api.js";
import { ChatAPI, chatModel, type PromptInput } from "../src/chat/chat-api.js";
import type { ChatStep } from "../src/chat/types.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { openAISpec, parseChatRequest } from "../src/openai/spec.js";

// n > 1 (issue 28, item 3) on the real tiny-random-llama: a request's choices are rows of one batch whose shared prompt
// is prefilled once; each choice is what the same request with n = 1 (and seed + i) gives; `index` on every choice and
// chunk, for chat and completions, streaming and not, through the official openai client.
const MODEL = "tiny-random-llama";
const device: Device = { accelerator: "cpu", index: 0, threads: 1, id: "cpu" };
const ctx = (): RequestContext => ({ signal: new AbortController().signal, headers: {}, state: {}, requestId: "test" });

describe("the engine: n choices are rows of one batch, the prompt prefilled once", () => {
  let api: ChatAPI;
  const forwards: number[][] = [];

  beforeAll(async () => {
    api = new ChatAPI({ model: MODEL });
    await api.setup(device, { workerId: -1, maxBatchSize: 8 });
    // Record the input shape of every forward pass the engine makes.
    const model = (api as unknown as { engine: { model: { forward: (inputs: Record<string, { dims: number[] }>) => Promise<unknown> } } }).engine.model;
    const forward = model.forward.bind(model);
    model.forward = (inputs) => {
      forwards.push(inputs.input_ids.dims);
      return forward(inputs);
    };
  }, 60_000);

  async function texts(body: Record<string, unknown>): Promise<string[]> {
    const input = (await api.decodeRequest(parseChatRequest({ messages: [{ role: "user", content: "Tell me a story" }], ...body }, new Set(["n"])), ctx())) as PromptInput | PromptInput[];
    const out: string[] = [];
    for await (const [step] of api.predict([input], { signals: [new AbortController().signal], device })) {
      // END_OF_STREAM closes the request's stream (all its choices are done): it carries no text
      if (step === undefined || step === END_OF_STREAM) continue;
      for (const s of Array.isArray(step) ? step : [step as ChatStep]) out[s.index ?? 0] = (out[s.index ?? 0] ?? "") + s.text;
    }
    return out;
  }

  it("prefills one row for three choices, then decodes three rows", async () => {
    forwards.length = 0;
    const choices = await texts({ n: 3, max_tokens: 6 });
    expect(choices).toHaveLength(3);
    expect(forwards[0][0]).toBe(1); // the prompt, once
    expect(forwards[0][1]).toBeGreaterThan(1);
    expect(forwards[1]).toEqual([3, 1]); // then one token for each choice per step
  });

  it("each choice is the n = 1 answer: greedy choices equal it, seeded choice i equals seed + i", async () => {
    const [greedy] = await texts({ max_tokens: 10 });
    expect(await texts({ n: 2, max_tokens: 10 })).toEqual([greedy, greedy]);
    const sampled = await texts({ n: 3, max_tokens: 10, temperature: 1, seed: 40 });
    const alone = [(await texts({ max_tokens: 10, temperature: 1, seed: 40 }))[0], (await texts({ max_tokens: 10, temperature: 1, seed: 41 }))[0], (await texts({ max_tokens: 10, temperature: 1, seed: 42 }))[0]];
    expect(sampled).toEqual(alone);
    expect(new Set(sampled).size).toBeGreaterThan(1);
  }, 60_000);
});

describe("n over HTTP with the openai client", () => {
  let server: BatchwiseServer;
  let client: OpenAI;
  beforeAll(async () => {
    server = await createServer({ api: chatModel({ model: MODEL }), spec: openAISpec(), maxBatchSize: 8, maxBatchesPerWorker: 4, port: 0, log: false });
    client = new OpenAI({ baseURL: `${await server.listen()}/v1`, apiKey: "unused", maxRetries: 0 });
  }, 120_000);
  afterAll(() => server?.close());
  const messages = [{ role: "user" as const, content: "Tell me a story" }];

  it("chat, non-streaming: n choices with their index; the prompt's tokens counted once", async () => {
    const one = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 8, temperature: 1, seed: 3 });
    const reply = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 8, temperature: 1, seed: 3, n: 3 });
    expect(reply.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(reply.choices[0].message.content).toBe(one.choices[0].message.content);
    for (const c of reply.choices) expect(["stop", "length"]).toContain(c.finish_reason);
    expect(reply.usage!.prompt_tokens).toBe(one.usage!.prompt_tokens);
    expect(reply.usage!.completion_tokens).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it("chat, streaming: every chunk names its choice, each choice finishes, usage at the end", async () => {
    const reply = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 8, temperature: 1, seed: 3, n: 3 });
    const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 8, temperature: 1, seed: 3, n: 3, stream: true, stream_options: { include_usage: true } });
    const texts = ["", "", ""];
    const finishes: (string | null)[] = [null, null, null];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        texts[c.index] += c.delta?.content ?? "";
        finishes[c.index] = c.finish_reason ?? finishes[c.index];
      }
      usage = chunk.usage ?? usage;
    }
    expect(texts).toEqual(reply.choices.map((c) => c.message.content));
    expect(finishes).toEqual(reply.choices.map((c) => c.finish_reason));
    expect(usage).toMatchObject({ prompt_tokens: reply.usage!.prompt_tokens, completion_tokens: reply.usage!.completion_tokens });
  }, 60_000);

  it("completions: choices of each prompt in order (prompt 0's n, then prompt 1's), streaming and not", async () => {
    const prompt = ["Once upon a time", "The dragon"];
    const reply = await client.completions.create({ model: MODEL, prompt, max_tokens: 6, n: 2 });
    expect(reply.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    const alone = await Promise.all(prompt.map((p) => client.completions.create({ model: MODEL, prompt: p, max_tokens: 6 })));
    expect(reply.choices.map((c) => c.text)).toEqual([alone[0], alone[0], alone[1], alone[1]].map((r) => r.choices[0].text));
    expect(reply.usage!.prompt_tokens).toBe(alone[0].usage!.prompt_tokens + alone[1].usage!.prompt_tokens);
    const stream = await client.completions.create({ model: MODEL, prompt, max_tokens: 6, n: 2, stream: true });
    const texts = ["", "", "", ""];
    for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.text;
    expect(texts).toEqual(reply.choices.map((c) => c.text));
  }, 60_000);

  it("n beyond 16 choices is a 400 naming it", async () => {
    const error = await client.chat.completions.create({ model: MODEL, messages, n: 17 }).then(() => null, (e) => e);
    expect(error).toMatchObject({ status: 400, error: { param: "n" } });
  });
});
