import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Pool } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LINGER_MAX_BYTES, LINGER_MAX_MS } from "../src/server/lingering-close.js";
import { startChild, type ChildServer } from "./fixtures/child-server.js";

// Bodies past maxPayloadSize (16 MiB, the default) must come back as the catalogue's 413 to every common client —
// undici fetch, node:http and curl — with a declared Content-Length (answered from the headers) and chunked (answered
// once 16 MiB have been read), while small requests from other clients are served meanwhile. Before the lingering
// close, undici and node:http often saw EPIPE / ECONNRESET instead of the answer.
//
// Sizes: the issue's range is 17 MB – 200 MB. Each client cycles through 17, 40, 100 and 200 MB and alternates
// Content-Length and chunked, so every size meets both framings and every client. Loopback moves ~1 GB/s, and the
// server discards at most LINGER_MAX_BYTES (256 MiB) or LINGER_MAX_MS after answering: 50 tries × 3 clients stay
// within tens of seconds.

const SIZES = [17e6, 40e6, 100e6, 200e6];
const TRIES = Number(process.env.OVERSIZED_TRIES ?? 50);
const LIMIT = 16 * 1024 * 1024;

interface Outcome {
  status?: number;
  text?: string;
  /** A connection error before the answer was read: the failure this test is about. */
  error?: string;
  /** An error the client saw after it had read the answer (a client that kept uploading past the linger bound). */
  laterError?: string;
}

let server: ChildServer;
let url: string;
let big: Buffer;
let dir: string;
const files = new Map<number, string>();

beforeAll(async () => {
  // the server runs in its own process, as in production: fetch spends seconds of its own event loop on a 200 MB body
  server = await startChild(["test/fixtures/serve-echo.ts"], /^URL (\S+)$/m);
  url = server.url;
  big = Buffer.alloc(Math.max(...SIZES), 0x61);
  dir = mkdtempSync(path.join(tmpdir(), "oversized-"));
  for (const size of SIZES) {
    // sparse files: curl reads them as zeros without them taking disk space
    const file = path.join(dir, `${size}.bin`);
    writeFileSync(file, "");
    truncateSync(file, size);
    files.set(size, file);
  }
}, 60_000);

