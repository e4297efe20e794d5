import { writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import type { PrecisionChoice } from "../api.js";
import { formatApiTable, runApiBench, DEFAULT_CONCURRENCY } from "./runs/api-bench.js";
import { DEFAULT_BASELINE_MODEL, DEFAULT_BATCH_SIZES, runBaseline } from "./runs/baseline.js";
import { BODY_FORMS, defaultImagesDir, imageBodies, type BodyForm } from "./load/load.js";
import { machineInfo, machineSummary } from "./load/machine.js";
import { formatOverheadTable, runOverhead } from "./runs/overhead.js";
import { classifierServingConfig, resolvePrecision } from "./servers/serving-config.js";
import { cell, formatTable } from "./report/table.js";
import { cliFlags, readCliOptions } from "../server/options.js";
import { describeCpu } from "../runtime/cpu-features.js";

const SHARED_FLAGS = Object.fromEntries(
  Object.entries(cliFlags(["endpoint", "server", "app"])).filter(([flag]) =>
    ["precision", "max-batch-size", "workers", "workers-per-device", "threads-per-worker"].includes(flag),
  ),
);

/**
 * `batchwise bench <kind> …`: each kind is one benchmark module; this file only parses flags, runs it, prints its
 * table, and writes `--json FILE` when asked. Modules load on use (the suite pulls in sharp and the classifier).
 */

const usage = `Usage: batchwise bench <kind> [options] [--json FILE]
  Defaults are what \`npm start\` serves (precision auto = int8 on this CPU, one single-threaded worker per core,
  batching 64 / 0.01 s); flags change one thing at a time.
  baseline  [--precision auto|fp32|fp16|bf16|int8] [--threads N] [--batch-sizes 1,8,32,64] [--runs N]
            raw model throughput of ONE worker's session: onnxruntime on random input, no HTTP, no decoding
  precision [--quick] [--threads N] [--batch-sizes …] [--runs N] [--concurrency 64] [--requests N] [--images DIR]
            every precision: runs here?, file size, session RSS, raw and served throughput, agreement with fp32
  pipeline  [--batch-size N] [--image FILE…] [--workers N] [--threads N] [--precision P] [--images 1024]
            decode + batched inference on N worker threads + encode, in-process (no HTTP): the served limit
            (default image: darknet_dog.jpg of the sample photos, sent as base64 JSON)
  api       [--url http://127.0.0.1:8000] [--path /predict] [--concurrency 1,8,32,64] [--requests 128]
            [--waves N] [--body json|binary] [--images DIR] [--server-pid PID]
            a running server, closed-loop load, CPU/GPU/RSS sampled; --waves: at least N × concurrency
            requests per level; --body binary sends each photo as its raw bytes (content-type image/jpeg …)
  overhead  [--concurrency …] [--requests N] [--body-bytes N] [--max-batch-size N] [--workers N]
            no-op model vs bare fastify (default: batching off, 1 worker)
  main-thread [--concurrency 64] [--requests 20000] [--max-batch-size 64] [--workers 1] [--body-bytes 1024]
            the server main thread's CPU µs per request (no-op model), split by piece from a CPU profile
  suite     [--quick] [--images DIR] [--out reports]   the whole sequence + report.html (BATCHWISE_QUICK=1 = --quick)
  llm       [--url URL] [--model ID] [--concurrency 1,4,8] [--requests N] [--rounds 3] [--max-tokens N]   chat model tokens/s
  stream    [--concurrency 1,8,32] [--tokens N] [--requests N]   SSE streaming overhead, no model`;

/** Kinds whose modules parse their own flags (and --json): the whole argv goes to them. */
const selfParsing: Record<string, () => Promise<(argv: string[]) => Promise<unknown>>> = {
  llm: async () => (await import("./runs/llm.js")).runBenchLlmCli,
  stream: async () => (await import("./runs/stream-overhead.js")).runStreamBenchCli,
};

type Flags = Record<string, string | boolean | string[] | undefined>;

const kinds: Record<string, (flags: Flags) => Promise<unknown>> = {
  async baseline(flags) {
    const serving = classifierServingConfig();
    const precision = await resolvePrecision(DEFAULT_BASELINE_MODEL, precisionFlag(flags.precision) ?? serving.precision);
    const report = await runBaseline({
      precision,
      threads: intFlag(flags.threads) ?? serving.threadsPerWorker,
      batchSizes: listFlag(flags["batch-sizes"]) ?? DEFAULT_BATCH_SIZES,
      runs: intFlag(flags.runs),
    });
    console.log(`${report.model} · ${report.precision} · ${report.threads} thread(s) (npm start: ${serving.workers} worker(s) × ${serving.threadsPerWorker} thread(s), ${serving.precision})`);
    console.log(baselineTable(report.results));
    return report;
  },

  async precision(flags) {
    const { runPrecisionBench, formatPrecisionTable } = await import("./runs/precision.js");
    const report = await runPrecisionBench({
      quick: flags.quick === true || process.env.BATCHWISE_QUICK === "1",
      threads: intFlag(flags.threads),
      batchSizes: listFlag(flags["batch-sizes"]),
      runs: intFlag(flags.runs),
      concurrency: intFlag(flags.concurrency),
      requests: intFlag(flags.requests),
      imagesDir: flags.images as string | undefined,
    });
    console.log(`\n${report.model} · ${report.settings.threads} thread(s)${report.quick ? " · quick" : ""}`);
    console.log(formatPrecisionTable(report));
    return report;
  },

  async pipeline(flags) {
    const serving = classifierServingConfig();
    const batchSize = intFlag(flags["batch-size"]) ?? serving.maxBatchSize;
    const images = (flags.image as string[] | undefined) ?? [path.join(defaultImagesDir(), "darknet_dog.jpg")];
    const precision = precisionFlag(flags.precision) ?? serving.precision;
    const workers = intFlag(flags.workers) ?? serving.workers;
    const { imageClassifier } = await import("../apps/image-classifier.js");
    const requests = (await imageBodies(images)).map((b) => JSON.parse(b.toString()) as unknown);
    const { runPipeline } = await import("./runs/pipeline.js");
    const report = await runPipeline({
      source: imageClassifier({ precision }),
      requests,
      batchSize,
      workers,
      // the server's rule unless told: cores ÷ workers
      threadsPerWorker: intFlag(flags.threads) ?? (flags.workers === undefined ? serving.threadsPerWorker : undefined),
      images: intFlag(flags.images),
    });
    console.log(`${images.map((f) => path.basename(f)).join(", ")} · precision ${precision}`);
    console.log(
      formatTable(
        ["batch size", "workers × threads", "images", "images/s", "decode ms/img", "failures"],
        [[String(report.batchSize), `${report.workers} × ${report.threadsPerWorker}`, String(report.images), cell(report.imagesPerSecond), cell(report.decodeMsPerImage, 2), String(report.failures)]],
      ),
    );
    return { ...report, precision };
  },

  async api(flags) {
    const report = await runApiBench({
      url: (flags.url as string | undefined) ?? "http://127.0.0.1:8000",
      path: (flags.path as string | undefined) ?? "/predict",
      concurrency: listFlag(flags.concurrency) ?? DEFAULT_CONCURRENCY,
      requests: intFlag(flags.requests) ?? 128,
      waves: intFlag(flags.waves),
      body: bodyFlag(flags.body),
      imagesDir: (flags.images as string | undefined) ?? defaultImagesDir(),
      serverPid: intFlag(flags["server-pid"]),
      onLevel: (l) => process.stderr.write(`c=${l.concurrency}: ${cell(l.requestsPerSecond)} req/s\n`),
    });
    console.log(formatApiTable(report));
    return report;
  },

  async overhead(flags) {
    const report = await runOverhead({
      concurrency: listFlag(flags.concurrency) ?? DEFAULT_CONCURRENCY,
      requests: intFlag(flags.requests),
      bodyBytes: intFlag(flags["body-bytes"]),
      batchwise: { maxBatchSize: intFlag(flags["max-batch-size"]), workersPerDevice: intFlag(flags.workers) },
      onLevel: (server, l) => process.stderr.write(`${server} c=${l.concurrency}: ${cell(l.requestsPerSecond)} req/s\n`),
    });
    console.log(formatOverheadTable(report));
    return report;
  },

  async "main-thread"(flags) {
    const { runMainThreadBench, formatMainThreadTable } = await import("./runs/main-thread.js");
    const maxBatchSize = intFlag(flags["max-batch-size"]) ?? 64;
    const report = await runMainThreadBench({
      concurrency: intFlag(flags.concurrency),
      requests: intFlag(flags.requests),
      bodyBytes: intFlag(flags["body-bytes"]),
      batchwise: { maxBatchSize, batchTimeout: maxBatchSize > 1 ? 0.01 : 0, workersPerDevice: intFlag(flags.workers) ?? 1 },
    });
    console.log(formatMainThreadTable(report));
    return report;
  },

  async suite(flags) {
    const { runSuite, formatSuiteSummary } = await import("./runs/suite.js");
    const quick = flags.quick === true || process.env.BATCHWISE_QUICK === "1";
    const { results, reportDir } = await runSuite({
      quick,
      imagesDir: (flags.images as string | undefined) ?? defaultImagesDir(),
      outDir: (flags.out as string | undefined) ?? "reports",
    });
    console.log(`\n${formatSuiteSummary(results)}\n\nreport: ${path.join(reportDir, "report.html")}`);
    return results;
  },
};

export async function runBenchCli(argv: string[]): Promise<unknown> {
  const [kind, ...rest] = argv;
  // Every figure below is read with the machine it came from: the CPU line heads each command's tables.
  const cpuLine = () => console.log(`CPU: ${describeCpu()}`);
  if (kind && selfParsing[kind] && !rest.includes("--help")) {
    cpuLine();
    return (await selfParsing[kind]())(rest);
  }
  const run = kind ? kinds[kind] : undefined;
  if (!run || rest.includes("--help")) {
    console.log(usage);
    if (!run && kind && kind !== "--help") throw new UsageError(`unknown bench kind "${kind}"`);
    return undefined;
  }
  const { values } = parseArgs({
    args: rest,
    strict: true,
    options: {
      // the flags a benchmark shares with `batchwise serve` (--precision, --max-batch-size, --workers,
      // --threads-per-worker) are the server's own declarations, so they mean and check the same
      ...SHARED_FLAGS,
      json: { type: "string" },
      threads: { type: "string" },
      "batch-sizes": { type: "string" },
      runs: { type: "string" },
      "batch-size": { type: "string" },
      image: { type: "string", multiple: true },
      images: { type: "string" },
      url: { type: "string" },
      path: { type: "string" },
      concurrency: { type: "string" },
      requests: { type: "string" },
      "server-pid": { type: "string" },
      "body-bytes": { type: "string" },
      body: { type: "string" },
      waves: { type: "string" },
      quick: { type: "boolean" },
      out: { type: "string" },
    },
  });
  console.error(`bench ${kind} on ${machineSummary(machineInfo())}`);
  cpuLine();
  const shared = readCliOptions(values as Record<string, string | boolean | undefined>, ["endpoint", "server", "app"], {});
  const result = await run({
    ...values,
    precision: shared.precision as string | undefined,
    "max-batch-size": shared.maxBatchSize === undefined ? undefined : String(shared.maxBatchSize),
    workers: shared.workersPerDevice === undefined ? undefined : String(shared.workersPerDevice),
    threads: values.threads ?? (shared.threadsPerWorker === undefined ? undefined : String(shared.threadsPerWorker)),
  });
  if (typeof values.json === "string") {
    await writeFile(values.json, JSON.stringify(result, null, 2));
    console.error(`wrote ${values.json}`);
  }
  return result;
}

class UsageError extends Error {}

function baselineTable(results: Awaited<ReturnType<typeof runBaseline>>["results"]): string {
  return formatTable(
    ["batch size", "images/s", "median ms", "min ms", "max ms", "IQR ms", "runs"],
    results.map((r) => [String(r.batchSize), cell(r.imagesPerSecond), cell(r.medianMs, 2), cell(r.minMs, 2), cell(r.maxMs, 2), cell(r.iqrMs, 2), String(r.runs)]),
  );
}

function intFlag(value: Flags[string]): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`expected a whole number, got "${value}"`);
  return n;
}

function listFlag(value: Flags[string]): number[] | undefined {
  if (value === undefined) return undefined;
  return String(value)
    .split(",")
    .map((part) => intFlag(part.trim())!);
}

/** undefined when the flag is absent: the caller falls back to what npm start serves (checked by readCliOptions). */
function precisionFlag(value: Flags[string]): PrecisionChoice | undefined {
  return value === undefined ? undefined : (value as PrecisionChoice);
}

function bodyFlag(value: Flags[string]): BodyForm | undefined {
  if (value === undefined) return undefined;
  if (!BODY_FORMS.includes(value as BodyForm)) throw new UsageError(`--body must be json or binary, got "${value}"`);
  return value as BodyForm;
}
