import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatModel } from "../src/chat/chat-api.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { Channel } from "../src/server/channel.js";
import { openAISpec, parseCompletionRequest, type ChatStep } from "../src/openai/spec.js";

// /v1/completions, tools, refused fields and the LLM metrics, with the official `openai` client and the real test
// model behind a real server.
const MODEL = "tiny-random-llama";
let server: BatchwiseServer;
let client: OpenAI;
let url: string;

beforeAll(async () => {
  server = await createServer({ api: chatModel({ model: MODEL }), spec: openAISpec(), maxBatchSize: 8, batchTimeout: 0.005, maxBatchesPerWorker: 4, port: 0, log: false });
  url = await server.listen();
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 });
}, 120_000);
afterAll(() => server?.close());

const user = (content: string) => [{ role: "user" as const, content }];

describe("/v1/completions streaming merges the steps already waiting, per choice", () => {
  it("gives each choice one chunk with its backlog (text in order, its own finish reason), then usage and [DONE]", async () => {
    const steps = new Channel<ChatStep[]>();
    steps.push([{ text: " a0", index: 0 }, { text: " b0", index: 1 }]);
    steps.push([{ text: " a1", index: 0 }]);
    steps.push([{ text: " b1", index: 1, finishReason: "length", usage: { promptTokens: 2, completionTokens: 2 } }]);
    steps.push([{ text: " a2", index: 0, finishReason: "stop", usage: { promptTokens: 3, completionTokens: 3 } }]);
    steps.end();
    // Through async generators, as the server's encode and metrics stages pass the worker's steps on.
    async function* layer<T>(source: AsyncIterable<T>) {
      for await (const value of source) yield value;
    }
    const request = parseCompletionRequest({ model: MODEL, prompt: ["a", "b"], stream: true, stream_options: { include_usage: true } });
    const response = await openAISpec().respond(request, layer(layer(steps)), { signal: new AbortController().signal, headers: {}, state: {}, requestId: "test" });
    if (response.kind !== "stream") throw new Error("expected a stream");
    let text = "";
    for await (const piece of response.body) text += piece;
    const events = text.split("\n\n").filter(Boolean);
    expect(events[events.length - 1]).toBe("data: [DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, "")));
    expect(chunks.slice(0, 2).map((c) => c.choices[0])).toEqual([
      { text: " a0 a1 a2", index: 0, logprobs: null, finish_reason: "stop" },
      { text: " b0 b1", index: 1, logprobs: null, finish_reason: "length" },
    ]);
    expect(chunks[2]).toMatchObject({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 } });
    expect(chunks).toHaveLength(3);
  });
});

