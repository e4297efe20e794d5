import { readFileSync } from "node:fs";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { Upload } from "../src/api/upload.js";
import { estimateTokens, openAISpec, parseChatRequest } from "../src/openai/spec.js";
import { image } from "./helpers/paths.js";
import { scriptedOpenAIApi } from "./fixtures/scripted-openai-api.js";
import { abortRecordingTokenApi } from "./fixtures/token-api.js";

// Any model behind the OpenAI spec (issue 28, items 1 and 4), with the official `openai` client over real HTTP: an
// API that yields plain strings, whole tool calls and several choices, declares the fields and content parts it
// honours (`openai.accepts`), and measures the images it is sent. A text-only API beside it keeps refusing them.
let server: BatchwiseServer;
let client: OpenAI;
let textOnly: BatchwiseServer;
let textOnlyClient: OpenAI;

beforeAll(async () => {
  server = await createServer({ api: scriptedOpenAIApi(), spec: openAISpec(), port: 0, log: false });
  client = new OpenAI({ baseURL: `${await server.listen()}/v1`, apiKey: "unused", maxRetries: 0 });
  textOnly = await createServer({ api: abortRecordingTokenApi({ abortLog: "/dev/null", intervalMs: 1 }), spec: openAISpec(), port: 0, log: false });
  textOnlyClient = new OpenAI({ baseURL: `${await textOnly.listen()}/v1`, apiKey: "unused", maxRetries: 0 });
}, 60_000);
afterAll(async () => {
  await server?.close();
  await textOnly?.close();
});

const user = (content: OpenAI.ChatCompletionUserMessageParam["content"]) => [{ role: "user" as const, content }];
const dataUrl = (file: string, type: string) => `data:${type};base64,${readFileSync(image(file)).toString("base64")}`;

/** The status, param and code of a refused request. */
async function refusal(call: Promise<unknown>) {
  const error = (await call.then(() => null, (e) => e)) as InstanceType<typeof OpenAI.APIError> | null;
  expect(error, "the request should have been refused").toBeInstanceOf(OpenAI.APIError);
  return { status: error!.status, param: (error!.error as { param?: string }).param, message: error!.message };
}

describe("an API that yields plain strings", () => {
  it("answers a chat completion; the spec counts the tokens the API did not (words and punctuation)", async () => {
    const reply = await client.chat.completions.create({ model: "scripted", messages: user("words: the quick brown fox, jumps") });
    expect(reply.choices[0].message.content).toBe("the quick brown fox, jumps");
    expect(reply.choices[0].finish_reason).toBe("stop");
    expect(reply.usage).toMatchObject({ prompt_tokens: estimateTokens("words: the quick brown fox, jumps"), completion_tokens: 6, total_tokens: 8 + 6 });
    expect(estimateTokens("words: the quick brown fox, jumps")).toBe(8); // words, ':', the, quick, brown, fox, ',', jumps
  });

  it("streams the strings as deltas, ending with the counted usage", async () => {
    const stream = await client.chat.completions.create({ model: "scripted", messages: user("words: one two three"), stream: true, stream_options: { include_usage: true } });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined | null;
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe("one two three");
    expect(finish).toBe("stop");
    expect(usage).toMatchObject({ completion_tokens: 3 });
  });

  it("serves /v1/completions too, with n choices", async () => {
    const reply = await client.completions.create({ model: "scripted", prompt: "alpha beta", n: 2 });
    expect(reply.choices.map((c) => [c.index, c.text])).toEqual([[0, "c0: alpha beta"], [1, "c1: alpha beta"]]);
  });
});

describe("n choices from an API that declares n", () => {
  it("non-streaming: one choice per index", async () => {
    const reply = await client.chat.completions.create({ model: "scripted", messages: user("words: x y"), n: 3 });
    expect(reply.choices.map((c) => [c.index, c.message.content, c.finish_reason])).toEqual([
      [0, "c0: x y", "stop"],
      [1, "c1: x y", "stop"],
      [2, "c2: x y", "stop"],
    ]);
  });

  it("streaming: every chunk names its choice; each choice ends with its own finish chunk", async () => {
    const stream = await client.chat.completions.create({ model: "scripted", messages: user("words: x y"), n: 2, stream: true });
    const texts = ["", ""];
    const finished: number[] = [];
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        texts[choice.index] += choice.delta?.content ?? "";
        if (choice.finish_reason) finished.push(choice.index);
      }
    }
    expect(texts).toEqual(["c0: x y", "c1: x y"]);
    expect(finished.sort()).toEqual([0, 1]);
  });

  it("an API that does not declare n keeps the 400 naming it", async () => {
    expect(await refusal(textOnlyClient.chat.completions.create({ model: "m", messages: user("hi"), n: 2 }))).toMatchObject({ status: 400, param: "n" });
  });
});

