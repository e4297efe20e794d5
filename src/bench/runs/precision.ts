import { spawn } from "node:child_process";
import { statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Precision } from "../../api/model-api.js";
import { imageClassifier, ImageClassifierAPI, openClassifierModel } from "../../classifier/image-classifier.js";
import { normalizeInto } from "../../classifier/image-preprocess.js";
import { loadClassNames, softmaxRows } from "../../classifier/labels.js";
import { availableCores } from "../../runtime/device.js";
import { resolveModel } from "../../runtime/models.js";
import { ort, settingsFor, type Session } from "../../runtime/onnx.js";
import { runChunked } from "../../runtime/chunked-run.js";
import { listVariants, PRECISIONS, PrecisionUnsupportedError } from "../../runtime/precision.js";
import { runApiBench, type ApiBenchLevel } from "./api-bench.js";
import { DEFAULT_BASELINE_MODEL, DEFAULT_BATCH_SIZES, runBaseline, type BaselineResult } from "./baseline.js";
import { defaultImagesDir, listImages } from "../load/load.js";
import { machineInfo, type MachineInfo } from "../load/machine.js";
import type { MemoryChildConfig, MemoryChildResult } from "./precision-memory-child.js";
import { withServerProcess } from "../servers/server-process.js";
import { cell, formatTable } from "../report/table.js";

/**
 * `bench precision`: what each precision variant of the classifier costs and buys on this machine, side by side —
 * whether the provider runs it at all, its file size, the memory a session takes, raw and served throughput, and
 * how far its answers drift from fp32 on the sample photos. Each measurement that a previous one could distort runs
 * in a fresh process: memory in its own child per precision, serving in its own server process per precision.
 */

export interface PrecisionBenchOptions {
  /** Model id (a folder under BATCHWISE_MODELS_DIR) or path. Default "mobilenetv2-12". */
  model?: string;
  precisions?: Precision[];
  /** Fewer runs and requests: the whole benchmark in about a minute. */
  quick?: boolean;
  /** Intra-op threads of the raw baseline and of the memory child. Default: all available cores. */
  threads?: number;
  batchSizes?: number[];
  /** Timed raw runs per batch size (default 20, quick 3). */
  runs?: number;
  /** Client concurrency of the served measurement. Default 64. */
  concurrency?: number;
  /** Measured requests at that concurrency (default 512, quick 64), after one warm-up request per client. */
  requests?: number;
  /** Sample photos: agreement is computed over all of them; the served load sends them round-robin. */
  imagesDir?: string;
  /** Server batching for the served measurement. Default 64 / 0.01 s, one worker. */
  maxBatchSize?: number;
  batchTimeout?: number;
  workers?: number;
  /** Images in the batch the memory child runs after creating its session. Default: the largest batch size. */
  memoryBatchSize?: number;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

export interface PrecisionRow {
  precision: Precision;
  /** Whether the CPU provider builds a session for this variant and runs a batch with it. */
  runnable: boolean;
  /** When not runnable: the provider's reason, e.g. "Could not find an implementation for Conv(22)". */
  reason?: string;
  /** When not runnable: the whole user-facing message of the capability check. */
  error?: string;
  /** The variant file src/runtime/precision.ts picks for this precision; null when the folder has none. */
  file: string | null;
  fileBytes: number | null;
  memory: PrecisionMemory | null;
  raw: BaselineResult[];
  served: ApiBenchLevel | null;
  /** Comparison with fp32 over the sample photos; null when either side did not run (or fp32 was not measured). */
  agreement: PrecisionAgreement | null;
  /** Failures of single measurements of a runnable precision (the other measurements still ran). */
  errors: string[];
}

export interface PrecisionMemory extends MemoryChildResult {
  /** afterBatchRssBytes − baseRssBytes: what creating the session and running one batch added. */
  growthBytes: number;
  batchSize: number;
}

export interface PrecisionAgreement {
  photos: number;
  /** Photos whose top-1 ImageNet class equals fp32's. */
  top1Agree: number;
  /** Largest |p − p_fp32| over every photo and all 1000 softmax probabilities. */
  maxAbsProbDiff: number;
  /** This precision's top-1 class per photo, in photo order. */
  top1: { photo: string; label: string; probability: number }[];
}

export interface PrecisionBenchReport {
  model: string;
  quick: boolean;
  machine: MachineInfo;
  settings: {
    threads: number;
    batchSizes: number[];
    runs: number;
    concurrency: number;
    requests: number;
    maxBatchSize: number;
    batchTimeout: number;
    workers: number;
    memoryBatchSize: number;
    imagesDir: string;
    photos: string[];
  };
  rows: PrecisionRow[];
  durationSeconds: number;
}

const CLASSES = 1000;

export async function runPrecisionBench(options: PrecisionBenchOptions = {}): Promise<PrecisionBenchReport> {
  const quick = options.quick ?? false;
  const began = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - began) / 1e9;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const progress = (line: string) => log(`[${elapsed().toFixed(1).padStart(6)} s] ${line}`);
  const model = options.model ?? DEFAULT_BASELINE_MODEL;
  const imagesDir = path.resolve(options.imagesDir ?? defaultImagesDir());
  const photos = await listImages(imagesDir);
  const settings = precisionSettings(options, imagesDir, photos);
  const bench: PrecisionRun = { model, quick, settings, progress };

