import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Precision } from "../../api/model-api.js";
import { imageClassifier } from "../../classifier/image-classifier.js";
import { Upload } from "../../api/upload.js";
import { decodeBase64Image, IMAGE_VALUES, normalizeInto, preprocessLevels } from "../../classifier/image-preprocess.js";
import { runApiBench, type ApiBenchLevel } from "./api-bench.js";
import { DEFAULT_CHUNK_SIZE, runChunked } from "../../runtime/chunked-run.js";
import { createSession, settingsFor } from "../../runtime/onnx.js";
import { DEFAULT_BASELINE_MODEL, modelFile } from "./baseline.js";
import { imagePayloads, type BodyForm, type LoadResult, type RequestPayload } from "../load/load.js";
import { HttpConnection, requestHead } from "../load/http-connection.js";
import { runPipeline, type PipelineReport } from "./pipeline.js";
import type { ChildServerConfig } from "../servers/serve-child.js";
import { startServerProcess, withServerProcess, type ServerProcess } from "../servers/server-process.js";
import { classifierServingConfig, resolvePrecision, type ClassifierServingConfig } from "../servers/serving-config.js";
import { msSince, summarize } from "../load/stats.js";

/**
 * The classifier path's performance figures, each measured on ONE photo (the seed's 768×576 JPEG by default) so they
 * compare with the reference LitServe numbers, all for `npm start`'s configuration and in one run: preprocessing
 * cost, the model's cost per image, the in-process pipeline limit, the served throughput at c=64 with base64 JSON
 * and raw binary bodies (rounds alternating on one server) with the server's resident memory, and the lone-request
 * latency with batching on vs off.
 */
export interface PerformanceReport {
  image: string;
  /** The served configuration (npm start's defaults), with the precision `auto` resolved to. */
  config: ClassifierServingConfig & { resolvedPrecision: Precision };
  /** JPEG bytes → normalised NCHW float32, one image at a time on one core: median ms (what a binary upload costs). */
  preprocessMs: number;
  /** The same from base64 (what a JSON upload costs: the base64 decode added). */
  preprocessBase64Ms: number;
  /**
   * The model alone on ONE thread for a batch of 64 (random input) as a CPU worker runs it: in chunks of
   * {@link DEFAULT_CHUNK_SIZE} (src/runtime/chunked-run.ts). Median time ÷ 64.
   */
  modelMsPerImage: number;
  /** The same batch as one onnxruntime run of 64 (what the seed's raw-throughput table measures), for comparison. */
  modelOneRunMsPerImage: number;
  /** The in-process limit for this configuration (base64 JSON requests, as the served JSON figure). */
  pipeline: PipelineReport;
  pipelineImagesPerSecond: number;
  /** The same limit for the JPEG's bytes as the request (what a raw image/jpeg body reaches decodeRequest as). */
  pipelineBinary?: PipelineReport;
  /** Served at c=64 with base64 JSON bodies: the median round. */
  served: LoadResult;
  /** Served at c=64 with the JPEG as the raw body (`image/jpeg`): the median round. */
  servedBinary: LoadResult | null;
  /** Every round at c=64, in the order run (json, binary, json, binary…). */
  rounds: { body: BodyForm; requestsPerSecond: number; errorCount: number; serverRssMiB: number | null; mainThreadCpuMicrosPerRequest?: number | null }[];
  /**
   * The server's main thread's CPU per image at c=64, µs, median over the rounds of each body form (null where /proc
   * could not be read). Raw ÷ base64 compares two bodies on the same server in one run: a ratio for the code.
   */
  mainThreadMicrosPerImage?: { json: number | null; binary: number | null };
  /** Peak resident memory of the server's process tree over all c=64 rounds, MiB. */
  serverRssMiB: number | null;
  /** c=1, requests alternating between two servers (batching off, batching on) so both see the same machine. */
  lone: { batchingOffP50Ms: number; batchingOnP50Ms: number; requestsEach: number };
}

export interface PerformanceOptions {
  quick?: boolean;
  /** Default ../shared/images/darknet_dog.jpg (BATCHWISE_IMAGES_DIR honoured). */
  image: string;
  log?: (line: string) => void;
  /** Overrides of the mode's counts (smaller for a smoke test; the defaults are what the targets need). */
  counts?: Partial<{ preprocessRuns: number; modelRuns: number; pipelineImages: number; requestsPerRound: number; roundsEach: number; loneRequests: number }>;
}

/** c=64: the seed's top concurrency level, where the targets are set. */
const CONCURRENCY = 64;