describe("/v1/completions", () => {
  it("answers a string prompt with text, usage and finish_reason, and echo prepends the prompt", async () => {
    const plain = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
    expect(plain.object).toBe("text_completion");
    expect(plain.choices).toHaveLength(1);
    expect(plain.choices[0].finish_reason).toBe("length");
    expect(plain.usage!.completion_tokens).toBe(8);
    expect(plain.usage!.prompt_tokens).toBeGreaterThan(2);
    const echoed = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 8, temperature: 0, echo: true });
    expect(echoed.choices[0].text).toBe("Once upon a time" + plain.choices[0].text);
  });

  it("answers a list of prompts with one choice each, the same text as each prompt alone (greedy)", async () => {
    const prompts = ["The cat", "A robot paints", "Dreams of"];
    const together = await client.completions.create({ model: MODEL, prompt: prompts, max_tokens: 6, temperature: 0 });
    expect(together.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    for (const [i, prompt] of prompts.entries()) {
      const alone = await client.completions.create({ model: MODEL, prompt, max_tokens: 6, temperature: 0 });
      expect(together.choices[i].text).toBe(alone.choices[0].text);
    }
    expect(together.usage!.completion_tokens).toBe(18);
  });

  it("streams, with stop strings and usage", async () => {
    const full = await client.completions.create({ model: MODEL, prompt: "Hello", max_tokens: 12, temperature: 0 });
    const stream = await client.completions.create({ model: MODEL, prompt: "Hello", max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe(full.choices[0].text);
    expect(usage?.completion_tokens).toBe(12);
    const stop = full.choices[0].text.slice(3, 5);
    const stopped = await client.completions.create({ model: MODEL, prompt: "Hello", max_tokens: 12, temperature: 0, stop });
    expect(stopped.choices[0].finish_reason).toBe("stop");
    expect(stopped.choices[0].text).toBe(full.choices[0].text.slice(0, full.choices[0].text.indexOf(stop)));
  });

  it("samples reproducibly with a seed", async () => {
    const a = await client.completions.create({ model: MODEL, prompt: "x", max_tokens: 10, temperature: 1, top_p: 0.9, seed: 5 });
    const b = await client.completions.create({ model: MODEL, prompt: "x", max_tokens: 10, temperature: 1, top_p: 0.9, seed: 5 });
    expect(a.choices[0].text).toBe(b.choices[0].text);
  });
});

describe("fields the server cannot honour are refused, never ignored", () => {
  const refused = async (body: Record<string, unknown>, path = "/v1/chat/completions") => {
    const response = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as { error: { code: string; param: string | null; message: string; type: string } } };
  };

  it("tools for a model whose chat template has none, and a forced tool_choice", async () => {
    const tools = [{ type: "function" as const, function: { name: "get_weather", parameters: { type: "object", properties: {} } } }];
    const error = await client.chat.completions.create({ model: MODEL, messages: user("weather?"), tools }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as { code: string }).code).toBe("unsupported_parameter");
    const required = await refused({ messages: user("x"), tools, tool_choice: "required" });
    expect(required.status).toBe(400);
    expect(required.body.error.message).toContain("tool_choice");
    // tool_choice "none" means: answer without tools — honoured by leaving them out of the prompt.
    const none = await client.chat.completions.create({ model: MODEL, messages: user("x"), tools, tool_choice: "none", max_tokens: 3 });
    expect(none.choices[0].finish_reason).toBe("length");
  });

  it.each([
    [{ logprobs: true }, "logprobs"],
    [{ logit_bias: { "5": 10 } }, "logit_bias"],
    [{ presence_penalty: 0.5 }, "presence_penalty"],
    [{ frequency_penalty: 1 }, "frequency_penalty"],
    [{ n: 17 }, "n"], // n up to 16 is honoured (chat-choices.test.ts)
    [{ response_format: { type: "yaml" } }, "response_format.type"],
  ])("chat %j → 400 naming %s", async (fields, param) => {
    const { status, body } = await refused({ messages: user("x"), ...fields });
    expect(status).toBe(400);
    expect(body.error.param).toBe(param);
    expect(body.error.type).toBe("invalid_request_error");
  });

  it.each([
    [{ best_of: 3 }, "best_of"],
    [{ suffix: "end" }, "suffix"],
    [{ logprobs: 2 }, "logprobs"],
    [{ prompt: [1, 2, 3] }, "prompt"],
  ])("completions %j → 400 naming %s", async (fields, param) => {
    const { status, body } = await refused({ prompt: "x", ...fields }, "/v1/completions");
    expect(status).toBe(400);
    expect(body.error.param).toBe(param);
  });

  it("accepts those fields at their neutral values", async () => {
    const reply = await client.chat.completions.create({ model: MODEL, messages: user("x"), max_tokens: 2, logprobs: false, presence_penalty: 0, frequency_penalty: 0, logit_bias: {} });
    expect(reply.choices[0].message.content).toBeTypeOf("string");
  });
});

describe("LLM metrics", () => {
  it("counts tokens, finish reasons and time to first token in /metrics", async () => {
    const metric = (text: string, name: string) =>
      text
        .split("\n")
        .filter((line) => line.startsWith(name))
        .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
    const before = await (await fetch(`${url}/metrics`)).text();
    const reply = await client.chat.completions.create({ model: MODEL, messages: user("count me"), max_tokens: 7 });
    const after = await (await fetch(`${url}/metrics`)).text();
    expect(metric(after, "batchwise_llm_generation_tokens_total") - metric(before, "batchwise_llm_generation_tokens_total")).toBe(7);
    expect(metric(after, "batchwise_llm_prompt_tokens_total") - metric(before, "batchwise_llm_prompt_tokens_total")).toBe(reply.usage!.prompt_tokens);
    const length = 'batchwise_llm_requests_finished_total{endpoint="/v1/chat/completions",finish_reason="length"}';
    expect(metric(after, length) - metric(before, length)).toBe(1);
    const ttftCount = "batchwise_llm_time_to_first_token_seconds_count";
    expect(metric(after, ttftCount) - metric(before, ttftCount)).toBe(1);
    for (const name of ["batchwise_llm_requests_running", "batchwise_llm_requests_waiting", "batchwise_llm_inter_token_latency_seconds_bucket"]) {
      expect(after).toContain(name);
    }
    expect(metric(after, "batchwise_llm_requests_running") + metric(after, "batchwise_llm_requests_waiting")).toBe(0);
  });
});
