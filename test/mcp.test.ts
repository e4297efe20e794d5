import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelAPI } from "../src/api/model-api.js";
import { imageClassifier } from "../src/classifier/image-classifier.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { openAISpec } from "../src/openai/spec.js";
import { abortRecordingTokenApi } from "./fixtures/token-api.js";
import { image } from "./helpers/paths.js";

// Endpoints as MCP tools, called with the SDK's own client over the streamable HTTP transport: the classifier in a
// worker thread with batching on, behind an API key, beside an in-process API that declares a requestSchema.
const KEY = "mcp-test-key";

class EchoAPI extends ModelAPI<{ text: string }, string, string, { echo: string }> {
  override requestSchema = { type: "object", properties: { text: { type: "string" } }, required: ["text"] };
  predict(batch: string[]) {
    return batch;
  }
  override decodeRequest(request: { text: string }) {
    return request.text;
  }
  override encodeResponse(output: string) {
    return { echo: output };
  }
}

class PlainAPI extends ModelAPI {
  predict(batch: unknown[]) {
    return batch;
  }
}

let server: BatchwiseServer;
let url: string;
let client: Client;

const connect = async (headers: Record<string, string>) => {
  const c = new Client({ name: "batchwise-test", version: "1" });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers } }));
  return c;
};

beforeAll(async () => {
  server = await createServer({
    endpoints: [
      {
        api: imageClassifier({ labels: "cat-dog", precision: "int8" }),
        maxBatchSize: 8,
        batchTimeout: 0.005,
        workersPerDevice: 1,
        accelerator: "cpu",
        mcp: { name: "classify_image", description: 'Classify a photo: {"image": "<base64 or data URL>"}' },
      },
      { api: new EchoAPI(), path: "/echo", workersPerDevice: 0, mcp: { name: "echo", description: "Echo a text" } },
      { api: new PlainAPI(), path: "/plain", workersPerDevice: 0, mcp: { name: "plain" } },
      { api: new PlainAPI(), path: "/hidden", workersPerDevice: 0 },
      {
        api: abortRecordingTokenApi({ abortLog: "/dev/null", intervalMs: 1 }),
        spec: openAISpec(),
        maxBatchSize: 4,
        workersPerDevice: 1,
        mcp: { name: "chat", description: "An OpenAI chat completion" },
      },
    ],
    apiKey: KEY,
    port: 0,
    log: false,
  });
  url = await server.listen();
  client = await connect({ authorization: `Bearer ${KEY}` });
});
afterAll(async () => {
  await client?.close();
  await server?.close();
});

const dog = () => readFileSync(image("darknet_dog.jpg")).toString("base64");
type Predictions = { predictions: { label: string; probability: number }[] };

describe("endpoints as MCP tools", () => {
  it("lists one tool per endpoint with the mcp option, with the API's requestSchema as its input schema", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(["chat", "classify_image", "echo", "plain"]);
    expect(tools.find((t) => t.name === "echo")).toMatchObject({
      description: "Echo a text",
      inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
    });
    expect(tools.find((t) => t.name === "plain")?.inputSchema).toEqual({ type: "object" });
  });

  it("classifies darknet_dog.jpg as Dog, sent as base64 and as a data URL", async () => {
    for (const value of [dog(), `data:image/jpeg;base64,${dog()}`]) {
      const result = await client.callTool({ name: "classify_image", arguments: { image: value } });
      expect(result.isError).toBeFalsy();
      expect((result.structuredContent as Predictions).predictions[0].label).toBe("Dog");
      const text = (result.content as { type: string; text: string }[])[0].text;
      expect((JSON.parse(text) as Predictions).predictions[0].label).toBe("Dog");
    }
  });

  it("tool calls go through the batcher: concurrent calls share batches and all answer", async () => {
    const batchCount = async () => {
      const text = await (await fetch(`${url}/metrics`, { headers: { "x-api-key": KEY } })).text();
      const line = text.split("\n").find((l) => /^batchwise_batch_size_count\{[^}]*endpoint="\/predict"/.test(l));
      return Number(line?.split(" ").pop() ?? 0);
    };
    const before = await batchCount();
    const results = await Promise.all(
      Array.from({ length: 6 }, () => client.callTool({ name: "classify_image", arguments: { image: dog() } })),
    );
    expect(results.map((r) => (r.structuredContent as Predictions).predictions[0].label)).toEqual(Array(6).fill("Dog"));
    const batches = (await batchCount()) - before;
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(batches).toBeLessThanOrEqual(6);
  });

  it("a streaming spec's tool: the chat completion's JSON, or its SSE stream joined into the text", async () => {
    const messages = [{ role: "user", content: "hi" }];
    const json = await client.callTool({ name: "chat", arguments: { messages, max_tokens: 4 } });
    expect(json.structuredContent).toMatchObject({ object: "chat.completion", usage: { completion_tokens: 4 } });
    const streamed = await client.callTool({ name: "chat", arguments: { messages, max_tokens: 4, stream: true } });
    const text = (streamed.content as { text: string }[])[0].text;
    expect(text).toMatch(/^data: \{"id":"chatcmpl-/);
    expect(text.trimEnd()).toMatch(/data: \[DONE\]$/);
    const refused = await client.callTool({ name: "chat", arguments: { messages, logit_bias: { "1": 5 } } });
    expect(refused.isError).toBe(true);
    // The chat spec's own error shape (OpenAI's), as its HTTP answer would carry.
    expect(JSON.parse((refused.content as { text: string }[])[0].text).error).toMatchObject({ param: "logit_bias", type: "invalid_request_error" });
  });

  it("a bad image is a tool error carrying the HTTP error body, not a crash", async () => {
    const result = await client.callTool({ name: "classify_image", arguments: { image: "bm90IGFuIGltYWdl" } });
    expect(result.isError).toBe(true);
    const body = JSON.parse((result.content as { text: string }[])[0].text);
    expect(body.error.code).toBe("not_an_image");
    const missing = await client.callTool({ name: "classify_image", arguments: {} });
    expect(JSON.parse((missing.content as { text: string }[])[0].text).error.code).toBe("missing_image");
  });

  it("an unknown tool is a protocol error naming the tools", async () => {
    await expect(client.callTool({ name: "nope", arguments: {} })).rejects.toThrow(/Unknown tool "nope"/);
  });

  it("/mcp is behind the server's API key", async () => {
    await expect(connect({})).rejects.toThrow(/401|nauthorized/);
    const response = await fetch(`${url}/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(response.status).toBe(401);
  });

  it("stateless: GET and DELETE /mcp are 405 (no stream held open), the next call still works", async () => {
    for (const method of ["GET", "DELETE"]) {
      const response = await fetch(`${url}/mcp`, { method, headers: { "x-api-key": KEY, accept: "text/event-stream" } });
      expect(response.status).toBe(405);
      expect(response.headers.get("allow")).toBe("POST");
    }
    const result = await client.callTool({ name: "echo", arguments: { text: "still here" } });
    expect(result.structuredContent).toEqual({ echo: "still here" });
  });

  it("an invalid or repeated tool name is refused when the server is built", async () => {
    await expect(createServer({ api: new PlainAPI(), workersPerDevice: 0, mcp: { name: "has space" }, log: false })).rejects.toThrow(/mcp must be/);
    const twice = { api: new PlainAPI(), workersPerDevice: 0, mcp: { name: "same" } };
    await expect(createServer({ endpoints: [{ ...twice, path: "/a" }, { ...twice, path: "/b" }], log: false })).rejects.toThrow(/share an MCP tool name/);
  });
});
