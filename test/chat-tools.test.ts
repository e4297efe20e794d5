import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatAPI, chatModel, encodeChat } from "../src/chat/chat-api.js";
import { loadTokenizer, resolveModel } from "../src/chat/model.js";
import { HERMES_TEMPLATE } from "../src/chat/templates.js";
import { ToolCallParser } from "../src/chat/tool-calls.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { openAISpec } from "../src/openai/spec.js";
import { startChild } from "./fixtures/child-server.js";

// Tool calls with the real tiny-random-llama (random weights: its free text is noise) served with the `hermes` chat
// template: a forced tool_choice makes constrained decoding write a call whose arguments match the function's
// parameters, the openai client runs its tool loop (one call, one result, one answer), and tool results render back.
const MODEL = "tiny-random-llama";
let server: BatchwiseServer;
let client: OpenAI;

beforeAll(async () => {
  server = await createServer({
    api: chatModel({ model: MODEL, chatTemplate: "hermes" }),
    spec: openAISpec(),
    maxBatchSize: 8,
    maxBatchesPerWorker: 4,
    port: 0,
    log: false,
  });
  client = new OpenAI({ baseURL: `${await server.listen()}/v1`, apiKey: "unused", maxRetries: 0 });
}, 120_000);
afterAll(() => server?.close());

const weather: OpenAI.ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather of a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, unit: { enum: ["celsius", "fahrenheit"] }, days: { type: "integer" } },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
};
const time: OpenAI.ChatCompletionTool = {
  type: "function",
  function: { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string" } }, required: ["zone"], additionalProperties: false } },
};

/** A call's arguments parse and match get_weather's parameters (required keys, the enum, no other keys). */
function expectWeatherArguments(text: string) {
  const args = JSON.parse(text) as Record<string, unknown>;
  expect(typeof args.city).toBe("string");
  expect(["celsius", "fahrenheit"]).toContain(args.unit);
  if ("days" in args) expect(Number.isInteger(args.days)).toBe(true);
  expect(Object.keys(args).every((k) => ["city", "unit", "days"].includes(k))).toBe(true);
}

describe("tool calls with the hermes template", () => {
  it("the openai client's tool loop: a forced call, its result rendered back, then an answer", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "What is the weather in Paris?" }];
    const first = await client.chat.completions.create({ model: MODEL, messages, tools: [weather, time], tool_choice: "required", max_tokens: 60 });
    const choice = first.choices[0];
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.id).toMatch(/^call_/);
    expect(["get_weather", "get_time"]).toContain(call.function.name);
    if (call.function.name === "get_weather") expectWeatherArguments(call.function.arguments);
    else expect(typeof JSON.parse(call.function.arguments).zone).toBe("string");

    // The loop: the assistant's call and the tool's result go back; the model answers (tool_choice auto).
    messages.push(choice.message as OpenAI.ChatCompletionAssistantMessageParam, { role: "tool", tool_call_id: call.id, content: '{"temperature": 21}' });
    const second = await client.chat.completions.create({ model: MODEL, messages, tools: [weather, time], max_tokens: 8 });
    expect(second.choices[0].message.role).toBe("assistant");
    expect(["stop", "length", "tool_calls"]).toContain(second.choices[0].finish_reason);
    // The rendered history (call + result) is in the prompt: it is longer than the first request's.
    expect(second.usage!.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens + 20);
  }, 60_000);

  it("a named function is the one called, its arguments valid for its parameters", async () => {
    const reply = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "weather?" }],
      tools: [time, weather],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      max_tokens: 60,
      temperature: 1,
      seed: 7,
    });
    const call = reply.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    expectWeatherArguments(call.function.arguments);
    expect(reply.choices[0].finish_reason).toBe("tool_calls");
  }, 60_000);

  it("streams delta.tool_calls in OpenAI's chunking: id, type and name first, then argument fragments", async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "weather?" }],
      tools: [weather],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      max_tokens: 60,
      stream: true,
    });
    const deltas: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      deltas.push(...(chunk.choices[0]?.delta?.tool_calls ?? []));
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(deltas[0]).toMatchObject({ index: 0, type: "function", function: { name: "get_weather", arguments: "" } });
    expect(deltas[0].id).toMatch(/^call_/);
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.slice(1).every((d) => d.index === 0 && d.id === undefined && d.function?.name === undefined)).toBe(true);
    expectWeatherArguments(deltas.map((d) => d.function?.arguments ?? "").join(""));
    expect(finish).toBe("tool_calls");
  }, 60_000);

  it("refuses what it cannot honour: an unknown named function, a forced call with no tools or with response_format", async () => {
    const refused = (body: Record<string, unknown>) =>
      client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "x" }], max_tokens: 4, ...body } as never).then(
        () => null,
        (e: InstanceType<typeof OpenAI.APIError>) => e.status,
      );
    expect(await refused({ tools: [weather], tool_choice: { type: "function", function: { name: "nope" } } })).toBe(400);
    expect(await refused({ tool_choice: "required" })).toBe(400);
    expect(await refused({ tools: [weather], tool_choice: "required", response_format: { type: "json_object" } })).toBe(400);
    const pattern = { type: "function", function: { name: "f", parameters: { type: "object", properties: { a: { type: "string", pattern: "x" } } } } };
    expect(await refused({ tools: [pattern], tool_choice: "required" })).toBe(400);
  }, 60_000);
});

