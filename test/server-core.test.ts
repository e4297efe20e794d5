import { afterEach, describe, expect, it } from "vitest";
import { createServer, type BatchwiseServer, type ServerOptions } from "../src/index.js";
import { countApi } from "./fixtures/count-api.js";
import { SumAPI, sumApi } from "./fixtures/sum-api.js";

const servers: BatchwiseServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(options: ServerOptions, listen = { waitForReady: true }) {
  const server = await createServer({ port: 0, log: false, ...options });
  servers.push(server);
  const url = await server.listen(listen);
  return { server, url };
}

const json = (response: Response): Promise<any> => response.json();

function post(url: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });
}

async function batchSizeBuckets(url: string) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const count = Number(/batchwise_batch_size_count\{[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
  const sum = Number(/batchwise_batch_size_sum\{[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
  const leOne = Number(/batchwise_batch_size_bucket\{le="1"[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
  return { count, sum, batchesLargerThanOne: count - leOne, text };
}

describe("serving core over real HTTP", () => {
  it("answers each of many concurrent requests with its own result, in batches never above maxBatchSize", async () => {
    const { url } = await start({ api: sumApi({ delayMs: 15 }), maxBatchSize: 8, batchTimeout: 0.02, workersPerDevice: 2 });
    const responses = await Promise.all(
      Array.from({ length: 60 }, (_, i) => post(`${url}/predict`, { numbers: [i, 1000] }).then(json)),
    );
    responses.forEach((body, i) => expect(body.sum).toBe(i + 1000));
    const sizes = responses.map((b) => b.batchSize as number);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(8);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(new Set(responses.map((b) => b.worker)).size).toBe(2);
    const metrics = await batchSizeBuckets(url);
    expect(metrics.sum).toBe(60);
    expect(metrics.batchesLargerThanOne).toBeGreaterThan(0);
  });

  it("does not make a lone request wait for the batch timeout", async () => {
    const { url } = await start({ api: sumApi(), maxBatchSize: 64, batchTimeout: 5 });
    const started = performance.now();
    const response = await post(`${url}/predict`, { numbers: [2, 3] });
    expect(await json(response)).toMatchObject({ sum: 5, batchSize: 1 });
    expect(performance.now() - started).toBeLessThan(2500); // a 5 s timeout would have shown
  });

  it("fails a request that waited longer than `timeout` with 504", async () => {
    const { url } = await start({ api: sumApi({ delayMs: 600 }), queueTimeout: 0.2 });
    const [first, second] = await Promise.all([post(`${url}/predict`, { numbers: [1] }), post(`${url}/predict`, { numbers: [2] })]);
    const statuses = [first.status, second.status].sort();
    expect(statuses).toEqual([200, 504]);
    const timedOut = first.status === 504 ? first : second;
    expect((await json(timedOut)).error.code).toBe("queue_timeout");
  });

  it("refuses work beyond maxQueueSize with 503 and Retry-After", async () => {
    const { url } = await start({ api: sumApi({ delayMs: 300 }), maxQueueSize: 1 });
    const responses = await Promise.all(Array.from({ length: 5 }, (_, i) => post(`${url}/predict`, { numbers: [i] })));
    const refused = responses.filter((r) => r.status === 503);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0].headers.get("retry-after")).toBe("1");
    expect((await json(refused[0])).error.code).toBe("queue_full");
    expect(responses.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2);
  });

  it("drops a request whose client disconnected before dispatch: it is never predicted", async () => {
    const api = new SumAPI({ delayMs: 400, asyncDelay: true });
    const { url } = await start({ api, workersPerDevice: 0 });
    const busy = post(`${url}/predict`, { numbers: [1] });
    await new Promise((r) => setTimeout(r, 50));
    const controller = new AbortController();
    const abandoned = post(`${url}/predict`, { numbers: [777] }, {}, controller.signal).catch((e) => e);
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    await abandoned;
    expect((await busy).status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    expect(api.predicted).toEqual([1]);
  });

  it("fails a poisoned item alone; the rest of its batch succeeds", async () => {
    const { url } = await start({ api: sumApi({ delayMs: 100 }), maxBatchSize: 16, batchTimeout: 0.2 });
    const blocker = post(`${url}/predict`, { numbers: [0] });
    await new Promise((r) => setTimeout(r, 30)); // the worker is busy: the next ones queue into one batch
    const responses = await Promise.all(
      Array.from({ length: 6 }, (_, i) => post(`${url}/predict`, { numbers: [i], poison: i === 3 })),
    );
    expect((await blocker).status).toBe(200);
    for (const [i, response] of responses.entries()) {
      const body = await json(response);
      if (i === 3) {
        expect(response.status).toBe(500);
        expect(body.error.code).toBe("predict_failed");
        expect(body.error.message).not.toContain("poisoned input"); // logged on the server, not sent
        expect(JSON.stringify(body)).not.toMatch(/at .*\.ts:\d+/);
      } else {
        expect(response.status).toBe(200);
        expect(body.sum).toBe(i);
      }
    }
    expect((await batchSizeBuckets(url)).batchesLargerThanOne).toBeGreaterThan(0);
  });

  it("answers 500 fast when a worker dies, replaces it, and serves later requests", async () => {
    const { url } = await start({ api: sumApi() });
    const started = performance.now();
    const crashed = await post(`${url}/predict`, { numbers: [1], crash: true });
    expect(crashed.status).toBe(500);
    expect((await json(crashed)).error.code).toBe("worker_crashed");
    expect(performance.now() - started).toBeLessThan(1500);
    let healthy = false;
    for (let i = 0; i < 100 && !healthy; i++) {
      healthy = (await fetch(`${url}/health`)).status === 200;
      if (!healthy) await new Promise((r) => setTimeout(r, 50));
    }
    expect(healthy).toBe(true);
    const after = await post(`${url}/predict`, { numbers: [4, 5] });
    expect(await json(after)).toMatchObject({ sum: 9 });
    const info = await json(await fetch(`${url}/info`));
    expect(info.endpoints[0].workers.restarts).toBe(1);
  });

  it("reports 503 on /health until every worker finished setup, then 200", async () => {
    const { server, url } = await start({ api: sumApi({ setupMs: 1500 }), workersPerDevice: 2 }, { waitForReady: false });
    const before = await fetch(`${url}/health`);
    expect(before.status).toBe(503);
    await server.ready;
    const after = await fetch(`${url}/health`);
    expect(after.status).toBe(200);
    expect(await after.text()).toBe("ok");
  });

  it("fails startup with the setup error instead of serving half-alive", async () => {
    const server = await createServer({ api: sumApi({ failSetup: true }), port: 0, log: false });
    await expect(server.listen()).rejects.toThrow(/setup\(\) failed in worker 0 \(cpu\): Error: weights file is corrupt/);
  });

  it("checks the API key on every route but /health", async () => {
    const { url } = await start({ api: sumApi(), apiKey: "s3cret" });
    expect((await post(`${url}/predict`, { numbers: [1] })).status).toBe(401);
    expect((await post(`${url}/predict`, { numbers: [1] }, { "x-api-key": "wrong" })).status).toBe(401);
    expect((await post(`${url}/predict`, { numbers: [1] }, { "x-api-key": "s3cret" })).status).toBe(200);
    expect((await post(`${url}/predict`, { numbers: [1] }, { authorization: "Bearer s3cret" })).status).toBe(200);
    expect((await fetch(`${url}/info`)).status).toBe(401);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it("rejects bodies over maxPayloadSize with 413 and bad input with 400, both with an error code", async () => {
    const { url } = await start({ api: sumApi(), maxPayloadSize: 1000 });
    const tooBig = await post(`${url}/predict`, { numbers: Array.from({ length: 500 }, () => 1) });
    expect(tooBig.status).toBe(413);
    expect((await json(tooBig)).error.code).toBe("payload_too_large");
    const bad = await post(`${url}/predict`, { numbers: "nope" });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error).toEqual({ code: "invalid_numbers", message: "`numbers` must be an array of numbers" });
    const notJson = await post(`${url}/predict`, "{ nope");
    expect(notJson.status).toBe(400);
  });

  it("reports a broken unbatch as a 500, with the clear reason in the server's log", async () => {
    const lines: string[] = [];
    const { url } = await start({ api: sumApi({ brokenUnbatch: true }), maxBatchSize: 4, log: (line) => lines.push(line) });
    const response = await post(`${url}/predict`, { numbers: [1] });
    expect(response.status).toBe(500);
    expect((await json(response)).error.code).toBe("predict_failed");
    expect(lines.join("\n")).toMatch(/predict_failed request \S+ \/predict: ContractError: unbatch\(\) returned 0 outputs for a batch of 1/);
  });

  it("streams NDJSON items before the generator finishes, and serves several APIs on one server", async () => {
    const { url } = await start({
      endpoints: [
        { api: countApi({ stepMs: 250 }), path: "/count", stream: true },
        { api: sumApi(), path: "/sum" },
      ],
    });
    expect(await json(await post(`${url}/sum`, { numbers: [1, 1] }))).toMatchObject({ sum: 2 });
    const started = performance.now();
    const response = await post(`${url}/count`, { n: 4 });
    expect(response.headers.get("content-type")).toContain("application/x-ndjson");
    const arrivals: { at: number; text: string }[] = [];
    const decoder = new TextDecoder();
    for await (const chunk of response.body!) arrivals.push({ at: performance.now() - started, text: decoder.decode(chunk) });
    const lines = arrivals.map((a) => a.text).join("").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toEqual([{ count: 1 }, { count: 2 }, { count: 3 }, { count: 4 }]);
    expect(arrivals.length).toBeGreaterThan(1);
    // the first item arrived while the generator still had ≥ 3 steps of 250 ms to go
    expect(arrivals[arrivals.length - 1].at - arrivals[0].at).toBeGreaterThan(400);
  });

  it("lets a new stream start on a busy worker when maxBatchesPerWorker > 1", async () => {
    const { url } = await start({ api: countApi({ stepMs: 100 }), stream: true, maxBatchesPerWorker: 2 });
    const firstLineAt = async (n: number) => {
      const response = await post(`${url}/predict`, { n });
      const reader = response.body!.getReader();
      await reader.read();
      const at = performance.now();
      while (!(await reader.read()).done);
      return { at, doneAt: performance.now() };
    };
    const long = firstLineAt(20); // about 2 s of generation
    await new Promise((r) => setTimeout(r, 300));
    const short = await firstLineAt(1);
    const longDone = (await long).doneAt;
    expect(short.at).toBeLessThan(longDone - 500); // it did not queue behind the running generation
  });

  it("finishes in-flight requests on close (graceful shutdown)", async () => {
    const { server, url } = await start({ api: sumApi({ delayMs: 300 }) });
    const inFlight = post(`${url}/predict`, { numbers: [20, 22] });
    await new Promise((r) => setTimeout(r, 50));
    await server.close();
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect((await json(response)).sum).toBe(42);
  });

  it("exposes Prometheus metrics and server info", async () => {
    const { url } = await start({ api: sumApi(), maxBatchSize: 4, workersPerDevice: 2 });
    await post(`${url}/predict`, { numbers: [1] });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    for (const name of [
      "batchwise_requests_total",
      "batchwise_request_duration_seconds_bucket",
      "batchwise_queue_depth",
      "batchwise_batch_size_bucket",
      "batchwise_workers",
      "batchwise_process_resident_memory_bytes",
    ]) {
      expect(metrics).toContain(name);
    }
    expect(metrics).toMatch(/batchwise_requests_total\{route="\/predict",status="200"\} 1/);
    const info = await json(await fetch(`${url}/info`));
    expect(info.endpoints[0]).toMatchObject({ path: "/predict", maxBatchSize: 4, accelerator: "cpu", model: { model: "sum" } });
    expect(info.endpoints[0].devices).toHaveLength(2);
  });
});
