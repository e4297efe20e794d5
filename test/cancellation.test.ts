import { afterEach, describe, expect, it } from "vitest";
import type { RequestContext } from "../src/api/model-api.js";
import { createServer, type BatchwiseServer, type ServerOptions } from "../src/index.js";
import { Cancellation, requestContext } from "../src/server/cancellation.js";
import { CountAPI, countApi } from "./fixtures/count-api.js";

describe("Cancellation", () => {
  it("calls each listener once on abort, not after it was taken off, and not when aborted again", () => {
    const cancellation = new Cancellation();
    const calls: string[] = [];
    cancellation.onAbort(() => calls.push("a"));
    const removeB = cancellation.onAbort(() => calls.push("b"));
    cancellation.onAbort(() => calls.push("c"));
    removeB();
    removeB(); // twice is harmless
    cancellation.abort();
    cancellation.abort();
    expect(calls).toEqual(["a", "c"]);
    expect(cancellation.aborted).toBe(true);
    cancellation.onAbort(() => calls.push("late")); // already aborted: never called
    expect(calls).toEqual(["a", "c"]);
  });

  it("gives an AbortSignal that follows it, whether it is asked for before or after the abort", () => {
    const before = new Cancellation();
    const signal = before.signal;
    let fired = 0;
    signal.addEventListener("abort", () => fired++);
    expect(signal.aborted).toBe(false);
    before.abort();
    expect([signal.aborted, fired]).toEqual([true, 1]);
    expect(before.signal).toBe(signal);

    const after = new Cancellation();
    after.abort();
    expect(after.signal.aborted).toBe(true);
  });

  it("makes a request context whose signal is the cancellation's", () => {
    const cancellation = new Cancellation();
    const ctx = requestContext(cancellation, { "x-test": "1" });
    expect(ctx.headers["x-test"]).toBe("1");
    expect(ctx.signal.aborted).toBe(false);
    cancellation.abort();
    expect(ctx.signal.aborted).toBe(true);
    expect({ ...ctx }.signal.aborted).toBe(true); // a spread context keeps it
  });
});

const servers: BatchwiseServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(options: ServerOptions) {
  const server = await createServer({ port: 0, log: false, ...options });
  servers.push(server);
  return server.listen({ waitForReady: true });
}

/** Start a long count, read its first chunk, then go away; resolves once the client has disconnected. */
async function abandonAfterFirstChunk(url: string) {
  const controller = new AbortController();
  const response = await fetch(`${url}/predict`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ n: 1000 }),
    signal: controller.signal,
  });
  expect(response.status).toBe(200);
  await response.body!.getReader().read();
  controller.abort();
}

async function countTo(url: string, n: number) {
  const response = await fetch(`${url}/predict`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ n }),
    signal: AbortSignal.timeout(5000), // the abandoned count still running would hold the worker for 20 s
  });
  return { status: response.status, text: await response.text() };
}

describe("a client that goes away mid-stream stops its work over real HTTP", () => {
  it("in a worker thread: the cancel reaches the worker, which is then free for the next request", async () => {
    const url = await start({ api: countApi({ stepMs: 20 }), stream: true });
    await abandonAfterFirstChunk(url);
    const next = await countTo(url, 2);
    expect(next.status).toBe(200);
    expect(next.text).toContain('"count":2');
  });

  it("in-process: predict's signal and the signal decodeRequest read both abort", async () => {
    const seen: AbortSignal[] = [];
    class WatchedCount extends CountAPI {
      override decodeRequest(request: { n: number }, ctx?: RequestContext) {
        seen.push(ctx!.signal);
        return super.decodeRequest(request);
      }
    }
    const url = await start({ api: new WatchedCount({ stepMs: 20 }), stream: true, workersPerDevice: 0 });
    await abandonAfterFirstChunk(url);
    const next = await countTo(url, 2);
    expect(next.status).toBe(200);
    expect(seen[0].aborted).toBe(true);
    expect(seen[1].aborted).toBe(false);
  });
});
