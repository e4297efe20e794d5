/**
 * `npm run soak -- --minutes 5 --concurrency 64`: sustained real-image load against the classifier served in a
 * child process, to show what a benchmark of a few seconds cannot: that errors stay at zero, latency does not drift,
 * and the server's memory levels off instead of growing (a leak shows as RSS climbing window after window).
 *
 * Closed loop: `concurrency` clients each send a photo, wait for the whole answer, check it, and send the next,
 * for the whole duration. Results are cut into windows (default 30 s): requests, errors, throughput, p50/p99
 * latency, and the server's resident memory read from /proc at the end of each window. A warm-up period before the
 * first window lets allocators and onnxruntime's arenas reach their working size, so "RSS at start" is the
 * steady-state baseline rather than the freshly started process. Not part of CI: it runs for minutes.
 *
 * What grows is anonymous memory (the "anon" column), not mapped files. On the 2-core dev machine (2026-12-02, one
 * 10-minute run each, under other load): glibc's default malloc arenas (8 per core; model threads, libuv's pool
 * and the workers each take one) gave 595 → 670 MiB first to last window, median trend +3.5 %; the same run with
 * MALLOC_ARENA_MAX=2 in the server's environment gave 536 → 563 MiB, +1.1 %. The variable must be set before the
 * process starts (Dockerfile ENV, the shell), so this measures whatever the environment sets.
 */
import { readFileSync } from "node:fs";
import { Pool } from "undici";
import { imageClassifier } from "../../classifier/image-classifier.js";
import type { PrecisionChoice } from "../../api/model-api.js";
import { imageBodies, listImages } from "../load/load.js";
import { startServerProcess } from "../servers/server-process.js";
import { cell, formatTable } from "../report/table.js";
import { percentile } from "../load/stats.js";

export interface SoakOptions {
  minutes: number;
  concurrency: number;
  /** Seconds per reported window. */
  windowSeconds: number;
  /** Seconds of load before measuring starts. */
  warmupSeconds: number;
  imagesDir: string;
  maxBatchSize: number;
  batchTimeout: number;
  workers: number;
  precision: PrecisionChoice;
  /** Per-request limit; a request past it counts as an error ("timeout"). */
  requestTimeoutMs: number;
}

interface SoakWindow {
  /** Seconds since measuring started, at the end of the window. */
  endSeconds: number;
  requests: number;
  errors: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Server RSS at the end of the window, MiB. */
  rssMiB: number | null;
  /**
   * The anonymous part of it (heaps, arenas, buffers), MiB: what grows with a leak. The rest is mapped files (the
   * model, shared libraries), paged in as they are used.
   */
  anonMiB: number | null;
}

export interface SoakReport {
  options: SoakOptions;
  serverPid: number;
  windows: SoakWindow[];
  requests: number;
  errors: number;
  /** Errors by kind: HTTP status, "wrong-answer", "timeout", "connection". */
  errorKinds: Record<string, number>;
  firstError?: string;
  /** Server RSS after warm-up, at the end, and the largest seen, MiB. */
  rssStartMiB: number | null;
  rssEndMiB: number | null;
  rssMaxMiB: number | null;
  /** (end − start) / start, percent. */
  rssGrowthPercent: number | null;
  /**
   * Median RSS of the second half of the windows against the first half, percent. RSS swings by ±50 MiB between
   * two readings under load (buffers of each batch, garbage collection), so two single readings can show ±10 % either
   * way; a leak shows here as a steady positive trend.
   */
  rssTrendPercent: number | null;
}

/** Expected top label per photo in Cat/Dog mode, so a wrong answer counts as an error, not a success. */
function expectedLabel(file: string): string | undefined {
  if (/dog/i.test(file)) return "Dog";
  if (/chelsea|wikkie|cat/i.test(file)) return "Cat";
  if (/coffee/i.test(file)) return "Other";
  return undefined;
}

