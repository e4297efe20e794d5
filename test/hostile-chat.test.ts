import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatModel } from "../src/chat/chat-api.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { openAISpec } from "../src/openai/spec.js";
import { expectCleanError, rawPost, rawRequest } from "./fixtures/raw-http.js";

// Hostile and malformed input against the real chat model (tiny-random-llama in a worker thread) behind the OpenAI
// spec: every bad request gets a 4xx in OpenAI's error shape quickly, while valid completions keep succeeding.

const MODEL = "tiny-random-llama";
const REQUEST_TIMEOUT_S = 2;
let server: BatchwiseServer;
let url: string;
const valid = { ok: 0, failures: [] as string[], running: true, loops: [] as Promise<void>[] };

beforeAll(async () => {
  server = await createServer({
    api: chatModel({ model: MODEL }),
    spec: openAISpec(),
    maxBatchSize: 8,
    batchTimeout: 0.01,
    requestTimeout: REQUEST_TIMEOUT_S,
    maxPayloadSize: 1024 * 1024,
    port: 0,
    log: false,
  });
  url = await server.listen();
  const client = async (stream: boolean) => {
    while (valid.running) {
      const response = await chat({ model: MODEL, messages: [{ role: "user", content: "Hello there" }], max_tokens: 4, stream });
      const text = await response.text();
      const ok = response.status === 200 && (stream ? text.trimEnd().endsWith("data: [DONE]") : JSON.parse(text).usage.completion_tokens === 4);
      if (ok) valid.ok++;
      else valid.failures.push(`${response.status} ${text.slice(0, 300)}`);
    }
  };
  valid.loops = [client(false), client(true)];
});
afterAll(async () => {
  valid.running = false;
  await Promise.all(valid.loops);
  await server?.close();
});

