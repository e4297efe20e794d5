import path from "node:path";
import type { Precision } from "../api.js";
import { CLASSIFIER_SERVING_DEFAULTS, imageClassifier } from "../apps/image-classifier.js";
import { availableCores } from "../runtime/device.js";
import { formatApiTable, runApiBench, DEFAULT_CONCURRENCY, type ApiBenchReport } from "./api-bench.js";
import { DEFAULT_BATCH_SIZES, runBaseline, type BaselineReport } from "./baseline.js";
import { imageBodies, listImages } from "./load.js";
import { machineInfo, machineSummary, type MachineInfo } from "./machine.js";
import { formatOverheadTable, runOverhead, type OverheadReport } from "./overhead.js";
import { measurePerformance, type PerformanceReport } from "./performance.js";
import { runPipeline, type PipelineReport } from "./pipeline.js";
import { writeReport } from "./report.js";
import { withServerProcess } from "./server-process.js";
import { cell, formatTable } from "./table.js";
import { evaluateTargets, formatTargetsTable, type Target, type TargetOutcome } from "./targets.js";

/**
 * `bench suite` (`npm run bench`): the seed's sequence of server configurations, each measured three ways — the raw
 * model (baseline), the in-process pipeline, and the served API in a fresh child process — then the no-op overhead
 * comparison, a results.json, an HTML report with charts, and the targets table.
 */

export interface SuiteConfig {
  id: string;
  name: string;
  precision: Precision;
  maxBatchSize: number;
  batchTimeout: number;
  workers: number;
}

/** The seed's steps, each adding one thing to the previous one. */
export const SUITE_CONFIGS: SuiteConfig[] = [
  { id: "a-no-batching", name: "(a) no batching, 1 worker", precision: "fp32", maxBatchSize: 1, batchTimeout: 0, workers: 1 },
  { id: "b-batching", name: "(b) batching 64 / 0.01 s", precision: "fp32", maxBatchSize: 64, batchTimeout: 0.01, workers: 1 },
  { id: "c-2-workers", name: "(c) batching + 2 workers", precision: "fp32", maxBatchSize: 64, batchTimeout: 0.01, workers: 2 },
  { id: "d-int8", name: "(d) + int8", precision: "int8", maxBatchSize: 64, batchTimeout: 0.01, workers: 2 },
];

