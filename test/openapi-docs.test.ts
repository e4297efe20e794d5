import { Validator } from "@seriousme/openapi-schema-validator";
import { beforeAll, describe, expect, it } from "vitest";
import { imageClassifier } from "../src/classifier/image-classifier.js";
import { openAISpec } from "../src/openai/spec.js";
import { tokenStreamApi } from "../src/bench/runs/stream-overhead.js";
import { serversClosedAfterAll } from "./helpers/servers.js";

// GET /openapi.json is an OpenAPI 3.1 document of every route (checked by a real OAS validator), GET /docs a Swagger
// UI page over it, GET / a small index; `docs: false` turns the first two off.

const start = serversClosedAfterAll();

type Doc = { openapi: string; info: { version: string }; paths: Record<string, Record<string, any>> };

describe("a server with the classifier and the OpenAI spec", () => {
  let url: string;
  let doc: Doc;
  beforeAll(async () => {
    url = await start({
      endpoints: [
        { api: imageClassifier({ precision: "int8" }), accelerator: "cpu", workersPerDevice: 1 },
        { api: tokenStreamApi(), spec: openAISpec(), workersPerDevice: 1 },
      ],
    });
    const response = await fetch(`${url}/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/application\/json/);
    doc = (await response.json()) as Doc;
  });

  it("serves a valid OpenAPI 3.1 document", async () => {
    expect(doc.openapi).toBe("3.1.0");
    const result = await new Validator().validate(structuredClone(doc) as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("documents every route: the endpoints, the probes, /info, /metrics, / — not its own doc routes", () => {
    expect(Object.keys(doc.paths).sort()).toEqual(
      ["/", "/health", "/info", "/livez", "/metrics", "/predict", "/readyz", "/v1/chat/completions", "/v1/completions", "/v1/models"].sort(),
    );
    expect(doc.paths["/predict"].post).toBeDefined();
    expect(doc.paths["/readyz"].get.responses["503"]).toBeDefined();
  });

  it("the classifier's route: its JSON schema, the raw image types and multipart, the answer, the error shape", () => {
    const post = doc.paths["/predict"].post;
    const body = post.requestBody.content;
    expect(Object.keys(body).sort()).toEqual(
      ["application/json", "application/octet-stream", "image/jpeg", "image/png", "image/webp", "multipart/form-data"].sort(),
    );
    expect(body["application/json"].schema.required).toEqual(["image"]);
    expect(body["application/json"].schema.properties.image.type).toBe("string");
    expect(body["image/jpeg"].schema).toMatchObject({ type: "string", contentMediaType: "image/jpeg" });
    const ok = post.responses["200"].content["application/json"].schema;
    expect(ok.properties.predictions.items.required).toEqual(["label", "probability"]);
    for (const status of ["400", "401", "413", "415", "503", "504"]) {
      expect(post.responses[status].content["application/json"].schema.properties.error.required).toEqual(["code", "message"]);
    }
  });

  it("the OpenAI routes: request fields, JSON or SSE answers, OpenAI's error shape", () => {
    const chat = doc.paths["/v1/chat/completions"].post;
    expect(chat.requestBody.content["application/json"].schema.required).toEqual(["messages"]);
    expect(Object.keys(chat.responses["200"].content).sort()).toEqual(["application/json", "text/event-stream"]);
    expect(chat.responses["400"].content["application/json"].schema.properties.error.properties).toHaveProperty("param");
    const completions = doc.paths["/v1/completions"].post;
    expect(completions.requestBody.content["application/json"].schema.required).toEqual(["prompt"]);
  });

  it("GET /docs is the Swagger UI page, and its assets load", async () => {
    const page = await fetch(`${url}/docs`, { redirect: "follow" });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(/swagger-ui/i);
    const asset = html.match(/src="([^"]*swagger-ui-bundle\.js)"/)?.[1];
    expect(asset).toBeDefined();
    const script = await fetch(new URL(asset!, page.url)); // resolved as a browser does
    expect(script.status).toBe(200);
    // what the page loads as its document: the same OpenAPI paths
    const json = (await (await fetch(`${url}/docs/json`)).json()) as Doc;
    expect(Object.keys(json.paths).sort()).toEqual(Object.keys(doc.paths).sort());
  });

  it("GET / names the server, its version, its links and each endpoint", async () => {
    const response = await fetch(`${url}/`);
    expect(response.status).toBe(200);
    const index = (await response.json()) as Record<string, any>;
    expect(index.name).toBe("batchwise");
    expect(index.version).toBe(doc.info.version);
    expect(index.links).toMatchObject({ docs: "/docs", openapi: "/openapi.json", info: "/info", health: "/health" });
    expect(index.endpoints.map((e: { path: string }) => e.path)).toEqual(["/predict", "/v1/chat/completions"]);
    expect(index.endpoints[0].bodies).toContain("image/jpeg");
    expect(index.endpoints[1].routes).toEqual(["/v1/chat/completions", "/v1/completions"]);
    for (const link of Object.values(index.links) as string[]) expect((await fetch(`${url}${link}`)).status, link).toBe(200);
  });
});

describe("docs: false", () => {
  it("turns /openapi.json and /docs off; / still answers, without those links", async () => {
    const url = await start({ api: tokenStreamApi(), spec: openAISpec(), workersPerDevice: 1, docs: false });
    expect((await fetch(`${url}/openapi.json`)).status).toBe(404);
    expect((await fetch(`${url}/docs`)).status).toBe(404);
    const index = (await (await fetch(`${url}/`)).json()) as { links: Record<string, string> };
    expect(index.links).not.toHaveProperty("docs");
    expect(index.links.info).toBe("/info");
  });
});

describe("with an API key", () => {
  it("the document declares it, and the doc routes need it like /info does", async () => {
    const url = await start({ api: tokenStreamApi(), spec: openAISpec(), workersPerDevice: 1, apiKey: "k3y" });
    expect((await fetch(`${url}/openapi.json`)).status).toBe(401);
    expect((await fetch(`${url}/docs`)).status).toBe(401);
    const doc = (await (await fetch(`${url}/openapi.json`, { headers: { "x-api-key": "k3y" } })).json()) as Record<string, any>;
    expect(doc.components.securitySchemes.apiKey).toEqual({ type: "apiKey", in: "header", name: "X-API-Key" });
    expect(doc.security).toEqual([{ apiKey: [] }, { bearer: [] }]);
  });
});
