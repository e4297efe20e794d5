import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import fp from "fastify-plugin";
import { request as undiciRequest } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelAPI } from "../src/api/model-api.js";
import { createServer } from "../src/server/server.js";
import { serve } from "../src/server/serve.js";
import { serversClosedAfterAll } from "./helpers/servers.js";

// compress (on by default: gzip/br at 1,000 bytes and more, never a stream), https / tlsCert+tlsKey (a self-signed
// certificate made here), and plugins (the way to add fastify middleware, hooks and routes).

/** Answers `size` bytes of JSON padding, or streams `lines` NDJSON lines when served with stream: true. */
class Padded extends ModelAPI<{ size: number }, number, number, unknown> {
  override decodeRequest(request: { size: number }) {
    return request.size;
  }
  predict(batch: number[]) {
    return batch;
  }
  override encodeResponse(size: number) {
    return { pad: "x".repeat(Math.max(0, size - 10)) };
  }
}

class Lines extends ModelAPI<{ lines: number }, number, string, { line: string }> {
  override decodeRequest(request: { lines: number }) {
    return request.lines;
  }
  async *predict(batch: number[]) {
    for (let i = 0; i < batch[0]; i++) {
      yield [`${i} ${"y".repeat(600)}`];
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  override encodeResponse(line: string) {
    return { line };
  }
}

const start = serversClosedAfterAll();

/** undici's request: no automatic decompression, so the test sees the bytes on the wire. */
async function raw(url: string, body: unknown, encoding?: string) {
  const response = await undiciRequest(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(encoding ? { "accept-encoding": encoding } : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.statusCode, headers: response.headers, bytes: Buffer.from(await response.body.arrayBuffer()) };
}

describe("compress", () => {
  let url: string;
  beforeAll(async () => {
    url = await start({ endpoints: [{ api: new Padded(), workersPerDevice: 0 }, { api: new Lines(), path: "/lines", stream: true, workersPerDevice: 0 }] });
  });

  it("gzips or brotli-compresses a 1,180-byte answer for a client that accepts it, and the body decodes back", async () => {
    const plain = await raw(`${url}/predict`, { size: 1180 });
    expect(plain.headers["content-encoding"]).toBeUndefined();
    const expected = JSON.parse(plain.bytes.toString());
    const gzip = await raw(`${url}/predict`, { size: 1180 }, "gzip");
    expect(gzip.headers["content-encoding"]).toBe("gzip");
    expect(gzip.headers.vary).toMatch(/accept-encoding/i);
    expect(gzip.bytes.length).toBeLessThan(plain.bytes.length);
    expect(JSON.parse(gunzipSync(gzip.bytes).toString())).toEqual(expected);
    const br = await raw(`${url}/predict`, { size: 1180 }, "br, gzip");
    expect(br.headers["content-encoding"]).toBe("br");
    expect(JSON.parse(brotliDecompressSync(br.bytes).toString())).toEqual(expected);
  });

  it("leaves answers under 1,000 bytes alone (a classifier's answer is about 100)", async () => {
    const small = await raw(`${url}/predict`, { size: 900 }, "gzip, br");
    expect(small.headers["content-encoding"]).toBeUndefined();
    expect(small.bytes.length).toBeLessThan(1000);
    expect(JSON.parse(small.bytes.toString()).pad).toHaveLength(890);
  });

  it("never compresses an NDJSON stream: lines arrive one by one, as written", async () => {
    const response = await undiciRequest(`${url}/lines`, {
      method: "POST",
      headers: { "content-type": "application/json", "accept-encoding": "gzip, br" },
      body: JSON.stringify({ lines: 5 }),
    });
    expect(response.headers["content-encoding"]).toBeUndefined();
    expect(response.headers["content-type"]).toBe("application/x-ndjson");
    const chunks: string[] = [];
    for await (const chunk of response.body) chunks.push(chunk.toString());
    const lines = chunks.join("").trim().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { line: string }).line.split(" ")[0])).toEqual(["0", "1", "2", "3", "4"]);
    expect(chunks.length).toBeGreaterThan(1); // a compressor would have held the lines back into one block
  });

  it("compresses /metrics for a scraper that accepts gzip (Prometheus does), and the text decodes whole", async () => {
    const response = await undiciRequest(`${url}/metrics`, { headers: { "accept-encoding": "gzip" } });
    const bytes = Buffer.from(await response.body.arrayBuffer());
    expect(response.headers["content-encoding"]).toBe("gzip");
    const text = gunzipSync(bytes).toString();
    expect(text.length).toBeGreaterThan(1000);
    expect(text).toContain("batchwise_requests_total");
    const health = await undiciRequest(`${url}/health`, { headers: { "accept-encoding": "gzip" } });
    expect(await health.body.text()).toBe("ok");
  });

  it("compress: false turns it off", async () => {
    const off = await start({ api: new Padded(), workersPerDevice: 0, compress: false });
    const response = await raw(`${off}/predict`, { size: 5000 }, "gzip");
    expect(response.headers["content-encoding"]).toBeUndefined();
    expect(response.bytes.length).toBeGreaterThanOrEqual(5000);
  });
});

