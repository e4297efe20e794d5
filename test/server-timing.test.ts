import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createServer, type BatchwiseServer, type ServerOptions } from "../src/index.js";
import { countApi } from "./fixtures/count-api.js";
import { recordApi } from "./fixtures/record-api.js";

// Every response says where its time went (W3C Server-Timing), measured where each stage ran.

const dir = mkdtempSync(path.join(os.tmpdir(), "batchwise-timing-"));
const servers: BatchwiseServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function start(options: Partial<ServerOptions>) {
  const server = await createServer({ port: 0, log: false, workersPerDevice: 1, ...options } as ServerOptions);
  servers.push(server);
  return server.listen();
}

/** name → { dur, desc } of a Server-Timing header. */
function parse(header: string | null): Record<string, { dur: number; desc?: string }> {
  const entries: Record<string, { dur: number; desc?: string }> = {};
  for (const metric of (header ?? "").split(/,\s*/).filter(Boolean)) {
    const [name, ...params] = metric.split(";");
    const dur = Number(params.find((p) => p.startsWith("dur="))?.slice(4));
    const desc = params.find((p) => p.startsWith("desc="))?.slice(5).replace(/"/g, "");
    entries[name] = desc === undefined ? { dur } : { dur, desc };
  }
  return entries;
}

const post = (url: string, body: unknown, route = "/predict") =>
  fetch(`${url}${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

describe("Server-Timing", () => {
  it("a batched answer names decode, queue, predict (with its batch size), encode and total", async () => {
    const url = await start({ api: recordApi(path.join(dir, "a.txt")), maxBatchSize: 8, batchTimeout: 0.05 });
    const answers = await Promise.all(["a", "b", "c"].map((id) => post(url, { id, ms: 30 })));
    for (const answer of answers) {
      const { batch } = (await answer.json()) as { batch: number };
      const timing = parse(answer.headers.get("server-timing"));
      expect(Object.keys(timing)).toEqual(["decode", "queue", "predict", "encode", "total"]);
      expect(timing.predict.desc).toBe(`batch ${batch}`);
      expect(timing.predict.dur).toBeGreaterThanOrEqual(25); // the model slept 30 ms, measured in the worker
      expect(timing.total.dur).toBeGreaterThanOrEqual(timing.predict.dur);
    }
  });

  it("probes and errors carry it too; a stream's headers carry the time to its first output", async () => {
    const url = await start({ api: countApi({ stepMs: 5 }), stream: true });
    expect(parse((await fetch(`${url}/health`)).headers.get("server-timing"))).toHaveProperty("total");
    const refused = await post(url, { n: 0 });
    expect(refused.status).toBe(400);
    expect(parse(refused.headers.get("server-timing"))).toHaveProperty("total");
    const streamed = await post(url, { n: 3 });
    expect(await streamed.text()).toBe('{"count":1}\n{"count":2}\n{"count":3}\n');
    const timing = parse(streamed.headers.get("server-timing"));
    expect(Object.keys(timing)).toEqual(["decode", "queue", "predict", "encode", "total"]);
    expect(timing.predict.desc).toBe("batch 1");
  });

  it("serverTiming: false leaves it off everywhere", async () => {
    const url = await start({ api: recordApi(path.join(dir, "b.txt")), serverTiming: false });
    const answer = await post(url, { id: "x" });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("server-timing")).toBeNull();
    expect((await fetch(`${url}/info`)).headers.get("server-timing")).toBeNull();
  });
});
