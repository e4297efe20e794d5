import type { LoadResult } from "../load/load.js";
import { runApiBench, DEFAULT_CONCURRENCY, type ApiBenchLevel } from "./api-bench.js";
import { noopApi } from "../servers/noop-api.js";
import { startServerProcess } from "../servers/server-process.js";
import type { ChildServerConfig } from "../servers/serve-child.js";
import { cell, formatTable } from "../report/table.js";

/**
 * `bench overhead`: what batchwise costs per request with no model in the way. The same JSON body goes to (a) a
 * no-op model served by batchwise (JSON parse, decodeRequest, queue, a round trip to a worker thread, encode) and
 * (b) a bare fastify route that echoes it. Each server runs in its own fresh process; the ratio is the overhead.
 */

export interface OverheadOptions {
  concurrency?: number[];
  requests?: number;
  /** Bytes of the request body (a JSON string field of this size). Default 1024. */
  bodyBytes?: number;
  /** Extra server options for the batchwise side (e.g. maxBatchSize, workersPerDevice). */
  batchwise?: { maxBatchSize?: number; batchTimeout?: number; workersPerDevice?: number };
  onLevel?: (server: string, level: LoadResult) => void;
}

interface OverheadSide {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
  /** The server process's CPU per request (all threads), µs; null where /proc could not be read. */
  cpuMicrosPerRequest?: number | null;
}

export interface OverheadRow {
  concurrency: number;
  batchwise: OverheadSide;
  bareFastify: OverheadSide;
  /** batchwise req/s ÷ bare fastify req/s. */
  throughputRatio: number;
  /** batchwise CPU per request ÷ bare fastify's: what the framework costs above fastify, on any machine. */
  cpuRatio?: number | null;
}

export interface OverheadReport {
  bodyBytes: number;
  requestsPerLevel: number;
  batchwiseOptions: NonNullable<OverheadOptions["batchwise"]>;
  rows: OverheadRow[];
}

export async function runOverhead(options: OverheadOptions = {}): Promise<OverheadReport> {
  const bodyBytes = options.bodyBytes ?? 1024;
  const requests = options.requests ?? 2000;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const body = Buffer.from(JSON.stringify({ text: "x".repeat(Math.max(0, bodyBytes - 11)) }));
  const batchwiseOptions = options.batchwise ?? {};
  const servers: [string, ChildServerConfig][] = [
    ["batchwise", { kind: "batchwise", options: { api: noopApi(), ...batchwiseOptions } }],
    ["bare fastify", { kind: "bare-fastify", path: "/predict" }],
  ];
  // Both servers run for the whole comparison and the levels alternate between them (A, B, A, B…), so a burst of
  // noise from other work on the machine lands on both sides instead of skewing one.
  const started = await Promise.all(servers.map(([, config]) => startServerProcess(config)));
  const results = new Map<string, ApiBenchLevel[]>(servers.map(([name]) => [name, []]));
  try {
    for (const c of concurrency) {
      for (const [i, [name]] of servers.entries()) {
        const report = await runApiBench({
          url: started[i].url,
          concurrency: [c],
          requests,
          bodies: [body],
          serverPid: started[i].pid,
          // Enough unmeasured requests for the JIT to settle at each level: a fresh server (the batching-off run starts
          // straight at c=64) reached about half its steady rate in the first thousand.
          warmupRequests: Math.max(5000, requests),
        });
        results.get(name)!.push(report.levels[0]);
        options.onLevel?.(name, report.levels[0]);
      }
    }
  } finally {
    await Promise.all(started.map((server) => server.stop()));
  }
  const pick = (l: ApiBenchLevel): OverheadSide => ({
    requestsPerSecond: l.requestsPerSecond,
    p50: l.latencyMs.p50,
    p99: l.latencyMs.p99,
    errors: l.errorCount,
    cpuMicrosPerRequest: l.usage.serverCpuMicrosPerRequest ?? null,
  });
  const rows = concurrency.map((c, i): OverheadRow => {
    const ours = results.get("batchwise")![i];
    const bare = results.get("bare fastify")![i];
    return {
      concurrency: c,
      batchwise: pick(ours),
      bareFastify: pick(bare),
      throughputRatio: bare.requestsPerSecond > 0 ? ours.requestsPerSecond / bare.requestsPerSecond : 0,
      cpuRatio: ratio(ours.usage.serverCpuMicrosPerRequest, bare.usage.serverCpuMicrosPerRequest),
    };
  });
  return { bodyBytes: body.length, requestsPerLevel: requests, batchwiseOptions, rows };
}

export function formatOverheadTable(report: OverheadReport): string {
  return formatTable(
    ["concurrency", "batchwise req/s", "p50 ms", "p99 ms", "bare fastify req/s", "p50 ms", "p99 ms", "ratio", "CPU µs/req", "bare CPU µs/req", "CPU ratio", "errors"],
    report.rows.map((r) => [
      String(r.concurrency),
      cell(r.batchwise.requestsPerSecond),
      cell(r.batchwise.p50, 2),
      cell(r.batchwise.p99, 2),
      cell(r.bareFastify.requestsPerSecond),
      cell(r.bareFastify.p50, 2),
      cell(r.bareFastify.p99, 2),
      cell(r.throughputRatio, 2),
      cell(r.batchwise.cpuMicrosPerRequest),
      cell(r.bareFastify.cpuMicrosPerRequest),
      cell(r.cpuRatio, 2),
      String(r.batchwise.errors + r.bareFastify.errors),
    ]),
  );
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a != null && b != null && b > 0 ? a / b : null;
}
