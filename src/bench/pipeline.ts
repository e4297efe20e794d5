import type { ApiSource, Device, RequestContext } from "../api.js";
import { availableCores } from "../runtime/device.js";
import { loadApi } from "../server/api-loader.js";
import { WorkerPool, type Runner } from "../server/worker-pool.js";
import { msSince, ratePerSecond, summarize } from "./stats.js";

/**
 * `bench pipeline`: the in-process limit of the whole serving pipeline without HTTP. Exactly the server's split of
 * work: decodeRequest (sharp) and encodeResponse on this thread — sharp runs on libuv's pool, so decoding several
 * images overlaps — and batch → predict → unbatch on N worker threads, each with its own model and cores / N
 * intra-op threads (the server's WorkerPool itself). What the served number loses against this one is the cost of
 * HTTP, JSON and queueing.
 */

export interface PipelineOptions {
  /** The API to run, e.g. `imageClassifier({ precision: "int8" })`. */
  source: ApiSource;
  /** Request bodies as the API receives them after JSON parsing, e.g. `{ image: base64 }`; used round-robin. */
  requests: unknown[];
  batchSize: number;
  /** Worker threads (the server's workersPerDevice). Default 1. */
  workers?: number;
  /** Images through the timed run. Default 512. */
  images?: number;
  /** Images decoded one at a time first, to measure decode cost alone and warm everything up. Default 16. */
  decodeSamples?: number;
}

export interface PipelineReport {
  batchSize: number;
  workers: number;
  threadsPerWorker: number;
  images: number;
  wallSeconds: number;
  imagesPerSecond: number;
  /** Median decodeRequest time of one image alone on an idle machine (the preprocessing cost). */
  decodeMsPerImage: number;
  /** Images that failed decode or prediction (should be 0). */
  failures: number;
}

export async function runPipeline(options: PipelineOptions): Promise<PipelineReport> {
  const workers = options.workers ?? 1;
  const batchSize = options.batchSize;
  if (!(Number.isInteger(workers) && workers >= 1)) throw new RangeError(`workers must be an integer ≥ 1, got ${workers}`);
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new RangeError(`batchSize must be an integer ≥ 1`);
  if (options.requests.length === 0) throw new RangeError("requests must not be empty");
  const threadsPerWorker = Math.max(1, Math.floor(availableCores() / workers));
  const devices: Device[] = Array.from({ length: workers }, () => ({
    accelerator: "cpu",
    index: 0,
    threads: threadsPerWorker,
    id: "cpu",
  }));

  const api = await loadApi(options.source);
  const idleWaiters: (() => void)[] = [];
  const pool = new WorkerPool({
    source: options.source,
    devices,
    setupContext: { maxBatchSize: batchSize },
    stream: false,
    onIdle: () => idleWaiters.shift()?.(),
    log: (line) => process.stderr.write(`pipeline: ${line}\n`),
  });
  await pool.start();
  try {
    const requestAt = (i: number) => options.requests[i % options.requests.length];
    const decodeTimes: number[] = [];
    for (let i = 0; i < (options.decodeSamples ?? 16); i++) {
      const start = process.hrtime.bigint();
      await api.decodeRequest(requestAt(i), context());
      decodeTimes.push(msSince(start));
    }

    const takeRunner = async (): Promise<Runner> => {
      for (;;) {
        const runner = pool.take();
        if (runner) return runner;
        await new Promise<void>((resolve) => idleWaiters.push(resolve));
      }
    };
    const runBatches = async (total: number): Promise<number> => {
      let next = 0;
      let failures = 0;
      // One lane more than there are workers: while every worker runs a batch, the extra lane decodes the next.
      const lane = async () => {
        while (next < total) {
          const first = next;
          next = Math.min(total, next + batchSize);
          const ctxs = Array.from({ length: next - first }, context);
          const inputs = await Promise.all(ctxs.map((ctx, k) => api.decodeRequest(requestAt(first + k), ctx)));
          const runner = await takeRunner();
          const outcome = await pool.run(runner, inputs, ctxs.map((c) => c.signal));
          for (let k = 0; k < inputs.length; k++) {
            if (outcome.errors[k] !== undefined) failures++;
            else await api.encodeResponse(outcome.outputs[k], ctxs[k]);
          }
        }
      };
      await Promise.all(Array.from({ length: workers + 1 }, lane));
      return failures;
    };

    await runBatches(Math.min(batchSize * workers, 256)); // warm-up: each worker's first batch allocates its arenas
    const images = options.images ?? 512;
    const start = process.hrtime.bigint();
    const failures = await runBatches(images);
    const wallSeconds = msSince(start) / 1000;
    return {
      batchSize,
      workers,
      threadsPerWorker,
      images,
      wallSeconds,
      imagesPerSecond: ratePerSecond(images - failures, wallSeconds),
      decodeMsPerImage: summarize(decodeTimes).p50,
      failures,
    };
  } finally {
    await pool.close();
  }
}

function context(): RequestContext {
  return { signal: new AbortController().signal, headers: {}, state: {} };
}
