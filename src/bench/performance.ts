import { readFile } from "node:fs/promises";
import path from "node:path";
import { Pool } from "undici";
import { CLASSIFIER_SERVING_DEFAULTS, imageClassifier } from "../apps/image-classifier.js";
import { preprocessBase64 } from "../apps/image-preprocess.js";
import { availableCores } from "../runtime/device.js";
import { imageBodies, runLoad, type LoadResult } from "./load.js";
import { runPipeline } from "./pipeline.js";
import { startServerProcess, withServerProcess, type ServerProcess } from "./server-process.js";
import { msSince, summarize } from "./stats.js";

/**
 * The classifier path's performance figures, each measured on ONE photo (the seed's 768×576 JPEG by default) so they
 * compare with the reference LitServe numbers: preprocessing cost, the in-process pipeline limit and the served
 * throughput of `npm start`'s configuration, and the lone-request latency with batching on vs off.
 */
export interface PerformanceReport {
  image: string;
  /** The served configuration (npm start's defaults). */
  config: { maxBatchSize: number; batchTimeout: number; workers: number; precision: string };
  /** base64 → normalised NCHW float32, one image at a time on one core: median ms. */
  preprocessMs: number;
  pipelineImagesPerSecond: number;
  /** Served at concurrency 64, real JPEG bodies. */
  served: LoadResult;
  /** c=1, requests alternating between two servers (batching off, batching on) so both see the same machine. */
  lone: { batchingOffP50Ms: number; batchingOnP50Ms: number; requestsEach: number };
}

export interface PerformanceOptions {
  quick?: boolean;
  /** Default ../shared/images/darknet_dog.jpg (BATCHWISE_IMAGES_DIR honoured). */
  image: string;
  log?: (line: string) => void;
}

export async function measurePerformance(options: PerformanceOptions): Promise<PerformanceReport> {
  const quick = options.quick ?? false;
  const log = options.log ?? (() => {});
  const workers = CLASSIFIER_SERVING_DEFAULTS.workers(availableCores());
  const { maxBatchSize, batchTimeout, precision } = CLASSIFIER_SERVING_DEFAULTS;
  const source = imageClassifier({ precision });
  const base64 = (await readFile(options.image)).toString("base64");

  log(`performance · preprocessing ${path.basename(options.image)}, one image at a time`);
  const preprocessMs = await medianPreprocessMs(base64, quick ? 100 : 300);

  log(`performance · pipeline limit: batch ${maxBatchSize}, ${workers} worker(s), ${precision}`);
  const pipeline = await runPipeline({ source, requests: [{ image: base64 }], batchSize: maxBatchSize, workers, images: quick ? 256 : 1024 });

  const [body] = await imageBodies([options.image]);
  const serverOptions = { api: source, maxBatchSize, batchTimeout, workersPerDevice: workers };
  log("performance · served at c=64");
  const served = await withServerProcess({ kind: "batchwise", options: serverOptions }, (server) =>
    runLoad({ url: server.url, path: "/predict", concurrency: 64, requests: quick ? 512 : 2048, bodies: [body], warmupRequests: 128 }),
  );

  log("performance · lone request, batching off vs on, interleaved");
  const requestsEach = quick ? 100 : 400;
  const off = await startServerProcess({ kind: "batchwise", options: { ...serverOptions, maxBatchSize: 1, batchTimeout: 0 } });
  try {
    const on = await startServerProcess({ kind: "batchwise", options: serverOptions });
    try {
      const [offMs, onMs] = await alternatingLatencies([off, on], body, requestsEach);
      return {
        image: options.image,
        config: { maxBatchSize, batchTimeout, workers, precision },
        preprocessMs,
        pipelineImagesPerSecond: pipeline.imagesPerSecond,
        served,
        lone: { batchingOffP50Ms: summarize(offMs).p50, batchingOnP50Ms: summarize(onMs).p50, requestsEach },
      };
    } finally {
      await on.stop();
    }
  } finally {
    await off.stop();
  }
}

async function medianPreprocessMs(base64: string, runs: number): Promise<number> {
  for (let i = 0; i < 10; i++) await preprocessBase64(base64);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await preprocessBase64(base64);
    times.push(msSince(start));
  }
  return summarize(times).p50;
}

/** One request at a time, alternating between the servers, so drifting machine load hits each the same. */
async function alternatingLatencies(servers: ServerProcess[], body: Buffer, requestsEach: number): Promise<number[][]> {
  const pools = servers.map((s) => new Pool(s.url, { connections: 1 }));
  const latencies = servers.map(() => [] as number[]);
  const headers = { "content-type": "application/json" };
  try {
    for (let i = -5; i < requestsEach; i++) {
      for (let s = 0; s < servers.length; s++) {
        const start = process.hrtime.bigint();
        const response = await pools[s].request({ path: "/predict", method: "POST", headers, body });
        await response.body.text();
        if (response.statusCode !== 200) throw new Error(`lone request got ${response.statusCode}`);
        if (i >= 0) latencies[s].push(msSince(start)); // the first 5 rounds warm up
      }
    }
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
  return latencies;
}
