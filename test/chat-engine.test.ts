import { Tensor, type PreTrainedModel } from "@huggingface/transformers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { END_OF_STREAM, type Device, type RequestContext } from "../src/api/model-api.js";
import { ChatAPI, encodeChat, type PromptInput } from "../src/chat/chat-api.js";
import type { GenerationRequest } from "../src/chat/engine.js";
import { loadCausalLM, loadTokenizer, resolveModel } from "../src/chat/model.js";
import type { ChatStep } from "../src/chat/types.js";
import { parseChatRequest } from "../src/openai/spec.js";

// The chat API in-process on the real local models: the decode loop against transformers.js's own generate(),
// batched against one-at-a-time, seeded sampling, stop strings, aborts and context limits.
const device: Device = { accelerator: "cpu", index: 0, threads: 1, id: "cpu" };
const ctx = (): RequestContext => ({ signal: new AbortController().signal, headers: {}, state: {}, requestId: "test" });

interface Result {
  text: string;
  pieces: string[];
  finishReason?: string;
  completionTokens?: number;
  promptTokens?: number;
  /** predict yielded END_OF_STREAM for it (its stream closes then, not when the batch's longest one does). */
  ended?: boolean;
}

/**
 * A request as the server takes it: decodeRequest (the main thread's checks), then prepare (tokenizing, in the
 * worker). The result is the input predict gets, with the token ids it will generate from.
 */
async function decode(api: ChatAPI, body: Record<string, unknown>): Promise<PromptInput & GenerationRequest> {
  const input = (await api.decodeRequest(parseChatRequest(body), ctx())) as PromptInput;
  return { ...input, ...(await api.prepare(input)) };
}

/** Run one predict call to the end, collecting each item's text pieces and final step. */
async function collect(api: ChatAPI, inputs: PromptInput[], signals = inputs.map(() => new AbortController().signal), onStep?: (n: number) => void) {
  const results: Result[] = inputs.map(() => ({ text: "", pieces: [] }));
  let steps = 0;
  for await (const step of api.predict(inputs, { signals, device })) {
    step.forEach((output, i) => {
      if (output === END_OF_STREAM) return results[i].ended = true; // after its last step: the request is done
      const item = output as ChatStep | undefined;
      if (!item) return;
      expect(results[i].ended).toBeUndefined();
      results[i].text += item.text;
      if (item.text) results[i].pieces.push(item.text);
      if (item.finishReason) {
        results[i].finishReason = item.finishReason;
        results[i].completionTokens = item.usage?.completionTokens;
        results[i].promptTokens = item.usage?.promptTokens;
      }
    });
    onStep?.(++steps);
  }
  for (const result of results) if (result.finishReason) expect(result.ended).toBe(true);
  return results;
}

const prompts = ["Hello there", "Tell me a story about a dragon and a very small cat", "hi", "What is 2+2? Explain carefully."];
const chat = (content: string, extra: Record<string, unknown> = {}) => ({ messages: [{ role: "user", content }], ...extra });