export async function measurePerformance(options: PerformanceOptions): Promise<PerformanceReport> {
  const quick = options.quick ?? false;
  const log = options.log ?? (() => {});
  const counts = options.counts ?? {};
  const config = classifierServingConfig();
  const { maxBatchSize, precision, workers, threadsPerWorker } = config;
  const resolvedPrecision = await resolvePrecision(DEFAULT_BASELINE_MODEL, precision);
  const source = imageClassifier({ precision });
  const bytes = await readFile(options.image);

  log(`performance · preprocessing ${path.basename(options.image)}, one image at a time`);
  const [preprocessMs, preprocessBase64Ms] = await preprocessMsPerImage(bytes, counts.preprocessRuns ?? (quick ? 100 : 300));

  log(`performance · model alone: a batch of 64 on 1 thread, ${resolvedPrecision}, in chunks of ${DEFAULT_CHUNK_SIZE} (as a worker runs it) and as one run`);
  const [modelMsPerImage, modelOneRunMsPerImage] = await modelMsPerImageAtBatch64(resolvedPrecision, counts.modelRuns ?? (quick ? 8 : 15));

  // The limit must be a limit: warm-up plus 1,024 images in quick mode too (fewer read low, see ./pipeline.ts).
  log(`performance · pipeline limit (base64 JSON, then raw bytes): batch ${maxBatchSize}, ${workers} worker(s) × ${threadsPerWorker} thread(s), ${precision}`);
  const pipelineOf = (request: unknown) =>
    runPipeline({ source, requests: [request], batchSize: maxBatchSize, workers, threadsPerWorker, images: counts.pipelineImages ?? (quick ? 1024 : 2048) });
  const pipeline = await pipelineOf({ image: bytes.toString("base64") });
  const pipelineBinary = await pipelineOf(new Upload(bytes, "image/jpeg"));

  const payloads: Record<BodyForm, RequestPayload[]> = {
    json: await imagePayloads([options.image], "json"),
    binary: await imagePayloads([options.image], "binary"),
  };
  const serverOptions = { api: source, maxBatchSize, batchTimeout: config.batchTimeout, workersPerDevice: workers, threadsPerWorker };
  const roundsEach = counts.roundsEach ?? (quick ? 2 : 3);
  log(`performance · served at c=${CONCURRENCY}: ${roundsEach} rounds each of base64 JSON and binary bodies, alternating`);
  const levels = await servedRounds(serverOptions, payloads, roundsEach, counts.requestsPerRound ?? (quick ? 512 : 1024), log);

  log("performance · lone request, batching off vs on, interleaved");
  const requestsEach = counts.loneRequests ?? (quick ? 100 : 400);
  const [offMs, onMs] = await loneLatencies(serverOptions, payloads.json[0].body, requestsEach);
  const rssValues = levels.map((l) => l.level.usage.serverRssMiB).filter((v): v is number => typeof v === "number");
  return {
    image: options.image,
    config: { ...config, resolvedPrecision },
    preprocessMs,
    preprocessBase64Ms,
    modelMsPerImage,
    modelOneRunMsPerImage,
    pipeline,
    pipelineImagesPerSecond: pipeline.imagesPerSecond,
    pipelineBinary,
    served: medianRound(levels, "json")!,
    servedBinary: medianRound(levels, "binary"),
    rounds: levels.map(({ body, level }) => ({
      body,
      requestsPerSecond: level.requestsPerSecond,
      errorCount: level.errorCount,
      serverRssMiB: level.usage.serverRssMiB ?? null,
      mainThreadCpuMicrosPerRequest: level.usage.mainThreadCpuMicrosPerRequest ?? null,
    })),
    mainThreadMicrosPerImage: { json: medianMainThread(levels, "json"), binary: medianMainThread(levels, "binary") },
    serverRssMiB: rssValues.length ? Math.max(...rssValues) : null,
    lone: { batchingOffP50Ms: summarize(offMs).p50, batchingOnP50Ms: summarize(onMs).p50, requestsEach },
  };
}

type ServerOptions = Extract<ChildServerConfig, { kind: "batchwise" }>["options"];
type Round = { body: BodyForm; level: ApiBenchLevel };

/**
 * What the server does per image: 8-bit planes on the libuv pool, then normalised into the worker's model input —
 * from the JPEG's bytes and from base64, interleaved. Median ms each.
 */
async function preprocessMsPerImage(bytes: Buffer, runs: number): Promise<number[]> {
  const base64 = bytes.toString("base64");
  const modelInput = new Float32Array(IMAGE_VALUES);
  return interleavedMedianMs(
    [
      async () => normalizeInto(await preprocessLevels(bytes), modelInput),
      async () => normalizeInto(await preprocessLevels(decodeBase64Image(base64)), modelInput),
    ],
    runs,
  );
}