function chat(body: unknown, contentType = "application/json") {
  return fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": contentType },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** POST and check OpenAI's error shape (message, type, param, code) and that nothing internal leaks. */
async function rejected(body: unknown, statuses: number[] | "4xx" = [400], contentType?: string) {
  const response = await chat(body, contentType);
  const text = await response.text();
  const error = expectCleanError(response.status, text, statuses) as { code: string; type?: string; param?: unknown };
  expect(error.type, text).toMatch(/_error$/);
  expect(error, text).toHaveProperty("param");
  return error;
}

const user = (content: unknown) => [{ role: "user", content }];

describe("hostile input to /v1/chat/completions", () => {
  it("wrong content types and broken JSON get 4xx in OpenAI's shape", async () => {
    const body = JSON.stringify({ model: MODEL, messages: user("hi") });
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "text/event-stream"]) {
      expect((await rejected(body, [415], type)).code).toBe("unsupported_media_type");
    }
    for (const broken of ["{", '{"messages": [', "[]", "null", '"hi"', "1e999", ""]) await rejected(broken);
  });

  it("prototype-pollution keys are refused; nothing is polluted", async () => {
    await rejected(`{"model": "m", "messages": [{"role": "user", "content": "hi"}], "__proto__": {"polluted": 1}}`);
    await rejected(`{"messages": [{"role": "user", "content": "hi", "constructor": {"prototype": {"polluted": 1}}}]}`);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("wrong field types are 400s that name the field (param)", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ messages: "hi" }, "messages"],
      [{ messages: [] }, "messages"],
      [{ messages: [1] }, "messages[0]"],
      [{ messages: [null] }, "messages[0]"],
      [{ messages: [{ role: "tool", content: "x" }] }, "messages[0].tool_call_id"],
      [{ messages: [{ role: "function", content: "x" }] }, "messages[0].role"],
      [{ messages: [{ role: "__proto__", content: "x" }] }, "messages[0].role"],
      [{ messages: [{ role: "user" }] }, "messages[0].content"],
      [{ messages: user(5) }, "messages[0].content"],
      [{ messages: user([{ type: "image_url", image_url: { url: "file:///etc/passwd" } }]) }, "messages[0].content[0]"],
      [{ messages: user("hi"), model: 5 }, "model"],
      [{ messages: user("hi"), max_tokens: -1 }, "max_tokens"],
      [{ messages: user("hi"), max_tokens: "10" }, "max_tokens"],
      [{ messages: user("hi"), max_tokens: 1.5 }, "max_tokens"],
      [{ messages: user("hi"), max_tokens: 1e300 }, "max_tokens"],
      [{ messages: user("hi"), max_completion_tokens: 0 }, "max_completion_tokens"],
      [{ messages: user("hi"), temperature: 5 }, "temperature"],
      [{ messages: user("hi"), temperature: "hot" }, "temperature"],
      [{ messages: user("hi"), top_p: 0 }, "top_p"],
      [{ messages: user("hi"), seed: 0.5 }, "seed"],
      [{ messages: user("hi"), n: "2" }, "n"],
      [{ messages: user("hi"), stream: "true" }, "stream"],
      [{ messages: user("hi"), stream_options: { include_usage: true } }, "stream_options"],
      [{ messages: user("hi"), stream: true, stream_options: { include_usage: "yes" } }, "stream_options.include_usage"],
      [{ messages: user("hi"), stop: ["a", "b", "c", "d", "e"] }, "stop"],
      [{ messages: user("hi"), stop: [""] }, "stop"],
      [{ messages: user("hi"), stop: [{}] }, "stop"],
    ];
    for (const [body, param] of cases) {
      const error = await rejected(body);
      expect(error.param, JSON.stringify(body)).toBe(param);
    }
  });

  it("the request's `model` cannot select anything: the configured model answers, whatever the field says", async () => {
    for (const model of ["../../../etc/passwd", "/etc/passwd", "https://evil.example/model.onnx", "aidreams260K"]) {
      const response = await chat({ model, messages: user("hi"), max_tokens: 2 });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { model: string }).model).toBe(MODEL);
    }
  });

  it("deeply nested content is a 400, not a crash", async () => {
    const depth = 50_000;
    const nested = `${"[".repeat(depth)}${"]".repeat(depth)}`;
    await rejected(`{"messages": [{"role": "user", "content": ${nested}}]}`);
    await rejected(`{"messages": ${nested}}`);
  });

  it("a prompt beyond the context window is a 400; bodies over the limit are 413", async () => {
    const long = await rejected({ model: MODEL, messages: user("word ".repeat(5_000)) });
    expect(long.code).toBe("context_length_exceeded");
    const tooBig = await rejected({ model: MODEL, messages: user("x".repeat(1024 * 1024)) }, [413]);
    expect(tooBig.code).toBe("payload_too_large");
  });

  it("a streaming request whose body never finishes is closed with 408 within the request timeout", async () => {
    const result = await rawRequest(
      url,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"stream": true, "messages": [`,
      20_000,
    );
    expect(result.closed).toBe(true);
    expect(result.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_S * 1000 + 2500);
    expect(expectCleanError(result.status, result.body, [408]).code).toBe("request_timeout");
  });

  it("/v1/models refuses other methods; oversized headers get 431", async () => {
    const post = await rawRequest(url, "POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    expectCleanError(post.status, post.body, [404]);
    const models = await fetch(`${url}/v1/models`);
    expect(((await models.json()) as { data: { id: string }[] }).data[0].id).toBe(MODEL);
    const big = await rawPost(url, "/v1/chat/completions", "{}", "application/json", `Authorization: Bearer ${"k".repeat(70_000)}\r\n`);
    expectCleanError(big.status, big.body, [431]);
  });

  it("valid completions sent beside all of the above kept succeeding; the server is healthy", async () => {
    valid.running = false;
    await Promise.all(valid.loops);
    expect(valid.failures).toEqual([]);
    expect(valid.ok).toBeGreaterThan(2);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });
});