export async function runSoak(options: SoakOptions, progress: (line: string) => void = () => {}): Promise<SoakReport> {
  const files = await listImages(options.imagesDir);
  const photos: SoakPhoto[] = (await imageBodies(files)).map((body, i) => ({ file: files[i], body, expected: expectedLabel(files[i]) }));
  const server = await startServerProcess({
    kind: "batchwise",
    options: {
      api: imageClassifier({ labels: "cat-dog", precision: options.precision }),
      maxBatchSize: options.maxBatchSize,
      batchTimeout: options.batchTimeout,
      workersPerDevice: options.workers,
      accelerator: "cpu",
    },
  });
  progress(`server pid ${server.pid} at ${server.url}; ${files.length} photos; warming up ${options.warmupSeconds} s`);
  const pool = new Pool(server.url, {
    connections: options.concurrency,
    pipelining: 1,
    headersTimeout: options.requestTimeoutMs,
    bodyTimeout: options.requestTimeoutMs,
  });
  const load = startClosedLoop(pool, photos, options.concurrency);
  let windows: SoakWindow[] = [];
  let rssStartMiB: number | null = null;
  try {
    await sleep(options.warmupSeconds * 1000);
    rssStartMiB = rssMiB(server.pid);
    windows = await measureWindows(options, server.pid, load, progress);
  } finally {
    await load.stop();
    await pool.close();
    await server.stop();
  }
  return summarizeSoak(options, server.pid, windows, load.samples, rssStartMiB);
}

interface SoakPhoto {
  file: string;
  body: Buffer;
  /** The top label it must get; undefined: any answer counts. */
  expected: string | undefined;
}

interface Sample {
  at: number;
  ms: number;
  error?: string;
  detail?: string;
}

interface ClosedLoop {
  /** What the clients saw since `measure()`, in order. */
  samples: Sample[];
  measure(): void;
  stop(): Promise<void>;
}

/** `concurrency` clients, each sending the photos round-robin and the next as soon as the answer is read. */
function startClosedLoop(pool: Pool, photos: SoakPhoto[], concurrency: number): ClosedLoop {
  const samples: Sample[] = [];
  let measuring = false;
  let stopped = false;
  let sent = 0;
  const clients = Array.from({ length: concurrency }, async () => {
    while (!stopped) {
      const sample = await sendPhoto(pool, photos[sent++ % photos.length]);
      if (measuring && !stopped) samples.push(sample);
    }
  });
  return {
    samples,
    measure: () => void (measuring = true),
    stop: async () => {
      stopped = true;
      await Promise.all(clients);
    },
  };
}

/** One request; a wrong top label, a non-200, a timeout or a broken connection is an error sample. */
async function sendPhoto(pool: Pool, photo: SoakPhoto): Promise<Sample> {
  const start = performance.now();
  try {
    const response = await pool.request({ path: "/predict", method: "POST", headers: { "content-type": "application/json" }, body: photo.body });
    const text = await response.body.text();
    const ms = performance.now() - start;
    if (response.statusCode !== 200) return { at: performance.now(), ms, error: String(response.statusCode), detail: text.slice(0, 300) };
    const label = (JSON.parse(text) as { predictions?: { label: string }[] }).predictions?.[0]?.label;
    if (photo.expected && label !== photo.expected) {
      return { at: performance.now(), ms, error: "wrong-answer", detail: `${photo.file}: ${label}, expected ${photo.expected}` };
    }
    return { at: performance.now(), ms };
  } catch (error) {
    const code = (error as { code?: string }).code ?? "";
    const kind = code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT" ? "timeout" : "connection";
    return { at: performance.now(), ms: performance.now() - start, error: kind, detail: (error as Error).message };
  }
}