afterAll(async () => {
  server?.child.kill("SIGTERM");
  await server?.exited;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function chunksOf(size: number, chunk = 1024 * 1024) {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < size; offset += chunk) parts.push(big.subarray(offset, Math.min(size, offset + chunk)));
  return parts;
}

async function viaFetch(size: number, chunked: boolean, base = url): Promise<Outcome> {
  try {
    let body: Uint8Array | ReadableStream<Uint8Array>;
    if (chunked) {
      const parts = chunksOf(size);
      let i = 0;
      body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (i < parts.length) controller.enqueue(parts[i++]);
          else controller.close();
        },
      });
    } else {
      body = big.subarray(0, size);
    }
    const response = await fetch(`${base}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      ...(chunked ? { duplex: "half" } : {}),
    } as RequestInit);
    return { status: response.status, text: await response.text() };
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return { error: `${(error as Error).message}: ${cause?.code ?? cause?.message ?? ""}` };
  }
}

function viaNodeHttp(size: number, chunked: boolean, base = url): Promise<Outcome> {
  const target = new URL(`${base}/predict`);
  return new Promise((resolve) => {
    let outcome: Outcome | undefined;
    const request = http.request({
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      method: "POST",
      agent: false,
      headers: chunked ? { "content-type": "application/json" } : { "content-type": "application/json", "content-length": size },
    });
    request.on("response", (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (text += chunk));
      response.on("end", () => {
        outcome = { status: response.statusCode, text };
        resolve(outcome);
      });
      response.on("error", (error) => {
        if (!outcome) resolve((outcome = { error: `response: ${(error as NodeJS.ErrnoException).code ?? error.message}` }));
      });
    });
    request.on("error", (error) => {
      const code = (error as NodeJS.ErrnoException).code ?? error.message;
      if (outcome) outcome.laterError = code;
      else resolve((outcome = { error: code }));
    });
    if (!chunked) {
      request.end(big.subarray(0, size)); // the simplest client: the whole body in one write
      return;
    }
    // chunked: write as the socket drains, as a streaming upload does
    const parts = chunksOf(size);
    let i = 0;
    const pump = () => {
      while (i < parts.length && !outcome && !request.destroyed) {
        if (!request.write(parts[i++])) return void request.once("drain", pump);
      }
      if (!request.destroyed) request.end();
    };
    pump();
  });
}

function viaCurl(size: number, chunked: boolean, base = url): Promise<Outcome> {
  const file = files.get(size)!;
  // -T streams the file (no copy in memory): with its length from the file, or chunked from stdin
  const args = ["-sS", "-X", "POST", "-H", "content-type: application/json", "-o", "-", "-w", "\n%{http_code}"];
  if (chunked) args.push("-H", "transfer-encoding: chunked", "-T", "-");
  else args.push("-T", file);
  args.push(`${base}/predict`);
  const stdin = chunked ? openSync(file, "r") : "ignore";
  return new Promise((resolve) => {
    const child = spawn("curl", args, { stdio: [stdin, "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr!.setEncoding("utf8").on("data", (c: string) => (err += c));
    child.on("close", (code) => {
      if (typeof stdin === "number") closeSync(stdin);
      const newline = out.lastIndexOf("\n");
      const status = Number(out.slice(newline + 1));
      if (status > 0) resolve({ status, text: out.slice(0, newline), ...(code ? { laterError: `curl exit ${code}: ${err.trim()}` } : {}) });
      else resolve({ error: `curl exit ${code}: ${err.trim()}` });
    });
  });
}

const clients = { fetch: viaFetch, "node:http": viaNodeHttp, curl: viaCurl } as const;

describe("oversized uploads get their 413", () => {
  for (const [name, send] of Object.entries(clients)) {
    it(`${name}: ${TRIES} uploads of 17–200 MB (Content-Length and chunked) all read the 413; small requests are served meanwhile`, async () => {
      // other clients keep sending small requests the whole time
      let stop = false;
      const small: number[] = [];
      // on their own connection pool: fetch's shared pool would hand an upload a keep-alive connection that went
      // stale while fetch itself held the event loop for seconds preparing a 200 MB body (a client-side race that
      // has nothing to do with the 413)
      const others = new Pool(url, { connections: 1 });
      const background = (async () => {
        while (!stop) {
          const response = await others.request({ path: "/predict", method: "POST", headers: { "content-type": "application/json" }, body: '{"x": 1}' });
          small.push(response.statusCode);
          await response.body.arrayBuffer();
        }
      })();

      const failures: string[] = [];
      const later: string[] = [];
      const started = performance.now();
      try {
        for (let i = 0; i < TRIES; i++) {
          const size = SIZES[i % SIZES.length];
          const chunked = Math.floor(i / SIZES.length) % 2 === 1;
          const outcome = await send(size, chunked);
          const label = `try ${i}: ${size / 1e6} MB ${chunked ? "chunked" : "Content-Length"}`;
          if (outcome.error !== undefined) {
            failures.push(`${label}: ${outcome.error}`);
            continue;
          }
          if (outcome.laterError) later.push(`${label}: ${outcome.laterError}`);
          let code: unknown;
          try {
            code = (JSON.parse(outcome.text!) as { error?: { code?: string; message?: string } }).error?.code;
          } catch {
            code = `unparsable: ${outcome.text?.slice(0, 100)}`;
          }
          if (outcome.status !== 413 || code !== "payload_too_large") failures.push(`${label}: ${outcome.status} ${String(code)}`);
        }
      } finally {
        stop = true;
        await background;
        await others.close();
      }
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `${name}: ${TRIES} oversized uploads in ${seconds.toFixed(1)} s, ${failures.length} without their 413; ` +
          `${later.length} client errors after the answer was read (uploading on past ${LINGER_MAX_BYTES / 2 ** 20} MiB / ${LINGER_MAX_MS} ms); ` +
          `${small.length} small requests served meanwhile`,
      );
      expect(failures).toEqual([]);
      expect(small.length).toBeGreaterThan(0);
      expect(small.every((status) => status === 200)).toBe(true);
      // the server still answers a normal request on a fresh connection
      expect((await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: "[1]" })).status).toBe(200);
    }, 180_000);
  }

  it("a client that keeps uploading after the answer is cut off after at most LINGER_MAX_BYTES more", async () => {
    // a raw client declaring 10 GiB and writing blindly, never reading its socket's end
    const target = new URL(url);
    // allowHalfOpen: it keeps writing even if the server ends its side
    const socket = net.connect({ port: Number(target.port), host: target.hostname, allowHalfOpen: true });
    await once(socket, "connect");
    socket.on("error", () => {});
    let answer = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => (answer += chunk));
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write(`POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${10 * 2 ** 30}\r\n\r\n`);
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    let written = 0;
    while (!socket.destroyed && written < 2 ** 30) {
      written += chunk.length;
      if (!socket.write(chunk)) await Promise.race([new Promise((resolve) => socket.once("drain", resolve)), closed]);
    }
    await closed;
    console.log(`blind uploader: ${(written / 2 ** 20).toFixed(0)} MiB handed to the kernel before the server closed`);
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    expect(answer).toContain('"code":"payload_too_large"');
    // what the server discarded (LINGER_MAX_BYTES, checked on a 10 ms timer, which a loaded machine runs late while
    // loopback moves a few hundred MB in 50 ms: CI once read 309 MiB) plus both kernels' socket buffers — bounded,
    // far below the 1 GiB this client tries to send
    expect(written).toBeLessThan(LINGER_MAX_BYTES + 128 * 2 ** 20);
  }, 60_000);

  it("an answer other than 413 sent before the body arrived (401 to an unauthenticated 100 MB upload) is read too", async () => {
    const keyed = await startChild(["test/fixtures/serve-echo.ts", JSON.stringify({ apiKey: "secret" })], /^URL (\S+)$/m);
    try {
      const failures: string[] = [];
      for (const [name, send] of Object.entries(clients)) {
        for (const chunked of [false, true, false, true]) {
          const outcome = await send(100e6, chunked, keyed.url);
          const code = outcome.text ? (JSON.parse(outcome.text) as { error?: { code?: string } }).error?.code : undefined;
          if (outcome.status !== 401 || code !== "unauthorized") failures.push(`${name} ${chunked ? "chunked" : "Content-Length"}: ${outcome.error ?? `${outcome.status} ${code}`}`);
        }
      }
      expect(failures).toEqual([]);
    } finally {
      keyed.child.kill("SIGTERM");
      await keyed.exited;
    }
  }, 120_000);

  it("a body just under the limit is still accepted (lingering applies only to answers sent before the body ended)", async () => {
    const body = JSON.stringify({ pad: "x".repeat(LIMIT - 100) });
    const response = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body });
    expect(response.status).toBe(200);
  }, 60_000);
});
