import { imageBodies, listImages, runLoad, type LoadResult } from "./load.js";
import { cell, formatTable } from "./table.js";
import { withUsage, type UsagePoint } from "./usage.js";

/**
 * `bench api`: the served throughput and latency of a running server at several concurrency levels, with the
 * server's CPU (and GPU, where there is one) sampled during each level. The server must run in another process
 * (pass its PID for the CPU figures); this process only generates load.
 */

export interface ApiBenchOptions {
  /** Server origin, e.g. "http://127.0.0.1:8000". */
  url: string;
  path?: string;
  concurrency?: number[];
  /** Requests per concurrency level. */
  requests?: number;
  /** Folder of photos sent as `{"image": base64}`, round-robin. */
  imagesDir?: string;
  /** Explicit bodies instead of photos (e.g. for a no-op model). */
  bodies?: Buffer[];
  /** The server's process id: its CPU use is sampled. Without it only machine-wide CPU is reported. */
  serverPid?: number;
  /** Unmeasured requests before each level (at that level's concurrency). Default: one per client. */
  warmupRequests?: number;
  headers?: Record<string, string>;
  timeoutMs?: number;
  onLevel?: (level: ApiBenchLevel) => void;
}

export interface ApiBenchLevel extends LoadResult {
  usage: {
    /** Server process CPU, percent of one core (null without serverPid). */
    serverCpu: number | null;
    /** Whole-machine CPU, percent of all cores (includes this load generator). */
    machineCpu: number | null;
    gpuUtilization: number | null;
    gpuMemoryMiB: number | null;
    gpuNote?: string;
    series: UsagePoint[];
  };
}

export interface ApiBenchReport {
  url: string;
  path: string;
  requestsPerLevel: number;
  levels: ApiBenchLevel[];
}

export const DEFAULT_CONCURRENCY = [1, 8, 32, 64];

export async function runApiBench(options: ApiBenchOptions): Promise<ApiBenchReport> {
  const path = options.path ?? "/predict";
  const requests = options.requests ?? 128;
  const bodies = options.bodies ?? (options.imagesDir ? await imageBodies(await listImages(options.imagesDir)) : null);
  if (!bodies?.length) throw new Error("runApiBench needs imagesDir or bodies");
  const pids = options.serverPid ? [options.serverPid] : [];
  const levels: ApiBenchLevel[] = [];
  for (const concurrency of options.concurrency ?? DEFAULT_CONCURRENCY) {
    const load = {
      url: options.url,
      path,
      concurrency,
      bodies,
      headers: options.headers,
      timeoutMs: options.timeoutMs,
    };
    // Warm-up outside the sampled window, so the usage figures describe the measured requests only.
    const warmupRequests = options.warmupRequests ?? concurrency;
    if (warmupRequests > 0) await runLoad({ ...load, requests: warmupRequests });
    const { result, usage } = await withUsage(pids, () => runLoad({ ...load, requests }));
    const level: ApiBenchLevel = {
      ...result,
      usage: {
        serverCpu: options.serverPid ? usage.processCpu[options.serverPid] ?? null : null,
        machineCpu: usage.machineCpu,
        gpuUtilization: usage.gpuUtilization,
        gpuMemoryMiB: usage.gpuMemoryMiB,
        ...(usage.gpuNote ? { gpuNote: usage.gpuNote } : {}),
        series: usage.series,
      },
    };
    levels.push(level);
    options.onLevel?.(level);
  }
  return { url: options.url, path, requestsPerLevel: requests, levels };
}

/** The seed's table: one row per concurrency level. */
export function formatApiTable(report: ApiBenchReport): string {
  const hasGpu = report.levels.some((l) => l.usage.gpuUtilization !== null);
  const rows = report.levels.map((l) => [
    String(l.concurrency),
    cell(l.requestsPerSecond),
    cell(l.latencyMs.mean),
    cell(l.latencyMs.p50),
    cell(l.latencyMs.p95),
    cell(l.latencyMs.p99),
    l.errorCount ? `${l.errorCount} (${Object.entries(l.errors).map(([k, v]) => `${k}×${v}`).join(", ")})` : "0",
    cell(l.usage.serverCpu, 0),
    cell(l.usage.machineCpu, 0),
    hasGpu ? cell(l.usage.gpuUtilization, 0) : "n/a",
    hasGpu ? cell(l.usage.gpuMemoryMiB, 0) : "n/a",
  ]);
  const table = formatTable(
    ["concurrency", "req/s", "mean ms", "p50 ms", "p95 ms", "p99 ms", "errors", "server CPU %", "machine CPU %", "GPU %", "GPU MiB"],
    rows,
  );
  const gpuNote = report.levels.find((l) => l.usage.gpuNote)?.usage.gpuNote;
  const notes = [
    "server CPU: percent of one core (200 = two cores busy); machine CPU: percent of all cores, load generator included",
    ...(hasGpu ? [] : [`GPU: ${gpuNote ?? "not available"}`]),
  ];
  return `${table}\n${notes.map((n) => `  ${n}`).join("\n")}`;
}
