import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createServer, type BatchwiseServer, type ServerOptions } from "../src/index.js";
import { Batcher } from "../src/server/batcher.js";
import { Cancellation } from "../src/server/cancellation.js";
import { requestDeadline } from "../src/server/deadline.js";
import { RequestRecord } from "../src/server/request-record.js";
import type { WorkerPool } from "../src/server/worker-pool.js";
import { recordApi } from "./fixtures/record-api.js";

// A request's deadline (X-Request-Timeout) drops its work before the model sees it: the test API writes down every
// item its predict receives, in a worker thread, so "never reached predict" is read from that file.

let dir: string;
let seenFile: string;
const servers: BatchwiseServer[] = [];
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "batchwise-deadline-"));
  seenFile = path.join(dir, "seen.txt");
  writeFileSync(seenFile, "");
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

async function start(options: Partial<ServerOptions> = {}) {
  const server = await createServer({ api: recordApi(seenFile), port: 0, log: false, workersPerDevice: 1, ...options });
  servers.push(server);
  return server.listen();
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
const seen = () => readFileSync(seenFile, "utf8").split("\n").filter(Boolean);

describe("X-Request-Timeout", () => {
  it("drops queued work whose deadline passes before a worker is free: 504 deadline_exceeded, never predicted", async () => {
    const url = await start({ maxBatchSize: 4, batchTimeout: 0.001 });
    const busy = post(url, { id: "busy", ms: 800 }); // holds the only worker
    await new Promise((resolve) => setTimeout(resolve, 150));
    const late = post(url, { id: "late" }, { "x-request-timeout": "0.2" });
    const patient = post(url, { id: "patient" }, { "x-request-timeout": "30" });
    const lateAnswer = await late;
    expect(lateAnswer.status).toBe(504);
    expect(((await lateAnswer.json()) as any).error.code).toBe("deadline_exceeded");
    expect(lateAnswer.headers.get("server-timing")).toMatch(/queue;dur=/);
    expect((await busy).status).toBe(200);
    expect(await (await patient).json()).toEqual({ id: "patient", batch: 1 });
    expect(seen()).toEqual(["busy", "patient"]);
  });

  it("runs a request whose deadline leaves time, and refuses a malformed one with a 400 naming the header", async () => {
    const url = await start();
    const ok = await post(url, { id: "in-time" }, { "x-request-timeout": "5" });
    expect(await ok.json()).toEqual({ id: "in-time", batch: 1 });
    for (const bad of ["0", "-1", "soon", "1e3", ""]) {
      const answer = await post(url, { id: "bad" }, { "x-request-timeout": bad });
      expect(answer.status, bad).toBe(400);
      const body = (await answer.json()) as any;
      expect(body.error.code).toBe("invalid_request_timeout");
      expect(body.error.message).toMatch(/X-Request-Timeout/);
    }
    expect(seen()).toEqual(["in-time"]);
  });

  it("the official OpenAI client's per-call `timeout` becomes the deadline (it sends X-Stainless-Timeout)", async () => {
    const url = await start({ path: "/v1/chat/completions" });
    const busy = fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id: "busy", ms: 2500 }) });
    await new Promise((resolve) => setTimeout(resolve, 150));
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 });
    const body = { model: "m", messages: [{ role: "user" as const, content: "hi" }], id: "sdk" };
    // a call's own timeout goes out as X-Stainless-Timeout: "1" (whole seconds)
    const failure = await client.chat.completions.create(body as never, { timeout: 1900 }).then(() => undefined, (error: unknown) => error);
    expect(failure).toMatchObject({ status: 504 });
    expect((await busy).status).toBe(200);
    expect(seen()).toEqual(["busy"]);
  });

  it("an OpenAI SDK's own timeout (X-Stainless-Timeout, whole seconds) is a deadline too; 0 (under a second) is none", () => {
    expect(requestDeadline({ "x-stainless-timeout": "600" }, 1000)).toBe(601_000);
    expect(requestDeadline({ "x-stainless-timeout": "0" }, 1000)).toBeUndefined();
    expect(requestDeadline({ "x-request-timeout": "0.5", "x-stainless-timeout": "600" }, 1000)).toBe(1500);
    expect(requestDeadline({}, 1000)).toBeUndefined();
  });
});

describe("Batcher and deadlines", () => {
  it("a batch never takes an item whose deadline passed, even before its timer fired", async () => {
    const dispatched: unknown[][] = [];
    const pool = {
      admitsIntoRunning: false,
      busyCount: 0,
      wantsRequestIds: false,
      take: () => ({}),
      run: async (_runner: unknown, inputs: unknown[]) => {
        dispatched.push(inputs);
        return { outputs: inputs, errors: [] };
      },
    };
    const batcher = new Batcher(pool as unknown as WorkerPool, { maxBatchSize: 8, batchTimeout: 0.01, queueTimeout: 30, maxQueueSize: 64 });
    const now = performance.now();
    const expiring = batcher.submit("expiring", new Cancellation(), undefined, new RequestRecord("/predict", "1", now + 5));
    const kept = batcher.submit("kept", new Cancellation(), undefined, new RequestRecord("/predict", "2", now + 60_000));
    const stale = batcher.submit("stale", new Cancellation(), undefined, new RequestRecord("/predict", "3", now - 1));
    while (performance.now() < now + 10); // the deadline passes while this turn still runs: no timer could fire
    batcher.pump();
    expect(dispatched).toEqual([["kept"]]);
    await expect(expiring).rejects.toMatchObject({ code: "deadline_exceeded", status: 504 });
    await expect(stale).rejects.toMatchObject({ code: "deadline_exceeded" });
    expect(await kept).toBe("kept");
  });
});
