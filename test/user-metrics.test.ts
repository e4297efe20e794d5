import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createServer, ModelAPI, OptionError, type BatchwiseServer, type LogEntry } from "../src/index.js";
import { recordApi } from "./fixtures/record-api.js";

// this.log() from any hook, on any thread, feeds the API's declared series in /metrics and every logger.

const dir = mkdtempSync(path.join(os.tmpdir(), "batchwise-user-metrics-"));
const servers: BatchwiseServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const post = (url: string, body: unknown) =>
  fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

describe("metrics from the model API", () => {
  it("values logged in the workers (two of them) and on the main thread land in one set of series, and reach the loggers", async () => {
    const entries: LogEntry[] = [];
    const server = await createServer({
      api: recordApi(path.join(dir, "seen.txt")),
      workersPerDevice: 2,
      maxBatchSize: 1,
      port: 0,
      log: false,
      loggers: [
        { log: (entry) => void entries.push(entry) },
        {
          log: () => {
            throw new Error("this logger is broken");
          },
        },
      ],
    });
    servers.push(server);
    const url = await server.listen();
    // four at once, each 150 ms long, one per batch: both workers take some
    const answers = await Promise.all(["a", "bb", "ccc", "dddd"].map((id) => post(url, { id, ms: 150 })));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);

    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/# TYPE batchwise_user_batch_items histogram/);
    expect(metrics).toMatch(/batchwise_user_batch_items_count\{endpoint="\/predict"\} 4/);
    expect(metrics).toMatch(/batchwise_user_batch_items_bucket\{le="1",endpoint="\/predict"\} 4/);
    expect(metrics).toMatch(/# HELP batchwise_user_batch_items items per batch, logged in predict/);
    expect(metrics).toMatch(/# TYPE batchwise_user_last_id_length gauge/);
    expect(metrics).toMatch(/batchwise_user_last_id_length\{stage="decode",endpoint="\/predict"\} [1-4]/);
    expect(metrics).not.toMatch(/from_worker_undeclared/); // not declared: loggers only
    expect(metrics).toMatch(/batchwise_callback_errors_total\{hook="logger"\} 12/);

    const byName = (name: string) => entries.filter((e) => e.name === name);
    expect(byName("batch_items")).toHaveLength(4);
    expect(byName("last_id_length").map((e) => e.value).sort()).toEqual([1, 2, 3, 4]);
    expect(byName("from_worker_undeclared")[0]).toEqual({ name: "from_worker_undeclared", value: 7, labels: { where: "predict" }, endpoint: "/predict" });
  });

  it("an in-process API's log() works the same; a bad declaration or logger is refused at startup", async () => {
    class Gauged extends ModelAPI<number, number, number, number> {
      override metrics = { doubled: { type: "gauge" as const } };
      predict(batch: number[]) {
        this.log("doubled", batch[0] * 2);
        return batch;
      }
    }
    const server = await createServer({ api: new Gauged(), workersPerDevice: 0, port: 0, log: false });
    servers.push(server);
    const url = await server.listen();
    await post(url, 21);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/batchwise_user_doubled\{endpoint="\/predict"\} 42/);

    class BadName extends Gauged {
      override metrics = { "not-a-name": { type: "gauge" as const } } as never;
    }
    await expect(createServer({ api: new BadName(), workersPerDevice: 0, log: false })).rejects.toThrow(/not a valid metric name/);
    await expect(createServer({ api: new Gauged(), workersPerDevice: 0, log: false, loggers: [{}] as never })).rejects.toThrow(OptionError);
  });

  it("an API that is not served logs into nothing", () => {
    class Alone extends ModelAPI {
      predict(batch: unknown[]) {
        return batch;
      }
    }
    expect(() => new Alone().log("anything", 1)).not.toThrow();
  });
});
