import { writeFile } from "node:fs/promises";
import path from "node:path";
import { describeCpu } from "../runtime/cpu-features.js";
import { benchUsage, commandHelp, FlagError, invocationOf, isBenchKind, parseFlags, type CommandName, type Flags } from "./flags.js";
import { defaultImagesDir, imageBodies } from "./load/load.js";
import { machineInfo, machineSummary } from "./load/machine.js";
import { cell, formatTable } from "./report/table.js";
import { formatApiTable, runApiBench } from "./runs/api-bench.js";
import { runBaseline, DEFAULT_BASELINE_MODEL, type BaselineReport } from "./runs/baseline.js";
import { formatOverheadTable, runOverhead } from "./runs/overhead.js";
import { classifierServingConfig, resolvePrecision } from "./servers/serving-config.js";

/**
 * `batchwise bench <kind> …` and `batchwise soak …`: each kind is one benchmark module. This file reads the flags
 * from their one table (./flags.ts), runs the module, prints its table under the CPU line, and writes `--json FILE`.
 * Modules load on use (the suite pulls in sharp and the classifier, llm transformers.js).
 */

type ToolkitCommand = Exclude<CommandName, "scale-out-check" | "scale-out-bench" | "connection-storm">;
type Runner<C extends ToolkitCommand> = (flags: Flags<C>) => Promise<unknown>;

const RUNNERS: { [C in ToolkitCommand]: Runner<C> } = {
  baseline: runBaselineCommand,
  precision: runPrecisionCommand,
  pipeline: runPipelineCommand,
  api: runApiCommand,
  overhead: runOverheadCommand,
  "main-thread": runMainThreadCommand,
  suite: runSuiteCommand,
  llm: runLlmCommand,
  stream: runStreamCommand,
  soak: runSoakCommand,
};

export async function runBenchCli(argv: string[]): Promise<unknown> {
  const [kind, ...rest] = argv;
  if (!isBenchKind(kind)) {
    console.log(benchUsage());
    if (kind && kind !== "--help" && kind !== "help") throw new FlagError(`unknown bench kind "${kind}"`);
    return undefined;
  }
  return runCommand(kind as ToolkitCommand, rest);
}

/** `batchwise soak …` (`npm run soak -- …`): exits 1 when any request failed. */
export function runSoakCli(argv: string[]): Promise<unknown> {
  return runCommand("soak", argv);
}

async function runCommand<C extends ToolkitCommand>(command: C, argv: string[]): Promise<unknown> {
  const flags = parseFlags(command, argv);
  if (!flags) {
    console.log(commandHelp(command));
    return undefined;
  }
  console.error(`${invocationOf(command)} on ${machineSummary(machineInfo())}`);
  // Every figure below is read with the machine it came from: the CPU line heads the command's tables.
  console.log(`CPU: ${describeCpu()}`);
  const result = await (RUNNERS[command] as Runner<C>)(flags);
  const json = (flags as { json?: string }).json;
  if (json) {
    await writeFile(json, JSON.stringify(withMachine(result), null, 2));
    console.error(`wrote ${json}`);
  }
  return result;
}

/** A results file says what it was measured on: the machine (its `cpu` line first) beside the figures. */
function withMachine(result: unknown): unknown {
  if (!result || typeof result !== "object" || Array.isArray(result) || "machine" in result) return result;
  return { ...result, machine: machineInfo() };
}

async function runBaselineCommand(flags: Flags<"baseline">) {
  const serving = classifierServingConfig();
  const precision = await resolvePrecision(DEFAULT_BASELINE_MODEL, flags.precision ?? serving.precision);
  const report = await runBaseline({ precision, threads: flags.threads ?? serving.threadsPerWorker, batchSizes: flags.batchSizes, runs: flags.runs });
  console.log(`${report.model} · ${report.precision} · ${report.threads} thread(s) (npm start: ${serving.workers} worker(s) × ${serving.threadsPerWorker} thread(s), ${serving.precision})`);
  console.log(baselineTable(report.results));
  return report;
}

async function runPrecisionCommand(flags: Flags<"precision">) {
  const { runPrecisionBench, formatPrecisionTable } = await import("./runs/precision.js");
  const report = await runPrecisionBench({ ...flags, imagesDir: flags.imagesDir });
  console.log(`\n${report.model} · ${report.settings.threads} thread(s)${report.quick ? " · quick" : ""}`);
  console.log(formatPrecisionTable(report));
  return report;
}