  // Agreement first and in this process: one session at a time, released before anything is timed.
  const inputs = await preprocessPhotos(photos);
  const probabilities = new Map<Precision, Float32Array>();
  const rows: PrecisionRow[] = [];
  for (const precision of options.precisions ?? PRECISIONS) rows.push(await openAndClassify(bench, precision, inputs, probabilities));
  const reference = probabilities.get("fp32");
  const classNames = await classNamesOf(model);
  for (const row of rows) {
    const probs = probabilities.get(row.precision);
    if (probs && reference) row.agreement = agreement(probs, reference, settings.photos, classNames);
  }
  for (const row of rows.filter((r) => r.runnable)) await measureRow(bench, row);
  return { model, quick, machine: machineInfo(), settings, rows, durationSeconds: elapsed() };
}

/** What every step of one precision run shares. */
interface PrecisionRun {
  model: string;
  quick: boolean;
  settings: PrecisionBenchReport["settings"];
  progress: (line: string) => void;
}

function precisionSettings(options: PrecisionBenchOptions, imagesDir: string, photos: string[]): PrecisionBenchReport["settings"] {
  const quick = options.quick ?? false;
  const batchSizes = options.batchSizes ?? DEFAULT_BATCH_SIZES;
  return {
    threads: options.threads ?? availableCores(),
    batchSizes,
    runs: options.runs ?? (quick ? 3 : 20),
    concurrency: options.concurrency ?? 64,
    requests: options.requests ?? (quick ? 64 : 512),
    maxBatchSize: options.maxBatchSize ?? 64,
    batchTimeout: options.batchTimeout ?? 0.01,
    workers: options.workers ?? 1,
    memoryBatchSize: options.memoryBatchSize ?? Math.max(...batchSizes),
    imagesDir,
    photos: photos.map((p) => path.basename(p)),
  };
}

/** Open one precision as the classifier would and classify the photos: runnable or not, with the provider's reason. */
async function openAndClassify(run: PrecisionRun, precision: Precision, inputs: Uint8Array[], probabilities: Map<Precision, Float32Array>): Promise<PrecisionRow> {
  run.progress(`${precision} · opening the model and classifying ${inputs.length} photos`);
  const row: PrecisionRow = { precision, runnable: false, file: null, fileBytes: null, memory: null, raw: [], served: null, agreement: null, errors: [] };
  try {
    const classified = await classify(run.model, precision, run.settings.threads, inputs);
    row.runnable = true;
    row.file = classified.file;
    probabilities.set(precision, classified.probabilities);
  } catch (error) {
    row.error = (error as Error).message;
    row.reason = error instanceof PrecisionUnsupportedError ? error.reason : firstLine(row.error);
    run.progress(`${precision} · does not run here: ${row.reason}`);
    row.file = listVariants((await resolveModel(run.model)).dir)[precision] ?? null;
  }
  row.fileBytes = row.file ? statSync(row.file).size : null;
  return row;
}

