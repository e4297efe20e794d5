import { cpuFeatures } from "../src/runtime/cpu-features.js";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as bench from "../src/bench/index.js";
import { bucketDifference, histogramBuckets } from "../src/bench/load/metrics-text.js";
import { imagePayloads, runLoad } from "../src/bench/load/load.js";
import { notebookEnvironment, readPrevious } from "../src/bench/notebook.js";
import { resolvePrecision } from "../src/bench/servers/serving-config.js";
import { readTreeRssMiB } from "../src/bench/load/usage.js";
import { latencyPercentiles, logAxis125, ticks125 } from "../src/bench/report/figures/plotly.js";
import { createServer } from "../src/server/server.js";
import { noopApi } from "./fixtures/noop-api.js";
import { image, imagesDir } from "./helpers/paths.js";

describe("the batchwise/bench entry point", () => {
  it("exports the toolkit the notebooks use", () => {
    for (const name of ["runApiBench", "runBaseline", "runPipeline", "withServerProcess", "notebookEnvironment", "busyWarning", "getJson", "readPrevious", "displayFigure", "throughputVsConcurrency", "batchSizeHistogram", "histogramBuckets", "runPrecisionBench", "precisionFigure", "renderPng"]) {
      expect(typeof (bench as Record<string, unknown>)[name], name).toBe("function");
    }
  });
});

