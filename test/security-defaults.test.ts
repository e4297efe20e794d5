import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ModelNotFoundError, resolveModel } from "../src/runtime/models.js";
import { apiKeyMatcher } from "../src/server/auth.js";
import { createServer, type BatchwiseServer, type ServerOptions } from "../src/server/server.js";
import { openAISpec } from "../src/openai/spec.js";
import { countApi } from "./fixtures/count-api.js";
import { faultyApi } from "./fixtures/faulty-api.js";
import { expectCleanError, rawRequest } from "./fixtures/raw-http.js";
import { modelsDir } from "./helpers/paths.js";

// Secure defaults: loopback only, API keys compared without leaking through timing or errors, no CORS unless asked,
// model ids that cannot leave the models folder, and logs that never contain a request body.

const servers: BatchwiseServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(options: Partial<ServerOptions>) {
  const server = await createServer({ api: faultyApi(), port: 0, log: false, ...options });
  servers.push(server);
  return { server, url: await server.listen() };
}

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });

/** This machine's non-loopback IPv4 addresses (where a server bound to 0.0.0.0 would also answer). */
const externalAddresses = Object.values(os.networkInterfaces())
  .flat()
  .filter((a): a is os.NetworkInterfaceInfo => !!a && a.family === "IPv4" && !a.internal)
  .map((a) => a.address);

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 2000 });
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => (socket.destroy(), resolve(false)));
  });
}

