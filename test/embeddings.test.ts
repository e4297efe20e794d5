import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { EmbeddingAPI, embeddingModel, type EmbeddingInput } from "../src/embeddings/embeddings.js";
import { TOKENS_PER_RUN } from "../src/embeddings/embedding-model.js";
import { exposeHiddenStates } from "../src/embeddings/hidden-states.js";
import { ort } from "../src/runtime/onnx.js";
import { modelsDir } from "./helpers/paths.js";
import { openAIEmbeddingSpec } from "../src/openai/embeddings-spec.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";

// /v1/embeddings over real HTTP: the aidreams260K LM (hidden size 64, context 128) in a worker thread, mean-pooled,
// called by the official `openai` client and by raw fetch for what the client hides.
const MODEL = "aidreams260K";
let server: BatchwiseServer;
let url: string;
let client: OpenAI;

beforeAll(async () => {
  server = await createServer({
    api: embeddingModel({ model: MODEL }),
    spec: openAIEmbeddingSpec({ maxInputs: 8 }),
    maxBatchSize: 16,
    batchTimeout: 0.005,
    workersPerDevice: 1,
    accelerator: "cpu",
    port: 0,
    log: false,
  });
  url = await server.listen();
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 });
});
afterAll(() => server?.close());

const SENTENCE = "I dreamed of a silver cat walking on the sea";
const SHORT = "moon";
const LONG = "the night was long and the stars sang softly over the quiet water while the wind carried old songs far away";

