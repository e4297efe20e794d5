import { imagePayloads, listImages, runLoad, type BodyForm, type LoadResult, type RequestPayload } from "../load/load.js";
import { cell, formatTable } from "../report/table.js";
import { readMainThreadCpuMicros, withUsage, type UsagePoint } from "../load/usage.js";

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
  /** Requests per concurrency level (at least `waves` × concurrency, see below). Default 128. */
  requests?: number;
  /**
   * Each level sends at least this many waves (waves × concurrency requests), so a high level measures steady
   * state rather than one burst: at c=64, 64 requests are a single wave whose start and tail dominate. Default 1.
   */
  waves?: number;
  /** Folder of photos sent round-robin, in the body form `body`. */
  imagesDir?: string;
  /** How photos travel: `json` = `{"image": base64}`, `binary` = the raw file as `image/jpeg` etc. Default json. */
  body?: BodyForm;
  /** Explicit bodies instead of photos (e.g. for a no-op model); a Buffer is sent as JSON. */
  bodies?: (Buffer | RequestPayload)[];
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
    /** Server process CPU per measured request, µs: every thread, workers included (null without serverPid). */
    serverCpuMicrosPerRequest?: number | null;
    /** The server's main thread alone (HTTP, admission, the hop to the workers) per measured request, µs. */
    mainThreadCpuMicrosPerRequest?: number | null;
    /** Peak resident memory of the server's process tree during the level, MiB (null without serverPid). */
    serverRssMiB?: number | null;
    /** Whole-machine CPU, percent of all cores (includes this load generator). */
    machineCpu: number | null;
    /** This process (the load generator), percent of one core: what the client took from the cores it shares. */
    clientCpu?: number;
    gpuUtilization: number | null;
    gpuMemoryMiB: number | null;
    gpuNote?: string;
    series: UsagePoint[];
  };
}

export interface ApiBenchReport {
  url: string;
  path: string;
  /** The requested minimum per level; each level's own `requests` says what it sent (waves can raise it). */
  requestsPerLevel: number;
  /** Body form of photo requests (absent when explicit bodies were sent). */
  body?: BodyForm;
  levels: ApiBenchLevel[];
}

export const DEFAULT_CONCURRENCY = [1, 8, 32, 64];

export async function runApiBench(options: ApiBenchOptions): Promise<ApiBenchReport> {
  const path = options.path ?? "/predict";
  const requests = options.requests ?? 128;
  const waves = options.waves ?? 1;
  if (!(Number.isInteger(waves) && waves >= 1)) throw new RangeError(`waves must be an integer ≥ 1, got ${waves}`);
  const bodies = options.bodies ?? (options.imagesDir ? await imagePayloads(await listImages(options.imagesDir), options.body ?? "json") : null);
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
    const clientStart = process.cpuUsage();
    const mainThreadStart = options.serverPid ? readMainThreadCpuMicros(options.serverPid) : null;
    const { result, usage } = await withUsage(pids, () => runLoad({ ...load, requests: Math.max(requests, waves * concurrency) }));
    const mainThreadEnd = options.serverPid ? readMainThreadCpuMicros(options.serverPid) : null;
    const client = process.cpuUsage(clientStart);
    const serverCpu = options.serverPid ? usage.processCpu[options.serverPid] ?? null : null;
    const level: ApiBenchLevel = {
      ...result,
      usage: {
        serverCpu,
        serverCpuMicrosPerRequest: serverCpu === null ? null : ((serverCpu / 100) * result.wallSeconds * 1e6) / result.requests,
        mainThreadCpuMicrosPerRequest: mainThreadStart === null || mainThreadEnd === null ? null : (mainThreadEnd - mainThreadStart) / result.requests,
        serverRssMiB: options.serverPid ? usage.processPeakRssMiB[options.serverPid] ?? null : null,
        machineCpu: usage.machineCpu,
        clientCpu: ((client.user + client.system) / 1e6 / result.wallSeconds) * 100,
        gpuUtilization: usage.gpuUtilization,
        gpuMemoryMiB: usage.gpuMemoryMiB,
        ...(usage.gpuNote ? { gpuNote: usage.gpuNote } : {}),
        series: usage.series,
      },
    };
    levels.push(level);
    options.onLevel?.(level);
  }
  return { url: options.url, path, requestsPerLevel: requests, ...(options.bodies ? {} : { body: options.body ?? "json" }), levels };
}

/** The seed's table: one row per concurrency level. */
export function formatApiTable(report: ApiBenchReport): string {
  const hasGpu = report.levels.some((l) => l.usage.gpuUtilization !== null);
  const rows = report.levels.map((l) => [
    String(l.concurrency),
    String(l.requests),
    cell(l.requestsPerSecond),
    cell(l.latencyMs.mean),
    cell(l.latencyMs.p50),
    cell(l.latencyMs.p95),
    cell(l.latencyMs.p99),
    l.errorCount ? `${l.errorCount} (${Object.entries(l.errors).map(([k, v]) => `${k}×${v}`).join(", ")})` : "0",
    cell(l.usage.serverCpu, 0),
    cell(l.usage.serverRssMiB, 0),
    cell(l.usage.machineCpu, 0),
    cell(l.usage.clientCpu ?? null, 0),
    hasGpu ? cell(l.usage.gpuUtilization, 0) : "n/a",
    hasGpu ? cell(l.usage.gpuMemoryMiB, 0) : "n/a",
  ]);
  const table = formatTable(
    ["concurrency", "requests", "req/s", "mean ms", "p50 ms", "p95 ms", "p99 ms", "errors", "server CPU %", "server RSS MiB", "machine CPU %", "client CPU %", "GPU %", "GPU MiB"],
    rows,
  );
  const gpuNote = report.levels.find((l) => l.usage.gpuNote)?.usage.gpuNote;
  const notes = [
    "server CPU: percent of one core (200 = two cores busy); server RSS: peak of its process tree; machine CPU: percent of all cores, load generator included; client CPU: the load generator, percent of one core",
    ...(hasGpu ? [] : [`GPU: ${gpuNote ?? "not available"}`]),
  ];
  return `${table}\n${notes.map((n) => `  ${n}`).join("\n")}`;
}