async function runPipelineCommand(flags: Flags<"pipeline">) {
  const serving = classifierServingConfig();
  const images = flags.image ?? [path.join(defaultImagesDir(), "darknet_dog.jpg")];
  const precision = flags.precision ?? serving.precision;
  const { imageClassifier } = await import("../classifier/image-classifier.js");
  const { runPipeline } = await import("./runs/pipeline.js");
  const report = await runPipeline({
    source: imageClassifier({ precision }),
    requests: (await imageBodies(images)).map((b) => JSON.parse(b.toString()) as unknown),
    batchSize: flags.batchSize ?? serving.maxBatchSize,
    workers: flags.workers ?? serving.workers,
    // the server's rule unless told: cores ÷ workers
    threadsPerWorker: flags.threads ?? (flags.workers === undefined ? serving.threadsPerWorker : undefined),
    images: flags.imageCount,
  });
  console.log(`${images.map((f) => path.basename(f)).join(", ")} · precision ${precision}`);
  console.log(
    formatTable(
      ["batch size", "workers × threads", "images", "images/s", "decode ms/img", "failures"],
      [[String(report.batchSize), `${report.workers} × ${report.threadsPerWorker}`, String(report.images), cell(report.imagesPerSecond), cell(report.decodeMsPerImage, 2), String(report.failures)]],
    ),
  );
  return { ...report, precision };
}

async function runApiCommand(flags: Flags<"api">) {
  const report = await runApiBench({
    url: flags.url,
    path: flags.path,
    concurrency: flags.concurrencyLevels,
    requests: flags.requests,
    waves: flags.waves,
    body: flags.body,
    imagesDir: flags.imagesDir ?? defaultImagesDir(),
    serverPid: flags.serverPid,
    onLevel: (l) => process.stderr.write(`c=${l.concurrency}: ${cell(l.requestsPerSecond)} req/s\n`),
  });
  console.log(formatApiTable(report));
  return report;
}

async function runOverheadCommand(flags: Flags<"overhead">) {
  const report = await runOverhead({
    concurrency: flags.concurrencyLevels,
    requests: flags.requests,
    bodyBytes: flags.bodyBytes,
    batchwise: { maxBatchSize: flags.maxBatchSize, workersPerDevice: flags.workers },
    onLevel: (server, l) => process.stderr.write(`${server} c=${l.concurrency}: ${cell(l.requestsPerSecond)} req/s\n`),
  });
  console.log(formatOverheadTable(report));
  return report;
}

async function runMainThreadCommand(flags: Flags<"main-thread">) {
  const { runMainThreadBench, formatMainThreadTable } = await import("./runs/main-thread.js");
  const { concurrency, requests, bodyBytes, maxBatchSize, workers } = flags;
  const batchTimeout = maxBatchSize > 1 ? 0.01 : 0;
  const report = await runMainThreadBench({ concurrency, requests, bodyBytes, batchwise: { maxBatchSize, batchTimeout, workersPerDevice: workers } });
  console.log(formatMainThreadTable(report));
  return report;
}

async function runSuiteCommand(flags: Flags<"suite">) {
  const { runSuite, formatSuiteSummary } = await import("./runs/suite.js");
  const { results, reportDir } = await runSuite({ quick: flags.quick, imagesDir: flags.imagesDir ?? defaultImagesDir(), outDir: flags.out });
  console.log(`\n${formatSuiteSummary(results)}\n\nreport: ${path.join(reportDir, "report.html")}`);
  return results;
}

async function runLlmCommand(flags: Flags<"llm">) {
  const { benchLlm } = await import("./runs/llm.js");
  const { concurrencyLevels: concurrency, noInProcess: skipInProcess, json: _json, ...rest } = flags;
  return benchLlm({ ...rest, concurrency, skipInProcess });
}

async function runStreamCommand(flags: Flags<"stream">) {
  const { benchStreamOverhead } = await import("./runs/stream-overhead.js");
  return benchStreamOverhead({ concurrency: flags.concurrencyLevels, tokens: flags.tokens, requests: flags.requests, maxBatchSize: flags.maxBatchSize });
}

async function runSoakCommand(flags: Flags<"soak">) {
  const { runSoak, formatSoakReport } = await import("./runs/soak.js");
  const serving = classifierServingConfig();
  const report = await runSoak(
    {
      minutes: flags.minutes,
      concurrency: flags.concurrency,
      windowSeconds: flags.window,
      warmupSeconds: flags.warmup,
      imagesDir: flags.imagesDir ?? defaultImagesDir(),
      maxBatchSize: flags.maxBatchSize ?? serving.maxBatchSize,
      batchTimeout: flags.batchTimeout ?? serving.batchTimeout,
      workers: flags.workers ?? serving.workers,
      precision: flags.precision,
      requestTimeoutMs: 60_000,
    },
    (line) => console.error(`[soak] ${line}`),
  );
  console.log(formatSoakReport(report));
  if (report.errors > 0) process.exitCode = 1;
  return report;
}

function baselineTable(results: BaselineReport["results"]): string {
  return formatTable(
    ["batch size", "images/s", "median ms", "min ms", "max ms", "IQR ms", "runs"],
    results.map((r) => [String(r.batchSize), cell(r.imagesPerSecond), cell(r.medianMs, 2), cell(r.minMs, 2), cell(r.maxMs, 2), cell(r.iqrMs, 2), String(r.runs)]),
  );
}