/** Memory, raw and served figures of one runnable precision; a failed measurement is noted and the rest still run. */
async function measureRow(run: PrecisionRun, row: PrecisionRow): Promise<void> {
  const { model, settings, progress } = run;
  const { precision } = row;
  const step = async (what: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (error) {
      row.errors.push(`${what}: ${(error as Error).message}`);
      progress(`${precision} · ${what} FAILED: ${firstLine((error as Error).message)}`);
    }
  };
  await step("memory", async () => {
    const result = await measureMemory({ model, precision, threads: settings.threads, batchSize: settings.memoryBatchSize });
    row.memory = { ...result, growthBytes: result.afterBatchRssBytes - result.baseRssBytes, batchSize: settings.memoryBatchSize };
    progress(`${precision} · RSS +${cell(row.memory.growthBytes / MIB)} MiB (session + one batch of ${settings.memoryBatchSize})`);
  });
  await step("raw", async () => {
    const report = await runBaseline({
      model,
      precision,
      threads: settings.threads,
      batchSizes: settings.batchSizes,
      runs: settings.runs,
      warmupRuns: run.quick ? 1 : 3,
      onResult: (b) => progress(`${precision} · raw batch ${b.batchSize}: ${cell(b.imagesPerSecond)} images/s`),
    });
    row.raw = report.results;
  });
  await step("served", async () => {
    row.served = await measureServed(run, precision);
    if (row.served.errorCount > 0) row.errors.push(`served: ${row.served.errorCount} failed requests (${row.served.firstError})`);
    progress(`${precision} · served c=${settings.concurrency}: ${cell(row.served.requestsPerSecond)} req/s, p50 ${cell(row.served.latencyMs.p50)} ms`);
  });
}

async function measureServed(run: PrecisionRun, precision: Precision): Promise<ApiBenchLevel> {
  const { settings } = run;
  run.progress(`${precision} · starting a server (batching ${settings.maxBatchSize} / ${settings.batchTimeout} s, ${settings.workers} worker(s))`);
  const options = {
    api: imageClassifier({ model: run.model, precision }),
    maxBatchSize: settings.maxBatchSize,
    batchTimeout: settings.batchTimeout,
    workersPerDevice: settings.workers,
  };
  const report = await withServerProcess({ kind: "batchwise", options }, (server) =>
    runApiBench({ url: server.url, concurrency: [settings.concurrency], requests: settings.requests, imagesDir: settings.imagesDir, serverPid: server.pid }),
  );
  return report.levels[0];
}

/** One row per precision, then a line per precision that does not run, with the provider's reason. */
export function formatPrecisionTable(report: PrecisionBenchReport): string {
  const { batchSizes, concurrency, photos } = report.settings;
  const table = formatTable(
    [
      "precision",
      "runs here",
      "file MB",
      "RSS +MiB",
      ...batchSizes.map((b) => `raw b=${b} img/s`),
      `served c=${concurrency} req/s`,
      "p50 ms",
      "top-1 = fp32",
      "max |Δp|",
    ],
    report.rows.map((r) => [
      r.precision,
      r.runnable ? (r.errors.length ? "yes (errors)" : "yes") : "no",
      r.fileBytes === null ? "n/a" : (r.fileBytes / 1e6).toFixed(2),
      r.memory ? cell(r.memory.growthBytes / MIB) : "n/a",
      ...batchSizes.map((b) => cell(r.raw.find((x) => x.batchSize === b)?.imagesPerSecond)),
      cell(r.served?.requestsPerSecond),
      cell(r.served?.latencyMs.p50),
      r.agreement ? `${r.agreement.top1Agree}/${r.agreement.photos}` : "n/a",
      r.agreement ? formatDiff(r.agreement.maxAbsProbDiff) : "n/a",
    ]),
  );
  const notes = [
    `RSS +MiB: growth of a fresh process after creating the session and running one batch of ${report.settings.memoryBatchSize}`,
    `agreement: ImageNet softmax over ${photos.length} photos (${photos.join(", ")}) against fp32`,
    ...report.rows.filter((r) => !r.runnable).map((r) => `${r.precision} does not run on this machine: ${r.reason}`),
    ...report.rows.flatMap((r) => r.errors.map((e) => `${r.precision} ${firstLine(e)}`)),
  ];
  return `${table}\n${notes.map((n) => `  ${n}`).join("\n")}`;
}