describe("https", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "batchwise-tls-"));
  const certFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  beforeAll(() => {
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** POST over TLS, trusting only the test's certificate (the certificate must match, not just encrypt). */
  function tlsPost(url: string, body: string): Promise<{ status: number; body: string; protocol: string }> {
    return new Promise((resolve, reject) => {
      const request = https.request(`${url}/predict`, { method: "POST", ca: readFileSync(certFile), headers: { "content-type": "application/json" } }, (response) => {
        let text = "";
        const protocol = (response.socket as import("node:tls").TLSSocket).getProtocol() ?? "";
        response.on("data", (c) => (text += c));
        response.on("end", () => resolve({ status: response.statusCode!, body: text, protocol }));
      });
      request.on("error", reject);
      request.end(body);
    });
  }

  it("https: { key, cert } serves TLS with that certificate; plain HTTP is not answered", async () => {
    const url = await start({ api: new Padded(), workersPerDevice: 0, https: { key: readFileSync(keyFile), cert: readFileSync(certFile) } });
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const response = await tlsPost(url, '{"size": 20}');
    expect(response.status).toBe(200);
    expect(response.protocol).toMatch(/^TLSv1\.[23]$/);
    expect(JSON.parse(response.body).pad).toHaveLength(10);
    await expect(fetch(url.replace("https:", "http:") + "/health")).rejects.toThrow();
  });

  it("over TLS, a body past maxPayloadSize still gets its 413 in the catalogue's shape", async () => {
    const url = await start({ api: new Padded(), workersPerDevice: 0, maxPayloadSize: 1024, https: { key: readFileSync(keyFile), cert: readFileSync(certFile) } });
    const response = await tlsPost(url, JSON.stringify({ size: 1, pad: "z".repeat(64 * 1024) }));
    expect(response.status).toBe(413);
    expect(JSON.parse(response.body).error.code).toBe("payload_too_large");
  });

  it("BATCHWISE_TLS_CERT / BATCHWISE_TLS_KEY (files) do the same under serve()", async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { BATCHWISE_TLS_CERT: certFile, BATCHWISE_TLS_KEY: keyFile, PORT: "0" });
    try {
      const server = await serve({ api: new Padded(), workersPerDevice: 0, log: false });
      try {
        expect(server.url).toMatch(/^https:/);
        expect((await tlsPost(server.url, '{"size": 20}')).status).toBe(200);
      } finally {
        await server.close();
      }
    } finally {
      for (const name of ["BATCHWISE_TLS_CERT", "BATCHWISE_TLS_KEY", "PORT"]) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    }
  });

  it("a certificate without its key, or an unreadable file, fails at createServer", async () => {
    await expect(createServer({ api: new Padded(), workersPerDevice: 0, log: false, tlsCert: certFile })).rejects.toThrow(/tlsCert and tlsKey/);
    await expect(createServer({ api: new Padded(), workersPerDevice: 0, log: false, tlsCert: certFile, tlsKey: path.join(dir, "missing.pem") })).rejects.toThrow(/Cannot read the TLS key/);
    await expect(createServer({ api: new Padded(), workersPerDevice: 0, log: false, https: { cert: "x" } })).rejects.toThrow(/https must be/);
  });
});

describe("plugins", () => {
  it("a middleware plugin sees every route (request ids, a header), and a plugin's own route is served", async () => {
    const seen: string[] = [];
    // The docs' example (docs/extension-points.md): fastify-plugin lifts the hooks out of the plugin's own scope.
    const requestIds = fp(async (app, options: { header: string }) => {
      app.addHook("onRequest", async (request, reply) => {
        seen.push(`${request.method} ${request.url}`);
        reply.header(options.header, request.id);
      });
    });
    const extraRoute = async (app: import("fastify").FastifyInstance) => {
      app.get("/hello", async () => ({ hello: "world" }));
    };
    const url = await start({ api: new Padded(), workersPerDevice: 0, plugins: [[requestIds, { header: "x-request-id" }], extraRoute] });
    const predict = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"size": 20}' });
    expect(predict.status).toBe(200);
    expect(predict.headers.get("x-request-id")).toBeTruthy();
    const hello = await fetch(`${url}/hello`);
    expect(await hello.json()).toEqual({ hello: "world" });
    expect(hello.headers.get("x-request-id")).toBeTruthy();
    expect(seen).toEqual(["POST /predict", "GET /hello"]);
    // plugin routes appear in /openapi.json too
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(doc.paths).toHaveProperty("/hello");
  });

  it("plugins run after the API key: a refused request never reaches them", async () => {
    const seen: string[] = [];
    const counter = fp(async (app) => {
      app.addHook("onRequest", async (request) => {
        seen.push(request.url);
      });
    });
    const url = await start({ api: new Padded(), workersPerDevice: 0, apiKey: "k", plugins: [counter] });
    expect((await fetch(`${url}/info`)).status).toBe(401);
    expect(seen).toEqual([]);
    expect((await fetch(`${url}/info`, { headers: { "x-api-key": "k" } })).status).toBe(200);
    expect(seen).toEqual(["/info"]);
  });

  it("refuses something that is not a plugin", async () => {
    await expect(createServer({ api: new Padded(), workersPerDevice: 0, log: false, plugins: ["nope" as never] })).rejects.toThrow(/fastify plugin/);
  });
});
