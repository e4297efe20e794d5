import type { ApiSource, Device, ModelAPI, RequestContext } from "../../api/model-api.js";
import { availableCores } from "../../runtime/device.js";
import { loadApi } from "../../server/api-source.js";
import { Cancellation, requestContext } from "../../server/cancellation.js";
import { WorkerPool } from "../../server/worker-pool.js";
import { msSince, ratePerSecond, summarize } from "../load/stats.js";

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
  /** Intra-op threads per worker. Default: what the server gives each worker, cores ÷ workers (at least 1). */
  threadsPerWorker?: number;
  /**
   * Images through the timed run. Default 1024: fewer is not a limit — at ~200 images/s a 128-image run is 0.6 s, in
   * which the first batches' arena growth and the last batch's tail are a large share (the issue measured 174 img/s
   * with 128 images and 200 with 1,024).
   */
  images?: number;
  /** Untimed images first, so every worker has run full batches (arenas grown, kernels picked). Default: 2 batches per worker. */
  warmupImages?: number;
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
  const { workers, batchSize, threadsPerWorker } = pipelineShape(options);
  const devices: Device[] = Array.from({ length: workers }, () => ({ accelerator: "cpu", index: 0, threads: threadsPerWorker, id: "cpu" }));
  const api = await loadApi(options.source);
  const idleListeners: (() => void)[] = [];
  const pool = new WorkerPool({
    source: options.source,
    devices,
    setupContext: { maxBatchSize: batchSize },
    stream: false,
    onIdle: () => idleListeners.forEach((notify) => notify()),
    log: (line) => process.stderr.write(`pipeline: ${line}\n`),
  });
  await pool.start();
  try {
    const requestAt = (i: number) => options.requests[i % options.requests.length];
    const decodeTimes = await timeDecodes(api, requestAt, options.decodeSamples ?? 16);
    const run: PipelineRun = { api, pool, idleListeners, batchSize, workers, requestAt };
    await runBatches(run, options.warmupImages ?? 2 * batchSize * workers);
    const images = options.images ?? DEFAULT_PIPELINE_IMAGES;
    const start = process.hrtime.bigint();
    const failures = await runBatches(run, images);
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

/** Workers, batch size and threads per worker, checked; threads follow the server's rule unless given. */
function pipelineShape(options: PipelineOptions): { workers: number; batchSize: number; threadsPerWorker: number } {
  const workers = options.workers ?? 1;
  const batchSize = options.batchSize;
  if (!(Number.isInteger(workers) && workers >= 1)) throw new RangeError(`workers must be an integer ≥ 1, got ${workers}`);
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new RangeError(`batchSize must be an integer ≥ 1`);
  if (options.requests.length === 0) throw new RangeError("requests must not be empty");
  // The server's rule (src/server): cores ÷ workers threads each, so the pipeline runs what the server would run.
  const threadsPerWorker = options.threadsPerWorker ?? Math.max(1, Math.floor(availableCores() / workers));
  if (!(Number.isInteger(threadsPerWorker) && threadsPerWorker >= 1)) throw new RangeError(`threadsPerWorker must be an integer ≥ 1, got ${threadsPerWorker}`);
  return { workers, batchSize, threadsPerWorker };
}

/** decodeRequest of single images one at a time: the preprocessing cost alone, and a warm-up. */
async function timeDecodes(api: ModelAPI, requestAt: (i: number) => unknown, samples: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const start = process.hrtime.bigint();
    await api.decodeRequest(requestAt(i), requestContext(new Cancellation()));
    times.push(msSince(start));
  }
  return times;
}

interface PipelineRun {
  api: ModelAPI;
  pool: WorkerPool;
  /** Called whenever a worker becomes idle: the running batch loop's pump. */
  idleListeners: (() => void)[];
  batchSize: number;
  workers: number;
  requestAt: (i: number) => unknown;
}

/**
 * The server's flow without HTTP: decodes run ahead (several in flight, so libuv's pool stays busy) into a queue;
 * whenever a worker is idle it takes up to batchSize decoded items at once (the batcher's rule: dispatch as soon
 * as a worker is free, never wait for a full batch when one is idle). Decoding stops running ahead once a batch
 * per worker plus one is queued, so it cannot starve inference of CPU.
 */
async function runBatches(run: PipelineRun, total: number): Promise<number> {
  const { api, pool, idleListeners, batchSize, workers, requestAt } = run;
  if (total <= 0) return 0;
  type Item = { input: unknown; ctx: RequestContext; cancellation: Cancellation };
  const queue: Item[] = [];
  const queueLimit = batchSize * (workers + 1);
  let nextDecode = 0;
  let finished = 0;
  let failures = 0;
  let wakeDecoders: (() => void)[] = [];
  let done!: () => void;
  const allDone = new Promise<void>((resolve) => (done = resolve));
  const complete = (count: number) => {
    finished += count;
    if (finished === total) done();
  };
  const pump = () => {
    for (let runner = queue.length ? pool.take() : undefined; runner; runner = queue.length ? pool.take() : undefined) {
      const items = queue.splice(0, batchSize);
      const woken = wakeDecoders;
      wakeDecoders = [];
      woken.forEach((wake) => wake());
      void pool.run(runner, items.map((i) => i.input), items.map((i) => i.cancellation)).then(async (outcome) => {
        for (let k = 0; k < items.length; k++) {
          if (outcome.errors[k] !== undefined) failures++;
          else await api.encodeResponse(outcome.outputs[k], items[k].ctx);
        }
        complete(items.length);
      }, (error: unknown) => {
        // the runner died (a worker crash): these items failed; the pool replaces the worker
        failures += items.length;
        complete(items.length);
        process.stderr.write(`pipeline: batch failed: ${(error as Error).message}\n`);
      });
    }
  };
  idleListeners.push(pump);
  const decoder = async () => {
    while (nextDecode < total) {
      while (queue.length >= queueLimit) await new Promise<void>((wake) => wakeDecoders.push(wake));
      if (nextDecode >= total) break; // another decoder took the last index while this one waited
      const index = nextDecode++;
      const cancellation = new Cancellation();
      const ctx = requestContext(cancellation);
      try {
        queue.push({ input: await api.decodeRequest(requestAt(index), ctx), ctx, cancellation });
      } catch {
        failures++;
        complete(1);
      }
      pump();
    }
  };
  await Promise.all(Array.from({ length: DECODES_IN_FLIGHT }, decoder));
  await allDone;
  idleListeners.splice(idleListeners.indexOf(pump), 1);
  return failures;
}

export const DEFAULT_PIPELINE_IMAGES = 1024;

/** Decodes in flight at once: more than libuv's 4 pool threads, so the pool never idles between images. */
const DECODES_IN_FLIGHT = 16;
