import { readFileSync } from "node:fs";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { imageClassifier } from "../src/classifier/image-classifier.js";
import { createServer, type BatchwiseServer, type ServerOptions } from "../src/server/server.js";
import { faultyApi } from "./fixtures/faulty-api.js";
import { expectCleanError } from "./fixtures/raw-http.js";
import { image } from "./helpers/paths.js";

// Overload: more requests than the queue holds, for longer than a moment, and clients too slow to finish a request.
// The server refuses what it cannot hold (503 + Retry-After) before spending work on it, returns to an empty state
// afterwards, and closes connections that do not finish a request within requestTimeout.

const servers: BatchwiseServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(options: Partial<ServerOptions>) {
  const server = await createServer({ api: faultyApi(), port: 0, log: false, ...options });
  servers.push(server);
  return { server, url: await server.listen() };
}

async function burst(url: string, body: string, count: number) {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const response = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body });
      return { status: response.status, retryAfter: response.headers.get("retry-after"), text: await response.text() };
    }),
  );
}

function expectIdle(server: BatchwiseServer) {
  const load = server.endpoints[0].load();
  expect(load.queued).toBe(0);
  expect(load.decoding).toBe(0);
  expect(load.busyWorkers).toBe(0);
}

describe("a bounded queue under overload", () => {
  it("a burst of 48 images at a queue of 4: the excess gets 503 + Retry-After before it is decoded", async () => {
    const { server, url } = await start({
      api: imageClassifier({ labels: "cat-dog", precision: "int8" }),
      maxBatchSize: 4,
      maxQueueSize: 4,
      accelerator: "cpu",
    });
    // count concurrent decodes on the main thread's instance: each holds an image and its 600 kB tensor
    const api = server.endpoints[0].api;
    const decode = api.decodeRequest.bind(api);
    let decoding = 0;
    let mostDecoding = 0;
    api.decodeRequest = async (request, ctx) => {
      mostDecoding = Math.max(mostDecoding, ++decoding);
      try {
        return await decode(request, ctx);
      } finally {
        decoding--;
      }
    };
    const body = JSON.stringify({ image: readFileSync(image("skimage_chelsea.png")).toString("base64") });
    const responses = await burst(url, body, 48);
    const refused = responses.filter((r) => r.status === 503);
    const served = responses.filter((r) => r.status === 200);
    expect(served.length + refused.length).toBe(48);
    expect(served.length).toBeGreaterThanOrEqual(4);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(r.retryAfter).toBe("1");
      expect(expectCleanError(r.status, r.text, [503]).code).toBe("queue_full");
    }
    for (const r of served) expect(JSON.parse(r.text).predictions[0].label).toBe("Cat");
    expect(mostDecoding).toBeLessThanOrEqual(4);
    console.log(`burst of 48: ${served.length} served, ${refused.length} refused, at most ${mostDecoding} decoding at once`);
    expectIdle(server);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it("sustained overload (3 rounds of 150 requests, 32 at a time): only 200s and 503s, and back to empty each time", async () => {
    const { server, url } = await start({ api: faultyApi({ delayMs: 15 }), maxBatchSize: 4, maxQueueSize: 8 });
    for (let round = 0; round < 3; round++) {
      const statuses: number[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < 150) {
            const value = next++;
            const response = await fetch(`${url}/predict`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ value }),
            });
            statuses.push(response.status);
            if (response.status === 200) expect(await response.json()).toEqual({ value });
            else await response.text();
          }
        }),
      );
      expect(new Set(statuses.filter((s) => s !== 200 && s !== 503))).toEqual(new Set());
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(8);
      expectIdle(server);
    }
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });
});

describe("slow clients cannot hold the server", () => {
  it("50 clients trickling headers or bodies are all cut off at requestTimeout; a normal client is served meanwhile", async () => {
    const requestTimeout = 2;
    const { url } = await start({ requestTimeout });
    const { port } = new URL(url);
    const trickle = (head: string, drip: string) =>
      new Promise<{ status: number; closedAfterMs: number }>((resolve) => {
        const socket = net.connect(Number(port), "127.0.0.1");
        const started = performance.now();
        let text = "";
        socket.write(head);
        const timer = setInterval(() => socket.writable && socket.write(drip), 250);
        socket.on("data", (chunk) => (text += chunk));
        socket.on("error", () => {});
        socket.on("close", () => {
          clearInterval(timer);
          resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), closedAfterMs: performance.now() - started });
        });
      });
    const slow = [
      // slowloris: one header byte at a time, never finishing the headers
      ...Array.from({ length: 25 }, () => trickle("POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: ", "a")),
      // a declared body sent one byte at a time
      ...Array.from({ length: 25 }, () =>
        trickle("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"value\": ", " ")),
    ];
    await new Promise((r) => setTimeout(r, 500));
    const normal = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"value": 1}' });
    expect(normal.status).toBe(200);
    const results = await Promise.all(slow);
    for (const result of results) {
      expect(result.status).toBe(408);
      expect(result.closedAfterMs).toBeGreaterThan(requestTimeout * 1000 - 100);
      expect(result.closedAfterMs).toBeLessThan(requestTimeout * 1000 + 2500);
    }
    console.log(`50 slow clients closed after ${Math.min(...results.map((r) => r.closedAfterMs)).toFixed(0)}–${Math.max(...results.map((r) => r.closedAfterMs)).toFixed(0)} ms`);
  });

  it("an idle keep-alive connection is closed by the server after the keep-alive timeout (5 s)", async () => {
    const { url } = await start({});
    const { port } = new URL(url);
    const closedAfterMs = await new Promise<number>((resolve) => {
      const socket = net.connect(Number(port), "127.0.0.1");
      let started = 0;
      socket.on("data", () => (started ||= performance.now()));
      socket.on("error", () => {});
      socket.on("close", () => resolve(performance.now() - started));
      socket.write("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"value\": 1}");
    });
    expect(closedAfterMs).toBeGreaterThan(4_000);
    expect(closedAfterMs).toBeLessThan(8_000);
  });
});
