import { writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Precision } from "../api.js";
import { formatApiTable, runApiBench, DEFAULT_CONCURRENCY } from "./api-bench.js";
import { DEFAULT_BATCH_SIZES, runBaseline } from "./baseline.js";
import { defaultImagesDir, imageBodies } from "./load.js";
import { machineInfo, machineSummary } from "./machine.js";
import { formatOverheadTable, runOverhead } from "./overhead.js";
import { cell, formatTable } from "./table.js";

/**
 * `batchwise bench <kind> …`: each kind is one benchmark module; this file only parses flags, runs it, prints its
 * table, and writes `--json FILE` when asked. Modules load on use (the suite pulls in sharp and the classifier).
 */

const usage = `Usage: batchwise bench <kind> [options] [--json FILE]
  baseline  [--precision fp32|fp16|bf16|int8] [--threads N] [--batch-sizes 1,8,32,64] [--runs N]
            raw model throughput: onnxruntime on random input, no HTTP, no decoding
  precision [--quick] [--threads N] [--batch-sizes …] [--runs N] [--concurrency 64] [--requests N] [--images DIR]
            every precision: runs here?, file size, session RSS, raw and served throughput, agreement with fp32
  pipeline  --batch-size N --image FILE [--image FILE…] [--workers N] [--precision P] [--images N]
            decode + batched inference on N worker threads + encode, in-process (no HTTP)
  api       [--url http://127.0.0.1:8000] [--path /predict] [--concurrency 1,8,32,64] [--requests 128]
            [--images DIR] [--server-pid PID]       a running server, closed-loop load, CPU/GPU sampled
  overhead  [--concurrency …] [--requests N] [--body-bytes N] [--max-batch-size N] [--workers N]
            no-op model vs bare fastify (default: batching off, 1 worker)
  suite     [--quick] [--images DIR] [--out reports]   the whole sequence + report.html (BATCHWISE_QUICK=1 = --quick)
  llm       [--url URL] [--model ID] [--concurrency 1,4,8] [--requests N] [--max-tokens N]   chat model tokens/s
  stream    [--concurrency 1,8,32] [--tokens N] [--requests N]   SSE streaming overhead, no model`;

/** Kinds whose modules parse their own flags (and --json): the whole argv goes to them. */
const selfParsing: Record<string, () => Promise<(argv: string[]) => Promise<unknown>>> = {
  llm: async () => (await import("./llm.js")).runBenchLlmCli,
  stream: async () => (await import("./stream-overhead.js")).runStreamBenchCli,
};

type Flags = Record<string, string | boolean | string[] | undefined>;

const kinds: Record<string, (flags: Flags) => Promise<unknown>> = {
  async baseline(flags) {
    const precision = precisionFlag(flags.precision);
    const report = await runBaseline({
      precision,
      threads: intFlag(flags.threads),
      batchSizes: listFlag(flags["batch-sizes"]) ?? DEFAULT_BATCH_SIZES,
      runs: intFlag(flags.runs),
    });
    console.log(`${report.model} · ${report.precision} · ${report.threads} thread(s)`);
    console.log(baselineTable(report.results));
    return report;
  },

  async precision(flags) {
    const { runPrecisionBench, formatPrecisionTable } = await import("./precision.js");
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
    const batchSize = intFlag(flags["batch-size"]);
    const images = flags.image as string[] | undefined;
    if (!batchSize || !images?.length) throw new UsageError("pipeline needs --batch-size N and --image FILE");
    const { imageClassifier } = await import("../apps/image-classifier.js");
    const requests = (await imageBodies(images)).map((b) => JSON.parse(b.toString()) as unknown);
    const { runPipeline } = await import("./pipeline.js");
    const report = await runPipeline({
      source: imageClassifier({ precision: precisionFlag(flags.precision) }),
      requests,
      batchSize,
      workers: intFlag(flags.workers) ?? 1,
      images: intFlag(flags.images),
    });
    console.log(
      formatTable(
        ["batch size", "workers × threads", "images", "images/s", "decode ms/img", "failures"],
        [[String(report.batchSize), `${report.workers} × ${report.threadsPerWorker}`, String(report.images), cell(report.imagesPerSecond), cell(report.decodeMsPerImage, 2), String(report.failures)]],
      ),
    );
    return report;
  },

  async api(flags) {
    const report = await runApiBench({
      url: (flags.url as string | undefined) ?? "http://127.0.0.1:8000",
      path: (flags.path as string | undefined) ?? "/predict",
      concurrency: listFlag(flags.concurrency) ?? DEFAULT_CONCURRENCY,
      requests: intFlag(flags.requests) ?? 128,
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

  async suite(flags) {
    const { runSuite, formatSuiteSummary } = await import("./suite.js");
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
  if (kind && selfParsing[kind] && !rest.includes("--help")) return (await selfParsing[kind]())(rest);
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
      json: { type: "string" },
      precision: { type: "string" },
      threads: { type: "string" },
      "batch-sizes": { type: "string" },
      runs: { type: "string" },
      "batch-size": { type: "string" },
      "max-batch-size": { type: "string" },
      image: { type: "string", multiple: true },
      images: { type: "string" },
      workers: { type: "string" },
      url: { type: "string" },
      path: { type: "string" },
      concurrency: { type: "string" },
      requests: { type: "string" },
      "server-pid": { type: "string" },
      "body-bytes": { type: "string" },
      quick: { type: "boolean" },
      out: { type: "string" },
    },
  });
  console.error(`bench ${kind} on ${machineSummary(machineInfo())}`);
  const result = await run(values);
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

function precisionFlag(value: Flags[string]): Precision {
  const precision = (value ?? "fp32") as Precision;
  if (!["fp32", "fp16", "bf16", "int8"].includes(precision)) {
    throw new UsageError(`--precision must be fp32, fp16, bf16 or int8, got "${value}"`);
  }
  return precision;
}