describe.each(["tiny-random-llama", "aidreams260K"])("ChatAPI on %s", (model) => {
  let api: ChatAPI;
  let reference: PreTrainedModel;

  beforeAll(async () => {
    api = new ChatAPI({ model });
    await api.setup(device, { workerId: -1, maxBatchSize: 8 });
    reference = await loadCausalLM(resolveModel(model), { precision: "auto", accelerator: "cpu", threads: 1, allowRemote: false });
  });
  afterAll(() => reference?.dispose());

  it("generates greedily exactly what transformers.js generate() does, with usage counted in tokens", async () => {
    const tokenizer = await loadTokenizer(resolveModel(model), false);
    for (const prompt of prompts.slice(0, 2)) {
      const input = await decode(api, chat(prompt, { max_tokens: 24 }));
      const ids = encodeChat(tokenizer, [{ role: "user", content: prompt }]);
      expect(input.promptIds).toEqual(ids);
      const output = (await reference.generate({
        inputs: new Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
        max_new_tokens: 24,
        do_sample: false,
      } as never)) as Tensor;
      const generated = (output.tolist() as bigint[][])[0].slice(ids.length).map(Number);
      const [result] = await collect(api, [input]);
      expect(result.text).toBe(tokenizer.decode(generated, { skip_special_tokens: true }));
      expect(result.completionTokens).toBe(generated.length);
      expect(result.promptTokens).toBe(ids.length);
      expect(result.finishReason).toBe(generated.length === 24 ? "length" : "stop");
    }
  });

  it("batched generation equals one-at-a-time generation, while rows finish at different steps", async () => {
    const inputs = await Promise.all(prompts.map((p, i) => decode(api, chat(p, { max_tokens: 8 + 10 * i }))));
    const alone = [];
    for (const input of inputs) alone.push((await collect(api, [input]))[0]);
    const together = await collect(api, inputs);
    expect(together.map((r) => r.text)).toEqual(alone.map((r) => r.text));
    expect(together.map((r) => r.completionTokens)).toEqual(alone.map((r) => r.completionTokens));
    expect(new Set(together.map((r) => r.completionTokens)).size).toBeGreaterThan(1);
  });

  it("lets a second predict call join a running batch (continuous batching) without changing either output", async () => {
    const [a, b] = await Promise.all([decode(api, chat(prompts[1], { max_tokens: 40 })), decode(api, chat(prompts[3], { max_tokens: 20 }))]);
    const aloneA = (await collect(api, [a]))[0];
    const aloneB = (await collect(api, [b]))[0];
    let joinB: Promise<Result[]> | undefined;
    const first = collect(api, [a], undefined, (step) => {
      if (step === 5) joinB = collect(api, [b]); // arrives while A is mid-generation
    });
    const [resultA] = await first;
    const [resultB] = await joinB!;
    expect(resultA.text).toBe(aloneA.text);
    expect(resultB.text).toBe(aloneB.text);
  });

  it("samples reproducibly for a given seed, alone or in a batch, and differently for another seed", async () => {
    const sampled = (seed: number) => decode(api, chat(prompts[0], { max_tokens: 20, temperature: 1, top_p: 0.9, seed }));
    const [one] = await collect(api, [await sampled(42)]);
    const [again, other] = await collect(api, [await sampled(42), await sampled(43)]);
    expect(again.text).toBe(one.text);
    expect(other.text).not.toBe(one.text);
  });

  it("honours stop strings: text ends before the stop, finish_reason stop, the stop never streamed", async () => {
    const [full] = await collect(api, [await decode(api, chat(prompts[0], { max_tokens: 30 }))]);
    const stop = full.text.slice(10, 13);
    const [stopped] = await collect(api, [await decode(api, chat(prompts[0], { max_tokens: 30, stop: [stop, "never-there"] }))]);
    expect(stopped.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
    expect(stopped.finishReason).toBe("stop");
    expect(stopped.pieces.join("")).toBe(stopped.text);
    expect(stopped.pieces.some((p) => p.includes(stop))).toBe(false);
  });

  it("stops a row whose signal aborts and lets the others run to their end", async () => {
    const inputs = await Promise.all([decode(api, chat(prompts[0], { max_tokens: 60 })), decode(api, chat(prompts[2], { max_tokens: 30 }))]);
    const controllers = inputs.map(() => new AbortController());
    const results = await collect(api, inputs, controllers.map((c) => c.signal), (step) => {
      if (step === 3) controllers[0].abort();
    });
    expect(results[0].finishReason).toBeUndefined();
    expect(results[0].pieces.length).toBeLessThanOrEqual(4);
    expect(results[1].finishReason).toBeDefined();
  });
});

describe("ChatAPI limits and loading", () => {
  it("rejects a prompt longer than the context window with a 400, and clips max_tokens to what fits", async () => {
    const api = new ChatAPI({ model: "aidreams260K" }); // 128-token context
    await expect(decode(api, chat("dream ".repeat(200)))).rejects.toMatchObject({ status: 400, code: "context_length_exceeded" });
    // The main thread's decodeRequest does not tokenize: within the character cap the prompt passes it as text, and
    // the worker's prepare counts its tokens.
    const untokenized = (await api.decodeRequest(parseChatRequest(chat("dream ".repeat(200))), ctx())) as PromptInput;
    expect(untokenized).not.toHaveProperty("promptIds");
    expect(untokenized.prompt).toEqual([{ role: "user", content: "dream ".repeat(200) }]);
    const input = await decode(api, chat("dream ".repeat(15), { max_tokens: 500 }));
    expect(input.promptIds.length + input.maxTokens).toBe(128);
  });

  it("refuses a prompt by its length before tokenizing it: 32 characters per token of context at most", async () => {
    const api = new ChatAPI({ model: "aidreams260K" }); // 128-token context → 4,096 characters
    await expect(decode(api, chat("x".repeat(4097)))).rejects.toMatchObject({
      status: 400,
      code: "context_length_exceeded",
      message: expect.stringMatching(/4097 characters.*128 tokens, at most 4096 characters/),
    });
    // just under the cap it is tokenized, and refused by its token count instead
    await expect(decode(api, chat("x ".repeat(2048)))).rejects.toMatchObject({ message: expect.stringMatching(/tokens; this model's context/) });
  });

  it("fails fast with a clear message when the model is not found anywhere", async () => {
    const local = new ChatAPI({ model: "no-such-model", allowRemote: false });
    await expect(decode(local, chat("hi"))).rejects.toThrow(/no-such-model.*not found: looked for a folder with config.json at .*no-such-model/);
    // A hub id: offline here, so the download fails and the error says where we looked and what to do.
    const hub = new ChatAPI({ model: "HuggingFaceTB/SmolLM2-135M-Instruct" });
    await expect(decode(hub, chat("hi"))).rejects.toThrow(/not available locally \(looked in .*\).*BATCHWISE_MODELS_DIR/);
  });

  it("falls back to plain 'role: content' lines for a tokenizer without a chat template", async () => {
    const tokenizer = await loadTokenizer(resolveModel("aidreams260K"), false);
    tokenizer.chat_template = null;
    const ids = encodeChat(tokenizer, [{ role: "system", content: "Dream." }, { role: "user", content: "Go" }]);
    expect(tokenizer.decode(ids, { skip_special_tokens: true })).toBe("system: Dream.\nuser: Go\nassistant:");
  });
});
