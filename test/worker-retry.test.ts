import { afterEach, describe, expect, it } from "vitest";
import { Pool } from "undici";
import { createServer, type BatchwiseServer, type ServerOptions } from "../src/server/server.js";
import { faultyApi, type Fault } from "./fixtures/faulty-api.js";

// No accepted request is lost when a worker dies under it, on an idempotent endpoint: the requests of the dead
// worker's batch run again, each alone, on a healthy worker; the input that killed it kills a worker a second time
// (alone, so it is proven) and is answered 500 poison_input, never run again. Non-idempotent endpoints keep failing
// the batch with 500 worker_crashed (test/faults-workers.test.ts).

const servers: BatchwiseServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(options: Partial<ServerOptions>) {
  const lines: string[] = [];
  const server = await createServer({
    api: faultyApi({ delayMs: 100 }),
    port: 0,
    log: (line) => lines.push(line),
    idempotent: true,
    maxBatchSize: 8,
    batchTimeout: 0.3,
    // a small heap so "oom" reaches the limit in well under a second
    resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
    ...options,
  });
  servers.push(server);
  return { server, url: await server.listen(), lines };
}

async function predict(url: string, body: unknown) {
  const response = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as { value?: number; error?: { code: string; message: string } } };
}

async function restarts(url: string): Promise<number> {
  const info = (await (await fetch(`${url}/info`)).json()) as { endpoints: { workers: { restarts: number } }[] };
  return info.endpoints[0].workers.restarts;
}

const KILLS: Fault[] = ["uncaught", "exit", "oom"];

describe("a request whose worker dies is retried once (idempotent endpoint)", () => {
  for (const fault of KILLS) {
    it(`${fault}: the batch-mates of the killing input get their 200s; the killer is answered 500 poison_input after two deaths`, async () => {
      const { url } = await start({ workersPerDevice: 2 });
      // one blocker per worker, so the next requests queue up and go as one batch
      const blockers = [predict(url, { value: -1 }), predict(url, { value: -2 })];
      await new Promise((r) => setTimeout(r, 60));
      const responses = await Promise.all([predict(url, { value: 1 }), predict(url, { value: 2, fault }), predict(url, { value: 3 })]);
      expect((await Promise.all(blockers)).map((r) => r.status)).toEqual([200, 200]);
      expect(responses[0]).toEqual({ status: 200, body: { value: 1 } });
      expect(responses[2]).toEqual({ status: 200, body: { value: 3 } });
      expect(responses[1].status).toBe(500);
      expect(responses[1].body.error?.code).toBe("poison_input");
      // killed a worker in its batch, then once more alone; never a third time
      expect(await restarts(url)).toBe(2);
      expect(await predict(url, { value: 4 })).toEqual({ status: 200, body: { value: 4 } });
      expect(await restarts(url)).toBe(2);
      // counted for operators: the dead batch's items ran again (3 or more: a blocker may have shared it), one was
      // refused after the second death
      const metrics = await (await fetch(`${url}/metrics`)).text();
      const count = (outcome: string) =>
        Number(new RegExp(`^batchwise_worker_retries_total\\{endpoint="/predict",outcome="${outcome}"\\} (\\d+)$`, "m").exec(metrics)?.[1]);
      expect(count("retried")).toBeGreaterThanOrEqual(3);
      expect(count("poison")).toBe(1);
    });
  }

  it("one worker: the retry waits for the replacement and succeeds there", async () => {
    const { url } = await start({ workersPerDevice: 1 });
    const blocker = predict(url, { value: -1 });
    await new Promise((r) => setTimeout(r, 60));
    const responses = await Promise.all([predict(url, { value: 1 }), predict(url, { value: 2, fault: "exit" }), predict(url, { value: 3 })]);
    expect((await blocker).status).toBe(200);
    expect(responses.map((r) => r.status)).toEqual([200, 500, 200]);
    expect(responses[1].body.error?.code).toBe("poison_input");
  });

  it("a non-idempotent endpoint does not retry: the whole batch fails with worker_crashed, the worker died once", async () => {
    const { url } = await start({ workersPerDevice: 1, idempotent: false });
    const blocker = predict(url, { value: -1 });
    await new Promise((r) => setTimeout(r, 60));
    const responses = await Promise.all([predict(url, { value: 1 }), predict(url, { value: 2, fault: "exit" })]);
    expect((await blocker).status).toBe(200);
    expect(responses.map((r) => r.body.error?.code)).toEqual(["worker_crashed", "worker_crashed"]);
    expect(await restarts(url)).toBe(1);
  });
});

/**
 * Closed-loop load of `concurrency` clients for `seconds`, plus one worker-killing request every `killEveryMs`
 * (rotating uncaught exception, process.exit and out-of-memory). Exported shape of the result for the log line.
 */
async function chaos(url: string, seconds: number, concurrency: number, killEveryMs: number) {
  const pool = new Pool(url, { connections: concurrency + 1 });
  const failures: string[] = [];
  let ok = 0;
  const killers: { fault: Fault; status: number; code?: string }[] = [];
  let stop = false;
  const post = async (body: unknown) => {
    const response = await pool.request({ path: "/predict", method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    return { status: response.statusCode, body: (await response.body.json()) as { value?: number; error?: { code: string } } };
  };
  const clients = Array.from({ length: concurrency }, async (_, c) => {
    for (let i = 0; !stop; i++) {
      const value = c * 1_000_000 + i;
      try {
        const r = await post({ value });
        if (r.status === 200 && r.body.value === value) ok++;
        else failures.push(`${r.status} ${JSON.stringify(r.body)}`);
      } catch (error) {
        failures.push(`connection: ${(error as Error).message}`);
      }
    }
  });
  const pending: Promise<void>[] = [];
  const timer = setInterval(() => {
    const fault = KILLS[killers.length % KILLS.length];
    const record = { fault, status: 0 } as (typeof killers)[number];
    killers.push(record);
    pending.push(
      post({ value: -1, fault }).then((r) => {
        record.status = r.status;
        record.code = r.body.error?.code;
      }),
    );
  }, killEveryMs);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(timer);
  stop = true;
  await Promise.all([...clients, ...pending]);
  await pool.close();
  return { ok, failures, killers };
}

describe("chaos: workers killed under load", () => {
  // CHAOS_SECONDS=60 runs the issue's full minute; CI runs 12 s (6 kills, 12 worker deaths)
  const seconds = Number(process.env.CHAOS_SECONDS ?? 12);
  it(`c=32 for ${seconds} s with a worker-killing request every 2 s: 0 failed requests, every killer quarantined`, async () => {
    const { url } = await start({ api: faultyApi({ delayMs: 10 }), workersPerDevice: 2, maxBatchSize: 8, batchTimeout: 0.01 });
    const { ok, failures, killers } = await chaos(url, seconds, 32, 2_000);
    const deaths = await restarts(url);
    console.log(
      `chaos ${seconds} s, c=32, 2 workers: ${ok} requests served, ${failures.length} failed; ${killers.length} killing requests ` +
        `(${killers.map((k) => `${k.fault}→${k.status} ${k.code}`).join(", ")}); ${deaths} worker deaths`,
    );
    expect(failures.slice(0, 5)).toEqual([]);
    expect(ok).toBeGreaterThan(0);
    expect(killers.length).toBeGreaterThanOrEqual(Math.floor(seconds / 2) - 1);
    for (const killer of killers) expect(killer).toMatchObject({ status: 500, code: "poison_input" });
    expect(deaths).toBe(2 * killers.length);
  }, 60_000 + seconds * 3_000);
});