describe("tool-call objects yielded by an API", () => {
  it("become message.tool_calls with finish_reason tool_calls", async () => {
    const reply = await client.chat.completions.create({ model: "scripted", messages: user("tool") });
    const choice = reply.choices[0];
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call).toMatchObject({ type: "function", function: { name: "get_weather" } });
    expect(call.id).toMatch(/^call_/);
    expect(JSON.parse(call.function.arguments)).toEqual({ city: "Paris" });
  });

  it("stream as OpenAI's chunks: id, type and name first, then the arguments", async () => {
    const stream = await client.chat.completions.create({ model: "scripted", messages: user("tool"), stream: true });
    const deltas: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      deltas.push(...(chunk.choices[0]?.delta?.tool_calls ?? []));
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(deltas[0]).toMatchObject({ index: 0, type: "function", function: { name: "get_weather", arguments: "" } });
    expect(deltas[0].id).toMatch(/^call_/);
    expect(deltas.slice(1).every((d) => d.id === undefined && d.function?.name === undefined)).toBe(true);
    expect(JSON.parse(deltas.map((d) => d.function?.arguments ?? "").join(""))).toEqual({ city: "Paris" });
    expect(finish).toBe("tool_calls");
  });
});

describe("declared fields and content parts reach decodeRequest", () => {
  it("reasoning_effort, declared, is passed through as sent", async () => {
    const reply = await client.chat.completions.create({ model: "scripted", messages: user("extra"), reasoning_effort: "low" });
    expect(JSON.parse(reply.choices[0].message.content!)).toEqual({ reasoning_effort: "low" });
  });

  it("a field the API does not declare stays a 400 naming it", async () => {
    expect(await refusal(client.chat.completions.create({ model: "scripted", messages: user("extra"), logprobs: true }))).toMatchObject({ status: 400, param: "logprobs" });
  });

  it("image_url data URLs arrive decoded: the API measures the real images", async () => {
    const reply = await client.chat.completions.create({
      model: "scripted",
      messages: user([
        { type: "text", text: "image" },
        { type: "image_url", image_url: { url: dataUrl("darknet_dog.jpg", "image/jpeg") } },
        { type: "image_url", image_url: { url: dataUrl("skimage_coffee.png", "image/png"), detail: "low" } },
      ]),
    });
    expect(reply.choices[0].message.content).toBe("768x576 image/jpeg 600x400 image/png");
  });

  it("input_audio arrives as bytes and a media type", async () => {
    const bytes = Buffer.from("RIFF....WAVEfmt fake audio bytes");
    const reply = await client.chat.completions.create({
      model: "scripted",
      messages: user([{ type: "text", text: "audio" }, { type: "input_audio", input_audio: { data: bytes.toString("base64"), format: "wav" } }]),
    });
    expect(reply.choices[0].message.content).toBe(`${bytes.length} bytes audio/wav`);
  });

  it("an http(s) image URL is refused unless the API declares it fetches them; bad base64 is a 400", async () => {
    const remote = await refusal(client.chat.completions.create({ model: "scripted", messages: user([{ type: "text", text: "image" }, { type: "image_url", image_url: { url: "http://127.0.0.1:1/cat.jpg" } }]) }));
    expect(remote).toMatchObject({ status: 400, param: "messages[0].content[1].image_url.url" });
    const broken = await refusal(client.chat.completions.create({ model: "scripted", messages: user([{ type: "image_url", image_url: { url: "data:image/png;base64,@@@" } }]) }));
    expect(broken).toMatchObject({ status: 400, param: "messages[0].content[0].image_url.url" });
  });

  it("an API that declares image_url.remote gets the http(s) URL to fetch itself; data URLs arrive as Uploads", () => {
    const request = parseChatRequest(
      { messages: user([{ type: "image_url", image_url: { url: "https://example.com/cat.jpg", detail: "high" } }, { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } }]) },
      new Set(["image_url", "image_url.remote"]),
    );
    const [remote, inline] = request.messages[0].parts!;
    expect(remote).toEqual({ type: "image_url", url: "https://example.com/cat.jpg", detail: "high" });
    expect(inline.type === "image_url" && "upload" in inline && inline.upload).toBeInstanceOf(Upload);
    expect(inline.type === "image_url" && "upload" in inline && inline.upload.contentType).toBe("image/png");
    expect(() => parseChatRequest({ messages: user([{ type: "input_audio", input_audio: { data: "AAAA", format: "aiff" as never } }]) }, new Set(["input_audio"]))).toThrow(/format/);
  });

  it("a text-only API keeps the 400 for image and audio parts", async () => {
    const image = await refusal(textOnlyClient.chat.completions.create({ model: "m", messages: user([{ type: "image_url", image_url: { url: dataUrl("skimage_coffee.png", "image/png") } }]) }));
    expect(image).toMatchObject({ status: 400, param: "messages[0].content[0]" });
    const audio = await refusal(textOnlyClient.chat.completions.create({ model: "m", messages: user([{ type: "input_audio", input_audio: { data: "AAAA", format: "wav" } }]) }));
    expect(audio).toMatchObject({ status: 400, param: "messages[0].content[0]" });
    expect(await refusal(textOnlyClient.chat.completions.create({ model: "m", messages: user("hi"), reasoning_effort: "low" }))).toMatchObject({ status: 400, param: "reasoning_effort" });
  });
});