const post = (body: unknown) =>
  fetch(`${url}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) (dot += a[i] * b[i]), (na += a[i] * a[i]), (nb += b[i] * b[i]);
  return dot / Math.sqrt(na * nb);
};
const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));
const embed = async (input: string | string[] | number[]) => (await client.embeddings.create({ model: MODEL, input, encoding_format: "float" })).data;

describe("the openai client's embeddings.create", () => {
  it("embeds a text (the client asks for base64 by default and decodes it): 64 floats of unit length, usage counted", async () => {
    const response = await client.embeddings.create({ model: MODEL, input: SENTENCE });
    expect(response.object).toBe("list");
    expect(response.model).toBe(MODEL);
    expect(response.data).toHaveLength(1);
    expect(response.data[0]).toMatchObject({ object: "embedding", index: 0 });
    expect(response.data[0].embedding).toHaveLength(64);
    expect(norm(response.data[0].embedding)).toBeCloseTo(1, 5);
    expect(response.usage.prompt_tokens).toBeGreaterThan(5);
    expect(response.usage.total_tokens).toBe(response.usage.prompt_tokens);
  });

  it("float and base64 answers carry the same float32 values", async () => {
    const [asFloat] = await embed(SENTENCE);
    const [asBase64] = (await client.embeddings.create({ model: MODEL, input: SENTENCE, encoding_format: "base64" })).data;
    // The client leaves an explicitly requested base64 string alone: decode it as little-endian float32.
    const bytes = Buffer.from(asBase64.embedding as unknown as string, "base64");
    const decoded = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    expect(decoded).toEqual(asFloat.embedding.map((x) => Math.fround(x)));
  });

  it("dimensions truncates and renormalises; more dimensions than the model has is a 400 naming it", async () => {
    const [full] = await embed(SENTENCE);
    const [short] = (await client.embeddings.create({ model: MODEL, input: SENTENCE, encoding_format: "float", dimensions: 16 })).data;
    expect(short.embedding).toHaveLength(16);
    expect(norm(short.embedding)).toBeCloseTo(1, 5);
    const head = full.embedding.slice(0, 16);
    const scale = norm(head);
    short.embedding.forEach((x, i) => expect(x).toBeCloseTo(head[i] / scale, 6));
    const error = await client.embeddings.create({ model: MODEL, input: SENTENCE, dimensions: 65 }).catch((e) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error.message).toMatch(/'dimensions' is 65; this model's embeddings have 64/);
  });

  it("a sentence's vector does not depend on its batch: alone, in a list with longer and shorter texts, as token ids, and across concurrent requests", async () => {
    const [alone] = await embed(SENTENCE);
    const inList = await embed([LONG, SENTENCE, SHORT]);
    const reversed = await embed([SHORT, SHORT, SENTENCE, LONG, LONG]);
    const concurrent = await Promise.all([embed([LONG, LONG]), embed(SENTENCE), embed([SHORT, SENTENCE]), embed(LONG)]);
    const together = [inList[1], reversed[2], concurrent[1][0], concurrent[2][1]];
    for (const other of together) expect(Math.abs(1 - cosine(alone.embedding, other.embedding))).toBeLessThan(1e-5);
    // The texts themselves differ: the test would notice a model that ignores its input.
    expect(cosine(inList[0].embedding, inList[2].embedding)).toBeLessThan(0.99);
    expect(inList.map((d) => d.index)).toEqual([0, 1, 2]);
  });

  it("token ids embed like the text they spell", async () => {
    // "I dreamed of a cat" in aidreams260K's tokenizer: <s> (id 1), then its pieces.
    const ids = [1, 303, 281, 269, 435, 447, 328, 275, 262, 273, 268];
    const fromText = await client.embeddings.create({ model: MODEL, input: "I dreamed of a cat", encoding_format: "float" });
    expect(fromText.usage.prompt_tokens).toBe(ids.length);
    const [fromIds] = await embed(ids);
    expect(Math.abs(1 - cosine(fromIds.embedding, fromText.data[0].embedding))).toBeLessThan(1e-5);
    const [other] = await embed(ids.slice(0, 4));
    expect(cosine(fromIds.embedding, other.embedding)).toBeLessThan(0.9999);
    const both = await post({ input: [ids, ids.slice(0, 4)], encoding_format: "float" });
    const body = (await both.json()) as { data: { embedding: number[] }[]; usage: { prompt_tokens: number }; model: string };
    expect(body.model).toBe(MODEL); // no `model` sent: the served model's id
    expect(body.data).toHaveLength(2);
    expect(body.usage.prompt_tokens).toBe(ids.length + 4);
    expect(Math.abs(1 - cosine(body.data[1].embedding, other.embedding))).toBeLessThan(1e-5);
  });
});

describe("bad inputs are 400s naming the field", () => {
  const cases: [string, unknown, RegExp, string | null][] = [
    ["an unknown field", { input: "x", temperature: 1 }, /Unknown field 'temperature'/, "temperature"],
    ["no input", { model: MODEL }, /Missing 'input'/, "input"],
    ["an empty list", { input: [] }, /empty list/, "input"],
    ["an empty string", { input: ["a", ""] }, /'input\[1\]' is an empty string/, "input[1]"],
    ["a number where a text goes", { input: ["a", 3] }, /'input\[1\]'/, "input[1]"],
    ["a negative token id", { input: [[1, -2]] }, /token ids/, "input[0]"],
    ["a token id outside the vocabulary", { input: [1, 600] }, /token id 600; this model's vocabulary has 512/, null],
    ["more inputs than maxInputs", { input: Array(9).fill("a") }, /holds 9 items; at most 8 per request \(maxInputs\)/, "input"],
    ["a text longer than the context (tokenized in the worker)", { input: ["a", "dream ".repeat(200)] }, /'input\[1\]' is \d+ tokens; at most 128 per input \(maxTokens\)/, null],
    ["a text too long to tokenize", { input: "x".repeat(128 * 32 + 1) }, /4097 characters; at most 128 tokens per input \(maxTokens\)/, null],
    ["token ids longer than the context", { input: Array(129).fill(5) }, /'input' is 129 tokens; at most 128/, null],
    ["an unknown encoding_format", { input: "x", encoding_format: "int8" }, /encoding_format/, "encoding_format"],
    ["dimensions 0", { input: "x", dimensions: 0 }, /'dimensions' must be an integer/, "dimensions"],
    ["a body that is not an object", ["x"], /JSON object/, null],
  ];
  it.each(cases)("%s", async (_name, body, message, param) => {
    const response = await post(body);
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: { message: string; param: string | null; type: string } };
    expect(error.message).toMatch(message);
    expect(error.type).toBe("invalid_request_error");
    if (param !== null) expect(error.param).toBe(param);
  });

  it("the server still answers after every refusal; a text refused in the worker fails only its own request", async () => {
    expect((await embed(SHORT))[0].embedding).toHaveLength(64);
    const bodies = [{ input: SENTENCE }, { input: "dream ".repeat(200) }, { input: [SHORT, LONG] }, { input: "dream ".repeat(150) }];
    const statuses = await Promise.all(bodies.map(async (body) => (await post(body)).status));
    expect(statuses).toEqual([200, 400, 200, 400]);
  });
});

describe("the embedding API in-process (what a worker runs)", () => {
  const device = { accelerator: "cpu" as const, index: 0, threads: 1, id: "cpu" };
  const decode = (api: EmbeddingAPI, input: string[]) => api.decodeRequest({ input, model: "", encodingFormat: "float" });

  it.each(["aidreams260K", "tiny-random-llama"])("%s: the LM head is cut off, leaving the hidden states as the only output", async (model) => {
    const bytes = exposeHiddenStates(readFileSync(path.join(modelsDir, model, "onnx", "model.onnx")));
    const session = await ort.InferenceSession.create(bytes);
    expect(session.outputNames).toEqual(["last_hidden_state"]);
    await session.release();
  });

  it.each(["aidreams260K", "tiny-random-llama"])("%s: several requests in one predict give each request the vectors it gets alone", async (model) => {
    const api = new EmbeddingAPI({ model });
    await api.setup(device);
    const requests: EmbeddingInput[] = [decode(api, [SENTENCE, SHORT]), decode(api, [LONG]), decode(api, [SHORT, LONG, SENTENCE])];
    const together = await api.predict(requests);
    for (let r = 0; r < requests.length; r++) {
      const [alone] = await api.predict([requests[r]]);
      expect(together[r].vectors).toHaveLength(requests[r].items.length);
      expect(together[r].promptTokens).toBe(alone.promptTokens);
      together[r].vectors.forEach((v, i) => expect(Math.abs(1 - cosine(v, alone.vectors[i]))).toBeLessThan(1e-5));
    }
  });

  it("a batch larger than one run's token budget is split into runs, in order", async () => {
    const api = new EmbeddingAPI({ model: MODEL });
    await api.setup(device);
    const texts = Array.from({ length: 120 }, (_, i) => (i % 3 === 0 ? SHORT : i % 3 === 1 ? SENTENCE : `${LONG} ${LONG}`));
    const [{ vectors, promptTokens }] = await api.predict([decode(api, texts)]);
    expect(promptTokens).toBeGreaterThan(TOKENS_PER_RUN);
    const [{ vectors: [sentence] }] = await api.predict([decode(api, [SENTENCE])]);
    vectors.forEach((v, i) => {
      if (i % 3 === 1) expect(Math.abs(1 - cosine(v, sentence))).toBeLessThan(1e-5);
      else expect(cosine(v, sentence)).toBeLessThan(0.9999);
    });
  });
});

describe("batchwise serve embeddings", () => {
  const freePort = () =>
    new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });

  it("serves --model on /v1/embeddings, exposed as an MCP tool with --mcp", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ["dist/cli.js", "serve", "embeddings", "--model", MODEL, "--mcp"], {
      env: { ...process.env, PORT: String(port) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    child.stderr!.on("data", (c) => (log += c));
    try {
      const base = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 120 && !(await fetch(`${base}/readyz`).then((r) => r.ok, () => false)); i++) {
        await new Promise((r) => setTimeout(r, 250));
      }
      const cli = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 });
      const response = await cli.embeddings.create({ model: MODEL, input: ["a silver cat", "the sea"], encoding_format: "float" });
      expect(response.data.map((d) => d.embedding.length)).toEqual([64, 64]);
      const mcp = await fetch(`${base}/mcp`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      expect(((await mcp.json()) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name)).toEqual(["embed"]);
    } finally {
      child.kill("SIGKILL");
    }
    expect(log).toContain("serving /v1/embeddings");
  }, 120_000);

  it("a model that is not there fails the server's creation, naming where it looked", async () => {
    await expect(createServer({ api: embeddingModel({ model: "no-such-model" }), spec: openAIEmbeddingSpec(), log: false })).rejects.toThrow(
      /Embedding model "no-such-model" not found: looked for a folder with config.json/,
    );
  });

  it("without --model it says what to pass", () => {
    const result = spawnSync(process.execPath, ["dist/cli.js", "serve", "embeddings"], { encoding: "utf8", env: { ...process.env, PORT: "0" } });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/needs --model ID_OR_PATH/);
  });
});
