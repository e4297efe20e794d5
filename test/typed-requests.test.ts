import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelAPI } from "../src/api/model-api.js";
import { imageClassifier } from "../src/classifier/image-classifier.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { image } from "./helpers/paths.js";

// A ModelAPI's requestSchema is checked by fastify's own validator before decodeRequest: a body that breaks it is a
// 400 invalid_body naming the field and the rule, as sent (no type coercion, nothing removed silently).

class Scaler extends ModelAPI<{ x: number; factor?: number; mode?: string }, number, number, { y: number }> {
  override requestSchema = {
    type: "object",
    required: ["x"],
    additionalProperties: false,
    properties: {
      x: { type: "number", description: "the number to scale" },
      factor: { type: "integer", minimum: 1, default: 2 },
      mode: { enum: ["up", "down"] },
      tags: { type: "array", items: { type: "string" } },
    },
  };
  decoded = 0;
  override decodeRequest(request: { x: number; factor?: number }) {
    this.decoded++;
    return request.x * request.factor!; // the schema's default filled factor in
  }
  predict(batch: number[]) {
    return batch;
  }
  override encodeResponse(y: number) {
    return { y };
  }
}

const servers: BatchwiseServer[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

async function start(options: Parameters<typeof createServer>[0]) {
  const server = await createServer({ port: 0, log: false, ...options });
  servers.push(server);
  return { server, url: await server.listen() };
}

const postJson = (url: string, body: string, path = "/predict") =>
  fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });

describe("a ModelAPI's requestSchema", () => {
  const api = new Scaler();
  let url: string;
  beforeAll(async () => {
    ({ url } = await start({ api, workersPerDevice: 0 }));
  });

  it("lets a valid body through, with the schema's defaults filled in", async () => {
    const response = await postJson(url, '{"x": 3}');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ y: 6 });
  });

  it.each([
    ['{"x": "3"}', "x", "type", /"x" must be number \(rule: type\) — the number to scale/],
    ["{}", "x", "required", /"x" is required \(rule: required\) — the number to scale/],
    ['{"x": 1, "colour": "red"}', "colour", "additionalProperties", /"colour" is not allowed/],
    ['{"x": 1, "factor": 0}', "factor", "minimum", /"factor" must be >= 1/],
    ['{"x": 1, "factor": 1.5}', "factor", "type", /"factor" must be integer/],
    ['{"x": 1, "mode": "sideways"}', "mode", "enum", /"mode" must be one of "up", "down"/],
    ['{"x": 1, "tags": ["a", 2]}', "tags[1]", "type", /"tags\[1\]" must be string/],
    ["[1, 2]", null, "type", /The body must be object/],
  ])("refuses %s: 400 invalid_body naming %s and the rule %s, before decodeRequest", async (body, field, rule, message) => {
    const before = api.decoded;
    const response = await postJson(url, body);
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("invalid_body");
    expect(error.message).toMatch(message);
    expect(error.message).toContain(`(rule: ${rule})`);
    if (field) expect(error.message).toContain(`"${field}"`);
    expect(api.decoded).toBe(before);
  });

  it("a body that is not JSON still gets the parser's own error, not a schema error", async () => {
    const response = await postJson(url, '{"x": ');
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("invalid_json");
  });
});

describe("the classifier's requestSchema (real model, worker thread)", () => {
  let url: string;
  const jpeg = readFileSync(image("darknet_dog.jpg"));
  beforeAll(async () => {
    ({ url } = await start({ api: imageClassifier({ labels: "cat-dog", precision: "int8" }), workersPerDevice: 1, accelerator: "cpu" }));
  });

  it("names the image field, the rule and what to send instead", async () => {
    for (const [body, rule] of [["{}", "required"], ['{"image": 42}', "type"], ['{"image": null}', "type"]]) {
      const response = await postJson(url, body);
      expect(response.status).toBe(400);
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe("invalid_body");
      expect(error.message).toContain('"image"');
      expect(error.message).toContain(`(rule: ${rule})`);
      expect(error.message).toContain("base64");
    }
  });

  it("still classifies base64 JSON, a raw JPEG body (no JSON schema applies) and a multipart file", async () => {
    const json = await postJson(url, JSON.stringify({ image: jpeg.toString("base64") }));
    const raw = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "image/jpeg" }, body: jpeg });
    const form = new FormData();
    form.append("file", new Blob([jpeg], { type: "image/jpeg" }), "dog.jpg");
    const multipart = await fetch(`${url}/predict`, { method: "POST", body: form });
    for (const response of [json, raw, multipart]) {
      expect(response.status).toBe(200);
      const { predictions } = (await response.json()) as { predictions: { label: string }[] };
      expect(predictions[0].label).toBe("Dog");
    }
  });
});