describe("the hermes template", () => {
  it("renders tools into the system turn, an assistant's calls as <tool_call> blocks and tool results as <tool_response>", async () => {
    const tokenizer = await loadTokenizer(resolveModel(MODEL), false);
    const messages = [
      { role: "user" as const, content: "Weather in Paris?" },
      { role: "assistant" as const, content: "", tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
      { role: "tool" as const, content: '{"temperature": 21}', tool_call_id: "call_1" },
    ];
    const text = tokenizer.apply_chat_template(messages as never, { tokenize: false, add_generation_prompt: true, tools: [weather] as never, chat_template: HERMES_TEMPLATE }) as string;
    // What the app tokenizes is this text.
    expect(encodeChat(tokenizer, messages, [weather], HERMES_TEMPLATE)).toEqual(tokenizer.encode(text, { add_special_tokens: false }));
    expect(text).toContain('<tools>\n{"type": "function", "function": {"name": "get_weather"');
    expect(text).toContain('<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>');
    expect(text).toContain('<|im_start|>user\n<tool_response>\n{"temperature": 21}\n</tool_response><|im_end|>');
    expect(text.endsWith("<|im_start|>assistant\n")).toBe(true);
  });

  it("is what `batchwise serve chat --chat-template hermes` serves: a forced call over HTTP", async () => {
    const child = await startChild(["src/cli.ts", "serve", "chat", "--model", MODEL, "--chat-template", "hermes", "--port", "0"], /serving \/v1\/chat\/completions at (http:\/\/[\d.:]+)/, 120_000);
    try {
      const info = (await (await fetch(`${child.url}/info`)).json()) as Record<string, unknown>;
      expect(JSON.stringify(info)).toContain('"chatTemplate":"hermes"');
      const cli = new OpenAI({ baseURL: `${child.url}/v1`, apiKey: "unused", maxRetries: 0 });
      const reply = await cli.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "weather?" }], tools: [weather], tool_choice: "required", max_tokens: 60 });
      expectWeatherArguments((reply.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall).function.arguments);
    } finally {
      child.child.kill("SIGTERM");
      await child.exited;
    }
  }, 180_000);

  it("an unknown template name fails with the known names", () => {
    expect(() => new ChatAPI({ model: MODEL, chatTemplate: "nope" })).toThrow(/Unknown chat template "nope": known templates are hermes/);
  });
});

describe("generated <tool_call> blocks, parsed as they stream", () => {
  it("text around a block is content, the block is a call, a split opening tag is held back until it completes", () => {
    const parser = new ToolCallParser("auto");
    const pieces = ["Let me check. <tool", '_call>\n{"name": "get_weather", ', '"arguments": {"city": "Paris"}}\n</tool_call>', " done"];
    const steps = pieces.map((text, i) => parser.push(i === pieces.length - 1 ? { text, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 4 } } : { text }));
    expect(steps.map((s) => s.text)).toEqual(["Let me check. ", "", "", " done"]);
    expect(steps[2].toolCalls).toEqual([{ index: 0, id: expect.stringMatching(/^call_/), name: "get_weather", arguments: '{"city":"Paris"}' }]);
    expect(steps[3].finishReason).toBe("tool_calls");
  });

  it("a forced call opens when its name is complete, then streams its arguments fragment by fragment", () => {
    const parser = new ToolCallParser("forced");
    const pieces = ['"get_', 'weather"', ' {"ci', 'ty": "P"}'];
    const steps = pieces.map((text, i) => parser.push(i === pieces.length - 1 ? { text, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 4 } } : { text }));
    expect(steps.map((s) => s.toolCalls)).toEqual([
      undefined,
      [{ index: 0, id: expect.stringMatching(/^call_/), name: "get_weather", arguments: "" }],
      [{ index: 0, arguments: '{"ci' }],
      [{ index: 0, arguments: 'ty": "P"}' }],
    ]);
    expect(steps.map((s) => s.text).join("")).toBe("");
    expect(steps[3].finishReason).toBe("tool_calls");
  });

  it("parallel_tool_calls false: the first block is a call, later ones stay text", () => {
    const parser = new ToolCallParser("auto", 1);
    const block = '<tool_call>{"name": "f", "arguments": {}}</tool_call>';
    const step = parser.push({ text: block + block, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 9 } });
    expect(step.toolCalls).toHaveLength(1);
    expect(step.text).toBe(block);
  });

  it("a block that is not a call stays text, and so does an unterminated one", () => {
    const parser = new ToolCallParser("auto");
    const a = parser.push({ text: "<tool_call>not json</tool_call> and <tool_call>{" });
    const b = parser.push({ text: "", finishReason: "length", usage: { promptTokens: 1, completionTokens: 9 } });
    expect(a.text + b.text).toBe("<tool_call>not json</tool_call> and <tool_call>{");
    expect(a.toolCalls ?? b.toolCalls).toBeUndefined();
    expect(b.finishReason).toBe("length");
  });
});