describe("request bodies in both forms", () => {
  it("json carries the file as base64 in {image}; binary is the file itself with its image content type", async () => {
    const files = [image("darknet_dog.jpg"), image("skimage_chelsea.png")];
    const [jsonJpeg] = await imagePayloads(files, "json");
    expect(jsonJpeg.contentType).toBe("application/json");
    expect(Buffer.from(JSON.parse(jsonJpeg.body.toString()).image, "base64").equals(readFileSync(files[0]))).toBe(true);
    const [jpeg, png] = await imagePayloads(files, "binary");
    expect(jpeg.contentType).toBe("image/jpeg");
    expect(png.contentType).toBe("image/png");
    expect(jpeg.body.equals(readFileSync(files[0]))).toBe(true);
    await expect(imagePayloads(files, "base64" as never)).rejects.toThrow(/json or binary/);
  });

  it("the load generator sends each payload with its own content type (plain Buffers as JSON)", async () => {
    const seen: { type: string | undefined; bytes: number }[] = [];
    const server = http.createServer((request, response) => {
      let bytes = 0;
      request.on("data", (chunk: Buffer) => (bytes += chunk.length));
      request.on("end", () => {
        seen.push({ type: request.headers["content-type"], bytes });
        response.end("{}");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const [jpeg] = await imagePayloads([image("darknet_dog.jpg")], "binary");
      const result = await runLoad({ url, path: "/predict", concurrency: 2, requests: 4, bodies: [jpeg, Buffer.from("{}")] });
      expect(result.errorCount).toBe(0);
      expect(seen.filter((s) => s.type === "image/jpeg").map((s) => s.bytes)).toEqual([jpeg.body.length, jpeg.body.length]);
      expect(seen.filter((s) => s.type === "application/json").map((s) => s.bytes)).toEqual([2, 2]);
    } finally {
      server.close();
    }
  });
});

describe("readTreeRssMiB", () => {
  it("adds the resident memory of child processes to their parent's", async () => {
    const child = spawn(process.execPath, ["-e", "const keep = Buffer.alloc(64 * 1024 * 1024, 1); setTimeout(() => keep, 30000)"], { stdio: "ignore" });
    try {
      // wait until the child has touched its 64 MiB
      let childMiB = 0;
      for (let i = 0; i < 100 && childMiB < 64; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
        childMiB = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024;
      }
      const own = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync("/proc/self/status", "utf8"))![1]) / 1024;
      expect(childMiB).toBeGreaterThanOrEqual(64);
      expect(readTreeRssMiB(process.pid)!).toBeGreaterThan(own + 60);
      expect(readTreeRssMiB(2 ** 22 + 12345)).toBeNull(); // no such process
    } finally {
      child.kill();
    }
  });
});

describe("histogramBuckets on a real server's /metrics", () => {
  let server: Awaited<ReturnType<typeof createServer>>;
  let url: string;
  beforeAll(async () => {
    server = await createServer({ api: noopApi(), maxBatchSize: 8, workersPerDevice: 1, port: 0, log: false });
    url = await server.listen();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("turns the cumulative batch-size buckets into per-bucket counts, and two readings into what happened between", async () => {
    const read = async () => histogramBuckets(await (await fetch(`${url}/metrics`)).text(), "batchwise_batch_size");
    const before = await read();
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(response.status).toBe(200);
    }
    const after = await read();
    expect(after.length).toBeGreaterThan(1);
    expect(after[after.length - 1].le).toBe("+Inf");
    const during = bucketDifference(after, before);
    // one request at a time: five batches of one, all in the first bucket
    expect(during.reduce((sum, b) => sum + b.count, 0)).toBe(5);
    expect(during.find((b) => b.le === "1")?.count).toBe(5);
    expect(histogramBuckets("", "batchwise_batch_size")).toEqual([]);
  });
});

describe("log axes", () => {
  it("ticks 1-2-5 per decade from the tick at or below the smallest value to the one at or above the largest", () => {
    expect(ticks125(3, 870)).toEqual([2, 5, 10, 20, 50, 100, 200, 500, 1000]);
    expect(ticks125(0.3, 0.4)).toEqual([0.2, 0.5]);
    expect(ticks125(10, 10)).toEqual([10]);
    expect(logAxis125([0, -1, null])).toEqual({ type: "log" });
    expect(logAxis125([12, 480]).ticktext).toEqual(["10", "20", "50", "100", "200", "500"]);
  });

  it("labels the latency chart's log axis at those ticks, covering every percentile drawn", () => {
    const figure = latencyPercentiles([{ name: "a", points: [{ concurrency: 1, p50: 4, p95: 9, p99: 30 }, { concurrency: 64, p50: 180, p95: 260, p99: 410 }] }]);
    const yaxis = figure.layout.yaxis as { type: string; tickvals: number[] };
    expect(yaxis.type).toBe("log");
    expect(yaxis.tickvals).toEqual([2, 5, 10, 20, 50, 100, 200, 500]);
  });
});

describe("notebook helpers", () => {
  it("find the models and photos, and save and read back results in the output folder", async () => {
    const outDir = await mkdtemp(path.join(os.tmpdir(), "nb-env-"));
    const env = notebookEnvironment({ outDir });
    expect(env.photos).toContain("darknet_dog.jpg");
    expect(path.resolve(env.imagesDir)).toBe(path.resolve(process.env.BATCHWISE_IMAGES_DIR ?? imagesDir));
    expect(process.env.BATCHWISE_MODELS_DIR).toBeTruthy();
    expect(env.readPrevious("01-serve.json")).toBeNull();
    const file = env.save("01-serve.json", { median: 12.5 });
    // An object is saved with the time and the load it was measured under (the sequence table reads them).
    const saved = JSON.parse(await readFile(file, "utf8"));
    expect(saved).toMatchObject({ median: 12.5, cores: env.cores });
    expect(typeof saved.loadAverage1m).toBe("number");
    expect(Number.isNaN(Date.parse(saved.savedAt))).toBe(false);
    expect(env.readPrevious("01-serve.json")).toEqual(saved);
    expect(readPrevious("01-serve.json", outDir)).toEqual(saved);
    expect(bench.busyWarning()).toMatch(/load \d+\.\d on \d+ cores/);
  });
});

describe("serving defaults for benchmarks", () => {
  it("resolves precision auto to what the classifier would serve on this CPU (int8 only with int8 dot products)", async () => {
    expect(await resolvePrecision("mobilenetv2-12", "auto")).toBe(cpuFeatures().int8DotProduct ? "int8" : "fp32");
    expect(await resolvePrecision("mobilenetv2-12", "fp16")).toBe("fp16");
  });
});
