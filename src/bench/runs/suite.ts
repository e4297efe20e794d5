import path from "node:path";
import { imageClassifier } from "../../classifier/image-classifier.js";
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
import type { ConfigResult, SuiteConfig, SuiteResults } from "./suite-results.js";
import { cell, formatTable, shorten } from "../report/table.js";
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

export type { SuiteResults } from "./suite-results.js";
export { SUITE_TARGETS } from "./suite-targets.js";

export async function runSuite(options: SuiteOptions): Promise<{ results: SuiteResults; reportDir: string }> {
  const quick = options.quick ?? false;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const began = process.hrtime.bigint();
  const seconds = () => Number(process.hrtime.bigint() - began) / 1e9;
  const progress = (line: string) => log(`[${seconds().toFixed(1).padStart(6)} s] ${line}`);
  const settings = suiteSettings(options.imagesDir, quick);
  const requests = (await imageBodies(await listImages(settings.imagesDir))).map((body) => JSON.parse(body.toString()) as unknown);
  const machine = machineInfo();
  progress(`machine: ${machineSummary(machine)}${quick ? " · quick mode" : ""}`);

  const run: SuiteRun = { quick, settings, requests, progress, baselines: new Map() };
  const configs: ConfigResult[] = [];
  for (const config of options.configs ?? SUITE_CONFIGS) configs.push(await measureConfig(run, config));
  const { overhead, overheadBatchingOff } = await measureOverheads(run);
  const performance = await measurePerformanceOrNull(run);

  const results: SuiteResults = {
    startedAt: new Date(Date.now() - seconds() * 1000).toISOString(),
    quick,
    durationSeconds: seconds(),
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

/** What every step of one suite run shares. */
interface SuiteRun {
  quick: boolean;
  settings: SuiteResults["settings"];
  /** The sample photos as base64 JSON request bodies, parsed: what the pipeline is fed. */
  requests: unknown[];
  progress: (line: string) => void;
  /** The raw model depends only on precision and threads: measured once per pair, reused by configs that share it. */
  baselines: Map<string, BaselineReport>;
}

function suiteSettings(imagesDir: string, quick: boolean): SuiteResults["settings"] {
  return {
    concurrency: DEFAULT_CONCURRENCY,
    requestsPerLevel: quick ? 64 : 128,
    // every level sends at least 4 waves: at c=64 one wave of 64 measures a burst and its tail, not steady state
    waves: 4,
    baselineRuns: quick ? 3 : 10,
    pipelineImages: quick ? 256 : 1024,
    imagesDir: path.resolve(imagesDir),
    targetImage: path.resolve(imagesDir, "darknet_dog.jpg"),
  };
}

/** One configuration three ways: the raw model, the in-process pipeline, the served API. A failed step is noted. */
async function measureConfig(run: SuiteRun, config: SuiteConfig): Promise<ConfigResult> {
  const threadsPerWorker = Math.max(1, Math.floor(availableCores() / config.workers));
  const result: ConfigResult = { config, threadsPerWorker, baseline: null, pipeline: null, served: null, errors: [] };
  const source = imageClassifier({ precision: config.precision });
  const step = async (what: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (error) {
      const message = `${what}: ${(error as Error).message}`;
      result.errors.push(message); // in full in results.json; one short line in the progress and the tables
      run.progress(`${config.name} · FAILED ${shorten(message)}`);
    }
  };
  await step("baseline", async () => {
    result.baseline = await configBaseline(run, config, threadsPerWorker);
  });
  await step("pipeline", async () => {
    run.progress(`${config.name} · pipeline batch ${config.maxBatchSize}, ${config.workers} worker(s)`);
    result.pipeline = await runPipeline({ source, requests: run.requests, batchSize: config.maxBatchSize, workers: config.workers, images: run.settings.pipelineImages });
    run.progress(`${config.name} · pipeline: ${cell(result.pipeline.imagesPerSecond)} img/s, decode ${cell(result.pipeline.decodeMsPerImage, 2)} ms/img`);
  });
  await step("served", async () => {
    result.served = await configServed(run, config, source);
  });
  return result;
}

async function configBaseline(run: SuiteRun, config: SuiteConfig, threads: number): Promise<BaselineReport> {
  const key = `${config.precision}/${threads}`;
  const known = run.baselines.get(key);
  if (known) return known;
  run.progress(`${config.name} · baseline ${config.precision}, ${threads} thread(s)`);
  const report = await runBaseline({
    precision: config.precision,
    threads,
    batchSizes: DEFAULT_BATCH_SIZES,
    runs: run.settings.baselineRuns,
    warmupRuns: run.quick ? 1 : 3,
    onResult: (b) => run.progress(`${config.name} · baseline batch ${b.batchSize}: ${cell(b.imagesPerSecond)} img/s`),
  });
  run.baselines.set(key, report);
  return report;
}

function configServed(run: SuiteRun, config: SuiteConfig, source: ReturnType<typeof imageClassifier>): Promise<ApiBenchReport> {
  run.progress(`${config.name} · starting server`);
  const options = { api: source, maxBatchSize: config.maxBatchSize, batchTimeout: config.batchTimeout, workersPerDevice: config.workers };
  return withServerProcess({ kind: "batchwise", options }, (server) =>
    runApiBench({
      url: server.url,
      concurrency: run.settings.concurrency,
      requests: run.settings.requestsPerLevel,
      waves: run.settings.waves,
      imagesDir: run.settings.imagesDir,
      serverPid: server.pid,
      onLevel: (l) =>
        run.progress(
          `${config.name} · served c=${l.concurrency}: ${cell(l.requestsPerSecond)} req/s, p50 ${cell(l.latencyMs.p50)} ms` +
            (l.errorCount ? `, ${l.errorCount} errors (${l.firstError})` : ""),
        ),
    }),
  );
}

/** The no-op model in npm start's configuration (batching, one worker per core), then with batching off. */
async function measureOverheads(run: SuiteRun): Promise<{ overhead: OverheadReport | null; overheadBatchingOff: OverheadReport | null }> {
  const serving = classifierServingConfig();
  const overheadRun = async (what: string, concurrency: number[], maxBatchSize: number, batchTimeout: number) => {
    try {
      run.progress(`overhead · no-op model (${what}) vs bare fastify`);
      return await runOverhead({
        concurrency,
        requests: run.quick ? 5000 : 10_000, // at ~10,000 req/s, fewer read a fraction of a second of a noisy machine
        batchwise: { maxBatchSize, batchTimeout, workersPerDevice: serving.workers },
        onLevel: (server, l) => run.progress(`overhead · ${what} · ${server} c=${l.concurrency}: ${cell(l.requestsPerSecond)} req/s`),
      });
    } catch (error) {
      run.progress(`overhead · ${what} · FAILED ${shorten((error as Error).message)}`);
      return null;
    }
  };
  return {
    overhead: await overheadRun("npm start's batching", DEFAULT_CONCURRENCY, serving.maxBatchSize, serving.batchTimeout),
    overheadBatchingOff: await overheadRun("batching off", [64], 1, 0),
  };
}

async function measurePerformanceOrNull(run: SuiteRun): Promise<PerformanceReport | null> {
  try {
    return await measurePerformance({ quick: run.quick, image: run.settings.targetImage, log: run.progress });
  } catch (error) {
    run.progress(`performance · FAILED ${shorten((error as Error).message)}`);
    return null;
  }
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