/** Rounds at c=64 on one server, alternating base64 JSON and binary bodies, so drifting load hits both alike. */
function servedRounds(serverOptions: ServerOptions, payloads: Record<BodyForm, RequestPayload[]>, roundsEach: number, requests: number, log: (line: string) => void): Promise<Round[]> {
  return withServerProcess({ kind: "batchwise", options: serverOptions }, async (server) => {
    const done: Round[] = [];
    for (let round = 0; round < roundsEach; round++) {
      for (const body of ["json", "binary"] as const) {
        const report = await runApiBench({
          url: server.url,
          concurrency: [CONCURRENCY],
          requests,
          bodies: payloads[body],
          serverPid: server.pid,
          warmupRequests: round === 0 ? 2 * CONCURRENCY : CONCURRENCY,
        });
        const level = report.levels[0];
        done.push({ body, level });
        log(`performance · served c=${CONCURRENCY} ${body}: ${level.requestsPerSecond.toFixed(1)} img/s, RSS ${level.usage.serverRssMiB?.toFixed(0) ?? "n/a"} MiB` + (level.errorCount ? `, ${level.errorCount} errors (${level.firstError})` : ""));
      }
    }
    return done;
  });
}

function medianRound(levels: Round[], body: BodyForm): LoadResult | null {
  const of = levels.filter((l) => l.body === body).map((l) => l.level).sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
  if (!of.length) return null;
  const { usage: _usage, ...result } = of[Math.floor((of.length - 1) / 2)];
  return result;
}

/** c=1 latencies on two servers, batching off and on, one request each in turn. */
async function loneLatencies(serverOptions: ServerOptions, body: Buffer, requestsEach: number): Promise<number[][]> {
  const off = await startServerProcess({ kind: "batchwise", options: { ...serverOptions, maxBatchSize: 1, batchTimeout: 0 } });
  try {
    const on = await startServerProcess({ kind: "batchwise", options: serverOptions });
    try {
      return await alternatingLatencies([off, on], body, requestsEach);
    } finally {
      await on.stop();
    }
  } finally {
    await off.stop();
  }
}

/**
 * ms per image for a batch of 64 random images on a one-thread session of the served model file: chunked as a CPU
 * worker runs it, and as one run. Interleaved, after two untimed batches each.
 */
async function modelMsPerImageAtBatch64(precision: Precision, runs: number): Promise<number[]> {
  const session = await createSession(await modelFile(DEFAULT_BASELINE_MODEL, precision), settingsFor({ accelerator: "cpu", index: 0, threads: 1, id: "cpu" }));
  try {
    const images = Array.from({ length: 64 }, () => Float32Array.from({ length: IMAGE_VALUES }, () => Math.random() * 4 - 2));
    const batchOf = (chunkSize: number) => () => runChunked(session, images, [3, 224, 224], chunkSize);
    const medians = await interleavedMedianMs([batchOf(DEFAULT_CHUNK_SIZE), batchOf(Infinity)], runs, 2);
    return medians.map((ms) => ms / 64);
  } finally {
    await session.release();
  }
}

function medianMainThread(levels: Round[], body: BodyForm): number | null {
  const values = levels.filter((l) => l.body === body).map((l) => l.level.usage.mainThreadCpuMicrosPerRequest).filter((v): v is number => typeof v === "number");
  return values.length ? summarize(values).p50 : null;
}

/** Median ms of each piece of work, taking turns so that drifting machine load hits each the same. */
async function interleavedMedianMs(works: Array<() => Promise<unknown>>, runs: number, warmupRuns = 10): Promise<number[]> {
  for (let i = 0; i < warmupRuns; i++) for (const work of works) await work();
  const times = works.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    for (const [w, work] of works.entries()) {
      const start = process.hrtime.bigint();
      await work();
      times[w].push(msSince(start));
    }
  }
  return times.map((t) => summarize(t).p50);
}

/** One request at a time, alternating between the servers, so drifting machine load hits each the same. */
async function alternatingLatencies(servers: ServerProcess[], body: Buffer, requestsEach: number): Promise<number[][]> {
  const connections = servers.map((s) => new HttpConnection(new URL(s.url), 60_000));
  const heads = servers.map((s) => requestHead("POST", new URL(s.url), "/predict", { "content-type": "application/json" }, body.length));
  const latencies = servers.map(() => [] as number[]);
  try {
    for (let i = -5; i < requestsEach; i++) {
      for (let s = 0; s < servers.length; s++) {
        const start = process.hrtime.bigint();
        const response = await connections[s].request(heads[s], body);
        if (response.status !== 200) throw new Error(`lone request got ${response.status}`);
        if (i >= 0) latencies[s].push(msSince(start)); // the first 5 rounds warm up
      }
    }
  } finally {
    for (const connection of connections) connection.close();
  }
  return latencies;
}