/** Cut the measured load into windows, reading the server's memory at the end of each. */
async function measureWindows(options: SoakOptions, pid: number, load: ClosedLoop, progress: (line: string) => void): Promise<SoakWindow[]> {
  const windows: SoakWindow[] = [];
  load.measure();
  const measureStart = performance.now();
  const windowCount = Math.max(1, Math.round((options.minutes * 60) / options.windowSeconds));
  let taken = 0;
  for (let w = 1; w <= windowCount; w++) {
    await sleep(measureStart + w * options.windowSeconds * 1000 - performance.now());
    const inWindow = load.samples.slice(taken);
    taken = load.samples.length;
    const ok = inWindow.filter((s) => !s.error).map((s) => s.ms);
    const window: SoakWindow = {
      endSeconds: (performance.now() - measureStart) / 1000,
      requests: inWindow.length,
      errors: inWindow.length - ok.length,
      requestsPerSecond: inWindow.length / options.windowSeconds,
      p50Ms: percentile(ok, 50),
      p99Ms: percentile(ok, 99),
      rssMiB: rssMiB(pid),
      anonMiB: rssMiB(pid, "RssAnon"),
    };
    windows.push(window);
    progress(
      `${cell(window.endSeconds, 0).padStart(5)} s  ${window.requests} requests, ${window.errors} errors, ` +
        `${cell(window.requestsPerSecond)} req/s, p50 ${cell(window.p50Ms)} ms, p99 ${cell(window.p99Ms)} ms, RSS ${cell(window.rssMiB)} MiB (anon ${cell(window.anonMiB)})`,
    );
  }
  return windows;
}

function summarizeSoak(options: SoakOptions, serverPid: number, windows: SoakWindow[], samples: Sample[], rssStartMiB: number | null): SoakReport {
  const errorKinds: Record<string, number> = {};
  let firstError: string | undefined;
  for (const sample of samples) {
    if (!sample.error) continue;
    errorKinds[sample.error] = (errorKinds[sample.error] ?? 0) + 1;
    firstError ??= `${sample.error}: ${sample.detail}`;
  }
  const rssValues = windows.map((w) => w.rssMiB).filter((v): v is number => v !== null);
  const rssEndMiB = rssValues.length ? rssValues[rssValues.length - 1] : null;
  const half = Math.floor(rssValues.length / 2);
  const firstHalf = percentile(rssValues.slice(0, half), 50);
  const secondHalf = percentile(rssValues.slice(rssValues.length - half), 50);
  return {
    options,
    serverPid,
    windows,
    requests: windows.reduce((n, w) => n + w.requests, 0),
    errors: windows.reduce((n, w) => n + w.errors, 0),
    errorKinds,
    ...(firstError === undefined ? {} : { firstError }),
    rssStartMiB,
    rssEndMiB,
    rssMaxMiB: rssValues.length ? Math.max(...rssValues) : null,
    rssGrowthPercent: rssStartMiB && rssEndMiB !== null ? ((rssEndMiB - rssStartMiB) / rssStartMiB) * 100 : null,
    rssTrendPercent: half > 0 ? ((secondHalf - firstHalf) / firstHalf) * 100 : null,
  };
}

export function formatSoakReport(report: SoakReport): string {
  const rows = report.windows.map((w) => [
    cell(w.endSeconds, 0),
    String(w.requests),
    String(w.errors),
    cell(w.requestsPerSecond),
    cell(w.p50Ms),
    cell(w.p99Ms),
    cell(w.rssMiB),
    cell(w.anonMiB),
  ]);
  const table = formatTable(["end (s)", "requests", "errors", "req/s", "p50 ms", "p99 ms", "RSS MiB", "anon MiB"], rows);
  const o = report.options;
  return [
    `soak: ${o.minutes} min at concurrency ${o.concurrency}, ${o.windowSeconds} s windows after ${o.warmupSeconds} s warm-up; ` +
      `classifier ${o.precision}, ${o.workers} worker(s), batch ≤ ${o.maxBatchSize} / ${o.batchTimeout} s`,
    table,
    `total: ${report.requests} requests, ${report.errors} errors${report.errors ? ` ${JSON.stringify(report.errorKinds)}` : ""}`,
    ...(report.firstError ? [`first error: ${report.firstError}`] : []),
    `server RSS: ${cell(report.rssStartMiB)} MiB after warm-up → ${cell(report.rssEndMiB)} MiB at the end ` +
      `(max ${cell(report.rssMaxMiB)} MiB, growth ${cell(report.rssGrowthPercent)} %); ` +
      `median of the second half of the windows vs the first: ${cell(report.rssTrendPercent)} %`,
  ].join("\n");
}

/** Resident set size of a process (or one part of it: RssAnon, RssFile) from /proc, MiB; null without /proc. */
function rssMiB(pid: number, field: "VmRSS" | "RssAnon" | "RssFile" = "VmRSS"): number | null {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
