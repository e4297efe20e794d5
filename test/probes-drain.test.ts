import { afterEach, describe, expect, it } from "vitest";
import { createServer, type BatchwiseServer } from "../src/index.js";
import { fixture } from "./helpers/paths.js";
import { sumApi } from "./fixtures/sum-api.js";

// The probes load balancers and Kubernetes poll (/livez, /readyz), the drain that lets them notice a replica going
// away, the API's own health() run where its model lives, and the per-endpoint load gauges an autoscaler reads.

let server: BatchwiseServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const get = async (url: string) => {
  const response = await fetch(url);
  return { status: response.status, text: await response.text() };
};
const sum = (url: string, numbers: number[]) =>
  fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ numbers }) });

describe("probes", () => {
  it("/readyz is 503 not_ready until every worker finished setup, /livez is 200 all along", async () => {
    server = await createServer({ api: sumApi({ setupMs: 1500 }), workersPerDevice: 2, port: 0, log: false });
    const url = await server.listen({ waitForReady: false });
    const early = await get(`${url}/readyz`);
    expect(early.status).toBe(503);
    expect(JSON.parse(early.text).error.code).toBe("not_ready");
    expect(await get(`${url}/livez`)).toEqual({ status: 200, text: "ok" });
    await server.ready;
    expect(await get(`${url}/readyz`)).toEqual({ status: 200, text: "ok" });
  });

  it("the API's health() runs in the worker, on the instance that ran setup", async () => {
    const api = { module: fixture("healthy-api.ts"), export: "HealthyAPI" };
    server = await createServer({ api, port: 0, log: false });
    const url = await server.listen();
    expect((await get(`${url}/readyz`)).status).toBe(200); // health() is true only where setup ran
    expect((await sum(url, [1])).status).toBe(200);
    await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sick: true }) });
    const sick = await get(`${url}/readyz`);
    expect(sick.status).toBe(503);
    expect(JSON.parse(sick.text).error.message).toMatch(/not healthy/);
    expect((await get(`${url}/health`)).status).toBe(503);
    expect((await get(`${url}/livez`)).status).toBe(200);
  });

  it("probes need no API key, everything else does", async () => {
    server = await createServer({ api: sumApi(), apiKey: "k", port: 0, log: false });
    const url = await server.listen();
    for (const path of ["/livez", "/readyz", "/health"]) expect((await get(`${url}${path}`)).status).toBe(200);
    expect((await get(`${url}/metrics`)).status).toBe(401);
  });
});

describe("drain", () => {
  it("turns not-ready at once, keeps serving during the drain period, then refuses and closes", async () => {
    server = await createServer({ api: sumApi({ delayMs: 50 }), port: 0, log: false, drainPeriod: 1.5 });
    const url = await server.listen();
    const drained = server.drain();
    const during = await get(`${url}/readyz`);
    expect(during.status).toBe(503);
    expect(JSON.parse(during.text).error.code).toBe("draining");
    // arriving after the drain began, still answered
    const late = await Promise.all([1, 2, 3].map((n) => sum(url, [n])));
    expect(late.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(late[0].headers.get("connection")).toBe("close");
    await drained;
    await expect(fetch(`${url}/livez`)).rejects.toThrow();
  });
});

describe("load gauges", () => {
  it("/metrics reports queue depth, in-flight requests, busy workers and saturation per endpoint", async () => {
    server = await createServer({ api: sumApi({ delayMs: 400 }), maxBatchSize: 2, port: 0, log: false });
    const url = await server.listen();
    const pending = Array.from({ length: 6 }, (_, i) => sum(url, [i]));
    await new Promise((r) => setTimeout(r, 200));
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const gauge = (name: string) => Number(new RegExp(`^${name}\\{endpoint="/predict"\\} (\\S+)$`, "m").exec(metrics)?.[1]);
    expect(gauge("batchwise_inflight_requests")).toBe(6);
    expect(gauge("batchwise_busy_workers")).toBe(1);
    expect(gauge("batchwise_queue_depth")).toBe(5); // the first request went to the idle worker alone
    expect(gauge("batchwise_saturation")).toBe(3); // (5 queued + 1 running) over 1 worker × batches of 2
    expect(gauge("batchwise_workers")).toBe(1);
    await Promise.all(pending);
    const after = await (await fetch(`${url}/metrics`)).text();
    expect(after).toMatch(/^batchwise_inflight_requests\{endpoint="\/predict"\} 0$/m);
  });
});