describe("network exposure", () => {
  it("binds 127.0.0.1 unless told otherwise: not reachable on the machine's other addresses", async () => {
    const { server, url } = await start({});
    const address = server.app.server.address() as net.AddressInfo;
    expect(address.address).toBe("127.0.0.1");
    expect(url).toBe(`http://127.0.0.1:${address.port}`);
    expect(await canConnect("127.0.0.1", address.port)).toBe(true);
    for (const external of externalAddresses) expect(await canConnect(external, address.port), external).toBe(false);
  });

  it("sends no CORS headers unless origins are configured, then only to those origins", async () => {
    const { url } = await start({});
    const preflight = await fetch(`${url}/predict`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    const simple = await post(url, '{"value": 1}', { origin: "https://evil.example" });
    for (const response of [preflight, simple]) {
      expect([...response.headers.keys()].filter((h) => h.startsWith("access-control-"))).toEqual([]);
    }
    expect(preflight.status).toBe(404);

    const configured = await start({ corsOrigins: ["https://app.example"] });
    const allowed = await post(configured.url, '{"value": 1}', { origin: "https://app.example" });
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const other = await post(configured.url, '{"value": 1}', { origin: "https://evil.example" });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("CORS with an API key: the preflight (sent without credentials) passes, and a 401 is readable by the page", async () => {
    const { url } = await start({ corsOrigins: ["https://app.example"], apiKey: "secret" });
    const preflight = await fetch(`${url}/predict`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "x-api-key" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-headers")).toContain("x-api-key");
    const refused = await post(url, '{"value": 1}', { origin: "https://app.example" });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const served = await post(url, '{"value": 1}', { origin: "https://app.example", "x-api-key": "secret" });
    expect(served.status).toBe(200);
    // an origin not on the list gets nothing, and still needs the key
    const evil = await fetch(`${url}/predict`, { method: "OPTIONS", headers: { origin: "https://evil.example", "access-control-request-method": "POST" } });
    expect(evil.status).toBe(401);
    expect(evil.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("API key", () => {
  it("the matcher accepts only the exact key, and never throws on keys of another length or encoding", () => {
    const matches = apiKeyMatcher("s3cret-key");
    const yes = [{ "x-api-key": "s3cret-key" }, { authorization: "Bearer s3cret-key" }, { authorization: "bearer  s3cret-key " }];
    for (const headers of yes) expect(matches(headers), JSON.stringify(headers)).toBe(true);
    const no = [
      {},
      { "x-api-key": "" },
      { "x-api-key": "s3cret-ke" },
      { "x-api-key": "s3cret-key-and-more" },
      { "x-api-key": "S3CRET-KEY" },
      { "x-api-key": "s3cret-kéy" },
      { "x-api-key": "x".repeat(100_000) },
      { authorization: "Basic s3cret-key" },
      { authorization: "s3cret-key" },
      { authorization: "Bearer" },
    ];
    for (const headers of no) expect(matches(headers), JSON.stringify(headers).slice(0, 80)).toBe(false);
  });

  it("every route but /health needs the key; a refusal is a 401 before the body is read and never echoes a key", async () => {
    const key = "k3y-" + "z".repeat(20);
    const { url } = await start({ apiKey: key, maxPayloadSize: 64 * 1024 * 1024 });
    for (const [method, route] of [["GET", "/info"], ["GET", "/metrics"], ["POST", "/predict"], ["GET", "/nope"]]) {
      const response = await fetch(`${url}${route}`, { method, headers: { "x-api-key": "wrong-key", "content-type": "application/json" }, body: method === "POST" ? "{}" : undefined });
      const text = await response.text();
      expect(response.status, route).toBe(401);
      expect(response.headers.get("www-authenticate")).toBe("Bearer");
      expectCleanError(response.status, text, [401]);
      expect(text).not.toContain(key);
      expect(text).not.toContain("wrong-key");
    }
    expect((await fetch(`${url}/health`)).status).toBe(200);
    // a 32 MiB upload without a key is refused from its headers: the answer comes before the body is sent
    const refused = await rawRequest(
      url,
      `POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${32 * 1024 * 1024}\r\n\r\n{"value": `,
      1_500,
    );
    expect(refused.status).toBe(401);
    const info = await (await fetch(`${url}/info`, { headers: { authorization: `Bearer ${key}` } })).text();
    expect(info).toContain('"auth":"api-key"');
    expect(info).not.toContain(key);
  });

  it("an empty key is a startup error, not a server without authentication", async () => {
    for (const apiKey of ["", "   "]) {
      await expect(createServer({ api: faultyApi(), apiKey, port: 0, log: false })).rejects.toThrow(/API key is empty/);
    }
  });

  it("the OpenAI route's 401 is in OpenAI's error shape", async () => {
    // a streaming API: the OpenAI spec streams predict, and the server refuses a non-streaming one at start
    const { url } = await start({ apiKey: "secret", spec: openAISpec(), api: countApi() });
    const response = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(response.status).toBe(401);
    const body = (await response.json()) as { error: { type: string; code: string } };
    expect(body.error).toMatchObject({ type: "authentication_error", code: "unauthorized" });
  });
});

describe("model ids", () => {
  it("cannot escape the models folder, however they are spelled", async () => {
    const escapes = [
      "..",
      "a/../../etc",
      "mobilenetv2-12/../../..",
      "mobilenetv2-12/..",
      "%2e%2e/%2e%2e/etc",
      "..%2f..%2fetc",
      "x\\..\\..\\etc",
      "mobilenetv2-12\u0000/../../etc",
      "~/models",
      "a/b/c",
      " ",
      "\n",
    ];
    for (const id of escapes) {
      await expect(resolveModel(id, { modelsDir, download: false }), JSON.stringify(id)).rejects.toBeInstanceOf(ModelNotFoundError);
    }
    const ok = await resolveModel("mobilenetv2-12", { modelsDir, download: false });
    expect(path.relative(modelsDir, ok.dir)).toBe("mobilenetv2-12");
  });

  it("./, ../ and / mark an explicit path (the operator's choice, never a request's): a missing one is named", async () => {
    await expect(resolveModel("../no-such-folder", { modelsDir, download: false })).rejects.toThrow(/does not exist/);
  });
});

describe("logs", () => {
  it("never contain request bodies, whatever happens to the request", async () => {
    const lines: string[] = [];
    const secret = "SECRET-BODY-MARKER-7f3a";
    const { url } = await start({ log: (line) => lines.push(line), resourceLimits: { maxOldGenerationSizeMb: 32 } });
    const bodies = [
      `{"value": 1, "note": "${secret}"}`, // served
      `{"value": "${secret}"}`, // refused by decodeRequest
      `{"value": 1, "${secret}": `, // broken JSON
      `{"value": 1, "fault": "throw", "note": "${secret}"}`, // predict throws
      `{"value": 1, "fault": "exit", "note": "${secret}"}`, // the worker dies
      `{"value": 1, "__proto__": {"${secret}": 1}}`, // prototype poisoning
    ];
    for (const body of bodies) await (await post(url, body)).text();
    await (await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "text/plain" }, body: secret })).text();
    await new Promise((r) => setTimeout(r, 300)); // let the worker replacement log
    expect(lines.length).toBeGreaterThan(0); // the crash was logged: the capture works
    for (const line of lines) expect(line).not.toContain(secret);
  });
});