const MIB = 1024 * 1024;

/** The photos preprocessed exactly as the served classifier's decodeRequest does it (8-bit planes, one per photo). */
async function preprocessPhotos(files: string[]): Promise<Uint8Array[]> {
  const api = new ImageClassifierAPI({ labels: "imagenet" });
  return Promise.all(files.map(async (f) => (await api.decodeRequest({ image: (await readFile(f)).toString("base64") })) as Uint8Array));
}

/**
 * Open the model the way the classifier's setup does (capability check and accuracy guard included, so a precision
 * the provider cannot run fails with its PrecisionUnsupportedError, and int8 is the file the server would serve),
 * classify the photos, release the session.
 */
async function classify(model: string, precision: Precision, threads: number, images: Uint8Array[]) {
  const resolved = await resolveModel(model);
  const run = (session: Session, batch: Uint8Array[]) => runChunked(session, batch, [3, 224, 224], Infinity, normalizeInto);
  const device = { accelerator: "cpu" as const, index: 0, threads, id: "cpu" };
  const opened = await openClassifierModel(resolved, precision, device, run);
  try {
    const logits = await run(opened.session, images);
    return { file: opened.file, probabilities: softmaxRows(Float32Array.from(logits), CLASSES) };
  } finally {
    await opened.session.release();
  }
}

function agreement(probs: Float32Array, reference: Float32Array, photos: string[], names: string[]): PrecisionAgreement {
  const top1 = photos.map((photo, i) => {
    const index = argmax(probs.subarray(i * CLASSES, (i + 1) * CLASSES));
    return { photo, label: names[index] ?? `class ${index}`, probability: probs[i * CLASSES + index] };
  });
  let top1Agree = 0;
  let maxAbsProbDiff = 0;
  for (let i = 0; i < photos.length; i++) {
    const row = probs.subarray(i * CLASSES, (i + 1) * CLASSES);
    const ref = reference.subarray(i * CLASSES, (i + 1) * CLASSES);
    if (argmax(row) === argmax(ref)) top1Agree++;
    for (let c = 0; c < CLASSES; c++) maxAbsProbDiff = Math.max(maxAbsProbDiff, Math.abs(row[c] - ref[c]));
  }
  return { photos: photos.length, top1Agree, maxAbsProbDiff, top1 };
}

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

async function classNamesOf(model: string): Promise<string[]> {
  const { dir } = await resolveModel(model);
  try {
    return loadClassNames(dir);
  } catch {
    return []; // a model folder without class names: top-1 is reported as "class <index>"
  }
}

/** Run ./precision-memory-child in a fresh Node process (through tsx from source, directly from dist/). */
function measureMemory(config: MemoryChildConfig): Promise<MemoryChildResult> {
  const fromSource = fileURLToPath(import.meta.url).endsWith(".ts");
  const entry = fileURLToPath(new URL(fromSource ? "./precision-memory-child.ts" : "./precision-memory-child.js", import.meta.url));
  const root = fileURLToPath(new URL("../../../", import.meta.url));
  const args = [...(fromSource ? ["--import", "tsx"] : []), entry, JSON.stringify(config)];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: process.env });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      const match = /^BATCHWISE_MEMORY (.+)$/m.exec(stdout);
      if (code === 0 && match) resolve(JSON.parse(match[1]) as MemoryChildResult);
      else reject(new Error(`memory child exited (${signal ?? code}): ${stderr.trim().slice(-1500)}`));
    });
  });
}

/** 0 stays "0" (fp32 against itself); anything else in scientific notation, since int8 and fp16 differ by 1e-2 vs 1e-4. */
function formatDiff(value: number): string {
  return value === 0 ? "0" : value.toExponential(1);
}

function firstLine(message: string): string {
  return message.split("\n")[0].slice(0, 200);
}
