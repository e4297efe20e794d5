import path from "node:path";
import { imageClassifier } from "../../apps/image-classifier.js";
import { DEFAULT_CHUNK_SIZE } from "../../runtime/chunked-run.js";
import { availableCores } from "../../runtime/device.js";
import { formatApiTable, runApiBench, DEFAULT_CONCURRENCY, type ApiBenchReport } from "./api-bench.js";
import { DEFAULT_BATCH_SIZES, runBaseline, type BaselineReport } from "./baseline.js";
import { imageBodies, listImages } from "../load/load.js";
import { machineInfo, machineSummary } from "../load/machine.js";
import { formatOverheadTable, runOverhead, type OverheadReport } from "./overhead.js";
import { measurePerformance, type PerformanceReport } from "./performance.js";
import { runPipeline } from "./pipeline.js";
import { writeReport } from "../report/report.js";
import { withServerProcess } from "../servers/server-process.js";
import { classifierServingConfig } from "../servers/serving-config.js";
import { shorten, type ConfigResult, type SuiteConfig, type SuiteResults } from "./suite-results.js";
import { cell, formatTable } from "../report/table.js";
import { SUITE_TARGETS } from "./suite-targets.js";
import { evaluateTargets, formatTargetsTable } from "../report/targets.js";

/**
 * `bench suite` (`npm run bench`): the seed's sequence of server configurations, each measured three ways — the raw
 * model (baseline), the in-process pipeline, and the served API in a fresh child process — then the no-op overhead
 * comparison, a results.json, an HTML report with charts, and the targets table.
 */

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

export type { ConfigResult, SuiteConfig, SuiteResults } from "./suite-results.js";
export { SUITE_TARGETS } from "./suite-targets.js";

export async function runSuite(options: SuiteOptions): Promise<{ results: SuiteResults; reportDir: string }> {
  const quick = options.quick ?? false;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const began = process.hrtime.bigint();
  const progress = (line: string) => log(`[${(Number(process.hrtime.bigint() - began) / 1e9).toFixed(1).padStart(6)} s] ${line}`);
  const settings = {
    concurrency: DEFAULT_CONCURRENCY,
    requestsPerLevel: quick ? 64 : 128,
    // every level sends at least 4 waves: at c=64 one wave of 64 measures a burst and its tail, not steady state
    waves: 4,
    baselineRuns: quick ? 3 : 10,
    pipelineImages: quick ? 256 : 1024,
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
            waves: settings.waves,
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

  // The no-op model in npm start's configuration (batching, one worker per core), then with batching off.
  const serving = classifierServingConfig();
  const overheadRun = async (what: string, concurrency: number[], maxBatchSize: number, batchTimeout: number) => {
    try {
      progress(`overhead · no-op model (${what}) vs bare fastify`);
      return await runOverhead({
        concurrency,
        requests: quick ? 5000 : 10_000, // at ~10,000 req/s, fewer read a fraction of a second of a noisy machine
        batchwise: { maxBatchSize, batchTimeout, workersPerDevice: serving.workers },
        onLevel: (server, l) => progress(`overhead · ${what} · ${server} c=${l.concurrency}: ${cell(l.requestsPerSecond)} req/s`),
      });
    } catch (error) {
      progress(`overhead · ${what} · FAILED ${shorten((error as Error).message)}`);
      return null;
    }
  };
  const overhead = await overheadRun("npm start's batching", DEFAULT_CONCURRENCY, serving.maxBatchSize, serving.batchTimeout);
  const overheadBatchingOff = await overheadRun("batching off", [64], 1, 0);

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
    overheadBatchingOff,
    performance,
    targets: [],
  };
  results.targets = evaluateTargets(SUITE_TARGETS, results);
  const reportDir = await writeReport(results, options.outDir ?? "reports", progress);
  return { results, reportDir };
}

/** Everything a terminal reader wants at the end: per-config tables, overhead, targets. */
export function formatSuiteSummary(results: SuiteResults): string {
  const parts: string[] = [`CPU: ${results.machine.cpu}`];
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
  for (const [what, report] of [["npm start's batching", results.overhead], ["batching off", results.overheadBatchingOff]] as const) {
    if (!report) continue;
    const { bodyBytes, batchwiseOptions: o } = report;
    const config = `batching ${o.maxBatchSize ?? 1} / ${o.batchTimeout ?? 0} s, ${o.workersPerDevice ?? 1} worker(s)`;
    parts.push(`no-op overhead, ${what} (${bodyBytes}-byte body; batchwise ${config})\n${formatOverheadTable(report)}`);
  }
  const p = results.performance;
  if (p) {
    const served = (label: string, l: { requestsPerSecond: number; latencyMs: { p50: number; p99: number }; errorCount: number } | null) =>
      l ? `${label} ${cell(l.requestsPerSecond)} img/s (p50 ${cell(l.latencyMs.p50)} ms, p99 ${cell(l.latencyMs.p99)} ms, ${l.errorCount} errors)` : `${label} not measured`;
    parts.push(
      `performance (${path.basename(p.image)}; batching ${p.config.maxBatchSize} / ${p.config.batchTimeout} s, ${p.config.workers} worker(s) × ${p.config.threadsPerWorker} thread(s), ${p.config.precision} = ${p.config.resolvedPrecision})\n` +
        `  preprocessing ${cell(p.preprocessMs, 2)} ms/img from bytes, ${cell(p.preprocessBase64Ms, 2)} from base64 · model ${cell(p.modelMsPerImage, 2)} ms/img (batch 64 in chunks of ${DEFAULT_CHUNK_SIZE}, 1 thread; ${cell(p.modelOneRunMsPerImage, 2)} as one run)\n` +
        `  pipeline limit ${cell(p.pipelineImagesPerSecond)} img/s from base64, ${cell(p.pipelineBinary?.imagesPerSecond)} from bytes (${p.pipeline.images} images each) · ${served("served c=64 JSON", p.served)} · ${served("binary", p.servedBinary)}\n` +
        `  rounds: ${p.rounds.map((r) => `${r.body} ${cell(r.requestsPerSecond)}${r.errorCount ? ` (${r.errorCount} errors)` : ""}`).join(", ")} · server RSS peak ${cell(p.serverRssMiB, 0)} MiB\n` +
        `  main thread per image base64/raw ${cell(p.mainThreadMicrosPerImage?.json, 0)} / ${cell(p.mainThreadMicrosPerImage?.binary, 0)} µs · lone p50 off/on ${cell(p.lone.batchingOffP50Ms, 2)} / ${cell(p.lone.batchingOnP50Ms, 2)} ms`,
    );
  }
  parts.push(`targets\n${formatTargetsTable(results.targets, results.machine.cpu)}`);
  return parts.join("\n\n");
}

function levelAt(report: ApiBenchReport, concurrency: number) {
  return report.levels.find((l) => l.concurrency === concurrency);
}