export interface SuiteOptions {
  /** Smaller counts: the whole suite in about two minutes on a 2-core machine. */
  quick?: boolean;
  imagesDir: string;
  /** Parent folder of the timestamped report folder. Default "reports". */
  outDir?: string;
  configs?: SuiteConfig[];
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

export interface ConfigResult {
  config: SuiteConfig;
  threadsPerWorker: number;
  baseline: BaselineReport | null;
  pipeline: PipelineReport | null;
  served: ApiBenchReport | null;
  /** Why a part is missing, if one is. */
  errors: string[];
}

export interface SuiteResults {
  startedAt: string;
  quick: boolean;
  durationSeconds: number;
  machine: MachineInfo;
  settings: {
    concurrency: number[];
    requestsPerLevel: number;
    baselineRuns: number;
    pipelineImages: number;
    imagesDir: string;
    /** The photo the performance targets are measured on (the seed's 768×576 JPEG). */
    targetImage: string;
  };
  configs: ConfigResult[];
  overhead: OverheadReport | null;
  /** The classifier path's target figures on one JPEG (see ./performance.ts). */
  performance: PerformanceReport | null;
  targets: TargetOutcome[];
}

/** Reference figure from the seed: its served images/s at c=64, which batchwise should beat by half. */
const SEED_SERVED_IMAGES_PER_SECOND = 137;

/**
 * The targets table. Thresholds are provisional until the lead fixes them; each row reads its value from the
 * results, so a new target is one more entry here.
 */
export const SUITE_TARGETS: Target<SuiteResults>[] = [
  {
    name: "preprocessing per image (darknet_dog.jpg, one core)",
    unit: "ms",
    measure: (r) => r.performance?.preprocessMs ?? null,
    op: "<=",
    threshold: 4,
    note: "base64 → decode → resize 256 → crop 224 → normalised NCHW",
  },
  {
    name: "served ÷ pipeline limit at c=64 (npm start config)",
    unit: "×",
    measure: (r) => (r.performance ? r.performance.served.requestsPerSecond / r.performance.pipelineImagesPerSecond : null),
    op: ">=",
    threshold: 0.9,
    note: "what HTTP + JSON + queueing cost",
  },
  {
    name: "served images/s at c=64 (npm start config, real JPEG)",
    unit: "img/s",
    measure: (r) => r.performance?.served.requestsPerSecond ?? null,
    op: ">=",
    threshold: 1.5 * SEED_SERVED_IMAGES_PER_SECOND,
    note: `1.5 × the seed's ${SEED_SERVED_IMAGES_PER_SECOND}`,
  },
  {
    name: "lone request p50, batching on − off (c=1)",
    unit: "ms",
    measure: (r) => (r.performance ? r.performance.lone.batchingOnP50Ms - r.performance.lone.batchingOffP50Ms : null),
    op: "<=",
    threshold: 1,
    note: "a lone request must not wait for batchTimeout (10 ms)",
  },
  {
    name: "no-op API req/s at c=64",
    unit: "req/s",
    measure: (r) => r.overhead?.rows.find((row) => row.concurrency === 64)?.batchwise.requestsPerSecond ?? null,
    op: ">=",
    threshold: 7000,
    note: "5 × the seed's framework overhead (npm start's batching and workers)",
  },
];

export async function runSuite(options: SuiteOptions): Promise<{ results: SuiteResults; reportDir: string }> {
  const quick = options.quick ?? false;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const began = process.hrtime.bigint();
  const progress = (line: string) => log(`[${(Number(process.hrtime.bigint() - began) / 1e9).toFixed(1).padStart(6)} s] ${line}`);
  const settings = {
    concurrency: DEFAULT_CONCURRENCY,
    requestsPerLevel: quick ? 64 : 128,
    baselineRuns: quick ? 3 : 10,
    pipelineImages: quick ? 128 : 512,
    imagesDir: path.resolve(options.imagesDir),
    targetImage: path.resolve(options.imagesDir, "darknet_dog.jpg"),
  };
  const imageFiles = await listImages(settings.imagesDir);
  const requests = (await imageBodies(imageFiles)).map((body) => JSON.parse(body.toString()) as unknown);
  const cores = availableCores();
  const machine = machineInfo();
  progress(`machine: ${machineSummary(machine)}${quick ? " · quick mode" : ""}`);

  const baselines = new Map<string, BaselineReport>();
  const configs: ConfigResult[] = [];
  for (const config of options.configs ?? SUITE_CONFIGS) {
    const threadsPerWorker = Math.max(1, Math.floor(cores / config.workers));
    const result: ConfigResult = { config, threadsPerWorker, baseline: null, pipeline: null, served: null, errors: [] };
    configs.push(result);
    const source = imageClassifier({ precision: config.precision });
    const step = async (what: string, work: () => Promise<void>) => {
      try {
        await work();
      } catch (error) {
        const message = `${what}: ${(error as Error).message}`;
        result.errors.push(message); // in full in results.json; one short line in the progress and the tables
        progress(`${config.name} · FAILED ${shorten(message)}`);
      }
    };

    // The raw model depends only on precision and threads: measured once per pair, reused by configs that share it.
    await step("baseline", async () => {
      const key = `${config.precision}/${threadsPerWorker}`;
      if (!baselines.has(key)) {
        progress(`${config.name} · baseline ${config.precision}, ${threadsPerWorker} thread(s)`);
        baselines.set(
          key,
          await runBaseline({
            precision: config.precision,
            threads: threadsPerWorker,
            batchSizes: DEFAULT_BATCH_SIZES,
            runs: settings.baselineRuns,
            warmupRuns: quick ? 1 : 3,
            onResult: (b) => progress(`${config.name} · baseline batch ${b.batchSize}: ${cell(b.imagesPerSecond)} img/s`),
          }),
        );
      }
      result.baseline = baselines.get(key)!;
    });

    await step("pipeline", async () => {
      progress(`${config.name} · pipeline batch ${config.maxBatchSize}, ${config.workers} worker(s)`);
      result.pipeline = await runPipeline({
        source,
        requests,
        batchSize: config.maxBatchSize,
        workers: config.workers,
        images: settings.pipelineImages,
      });
      progress(`${config.name} · pipeline: ${cell(result.pipeline.imagesPerSecond)} img/s, decode ${cell(result.pipeline.decodeMsPerImage, 2)} ms/img`);
    });

    await step("served", async () => {
      progress(`${config.name} · starting server`);
      result.served = await withServerProcess(
        {
          kind: "batchwise",
          options: {
            api: source,
            maxBatchSize: config.maxBatchSize,
            batchTimeout: config.batchTimeout,
            workersPerDevice: config.workers,
          },
        },
        (server) =>
          runApiBench({
            url: server.url,
            concurrency: settings.concurrency,
            requests: settings.requestsPerLevel,
            imagesDir: settings.imagesDir,
            serverPid: server.pid,
            onLevel: (l) =>
              progress(
                `${config.name} · served c=${l.concurrency}: ${cell(l.requestsPerSecond)} req/s, p50 ${cell(l.latencyMs.p50)} ms` +
                  (l.errorCount ? `, ${l.errorCount} errors (${l.firstError})` : ""),
              ),
          }),
      );
    });
  }

  let overhead: OverheadReport | null = null;
  try {
    progress("overhead: no-op model vs bare fastify");
    overhead = await runOverhead({
      requests: quick ? 1000 : 3000,
      // the configuration npm start serves with (batching, one worker per core), as the served-images target uses
      batchwise: {
        maxBatchSize: CLASSIFIER_SERVING_DEFAULTS.maxBatchSize,
        batchTimeout: CLASSIFIER_SERVING_DEFAULTS.batchTimeout,
        workersPerDevice: CLASSIFIER_SERVING_DEFAULTS.workers(availableCores()),
      },
      onLevel: (server, l) => progress(`overhead · ${server} c=${l.concurrency}: ${cell(l.requestsPerSecond)} req/s`),
    });
  } catch (error) {
    progress(`overhead · FAILED ${shorten((error as Error).message)}`);
  }

  let performance: PerformanceReport | null = null;
  try {
    performance = await measurePerformance({ quick, image: settings.targetImage, log: progress });
  } catch (error) {
    progress(`performance · FAILED ${shorten((error as Error).message)}`);
  }

  const results: SuiteResults = {
    startedAt: new Date(Date.now() - Number(process.hrtime.bigint() - began) / 1e6).toISOString(),
    quick,
    durationSeconds: Number(process.hrtime.bigint() - began) / 1e9,
    machine,
    settings,
    configs,
    overhead,
    performance,
    targets: [],
  };
  results.targets = evaluateTargets(SUITE_TARGETS, results);
  const reportDir = await writeReport(results, options.outDir ?? "reports", progress);
  return { results, reportDir };
}

/** Everything a terminal reader wants at the end: per-config tables, overhead, targets. */
export function formatSuiteSummary(results: SuiteResults): string {
  const parts: string[] = [];
  parts.push(
    formatTable(
      ["config", "baseline b64 img/s", "pipeline img/s", "decode ms/img", "served c=1 req/s", "served c=64 req/s", "c=1 p50 ms", "errors"],
      results.configs.map((c) => [
        c.config.name,
        cell(c.baseline?.results.find((b) => b.batchSize === 64)?.imagesPerSecond),
        cell(c.pipeline?.imagesPerSecond),
        cell(c.pipeline?.decodeMsPerImage, 2),
        cell(c.served ? levelAt(c.served, 1)?.requestsPerSecond : null),
        cell(c.served ? levelAt(c.served, 64)?.requestsPerSecond : null),
        cell(c.served ? levelAt(c.served, 1)?.latencyMs.p50 : null),
        c.errors.length ? `failed: ${c.errors.map((e) => e.split(":")[0]).join(", ")} (see results.json)` : String(c.served?.levels.reduce((n, l) => n + l.errorCount, 0) ?? "n/a"),
      ]),
    ),
  );
  for (const c of results.configs) {
    if (c.served) parts.push(`${c.config.name}\n${formatApiTable(c.served)}`);
  }
  if (results.overhead) {
    const { bodyBytes, batchwiseOptions: o } = results.overhead;
    const config = `batching ${o.maxBatchSize ?? 1} / ${o.batchTimeout ?? 0} s, ${o.workersPerDevice ?? 1} worker(s)`;
    parts.push(`no-op overhead (${bodyBytes}-byte body; batchwise ${config})\n${formatOverheadTable(results.overhead)}`);
  }
  const p = results.performance;
  if (p) {
    parts.push(
      `performance (${path.basename(p.image)}; batching ${p.config.maxBatchSize} / ${p.config.batchTimeout} s, ${p.config.workers} worker(s), ${p.config.precision})\n` +
        `  preprocessing ${cell(p.preprocessMs, 2)} ms/img · pipeline limit ${cell(p.pipelineImagesPerSecond)} img/s · ` +
        `served c=64 ${cell(p.served.requestsPerSecond)} img/s (p50 ${cell(p.served.latencyMs.p50)} ms, p99 ${cell(p.served.latencyMs.p99)} ms, ${p.served.errorCount} errors) · ` +
        `lone p50 off/on ${cell(p.lone.batchingOffP50Ms, 2)} / ${cell(p.lone.batchingOnP50Ms, 2)} ms`,
    );
  }
  parts.push(`targets\n${formatTargetsTable(results.targets)}`);
  return parts.join("\n\n");
}

/** First line, at most 200 characters: a model-not-found message with install instructions is long. */
export function shorten(message: string): string {
  const line = message.split("\n")[0];
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

function levelAt(report: ApiBenchReport, concurrency: number) {
  return report.levels.find((l) => l.concurrency === concurrency);
}
