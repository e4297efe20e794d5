import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { runLoad } from "../load/load.js";
import { noopApi } from "../servers/noop-api.js";
import { startServerProcess } from "../servers/server-process.js";
import { cell, formatTable } from "../report/table.js";
import { readMainThreadCpuMicros } from "../load/usage.js";

/**
 * `bench main-thread`: what the server's main thread spends per request, piece by piece. The no-op model is served
 * in a child process under a V8 CPU profile and closed-loop load; the main thread's own CPU time (its task in
 * /proc, so worker threads and libuv's pool do not count) divided by the requests gives µs per request, and the
 * profile's self time, grouped by where it is spent, splits it. Figures are proportions of real CPU time, so they
 * hold up better on a busy machine than requests per second do.
 */

export interface MainThreadOptions {
  concurrency?: number;
  requests?: number;
  /** Server options for the no-op endpoint (default: npm start's batching, 64 / 0.01 s, one worker). */
  batchwise?: { maxBatchSize?: number; batchTimeout?: number; workersPerDevice?: number };
  bodyBytes?: number;
}

export interface MainThreadReport {
  concurrency: number;
  requests: number;
  requestsPerSecond: number;
  /** Main-thread CPU per request, µs (utime + stime of the main thread's task). */
  cpuMicrosPerRequest: number;
  /** Share of the main thread's busy samples and µs per request, by piece. */
  pieces: { piece: string; share: number; micros: number }[];
  batchwise: NonNullable<MainThreadOptions["batchwise"]>;
}

/** Where a profile frame's self time goes; first match wins. */
const PIECES: [string, (url: string, fn: string) => boolean][] = [
  ["garbage collection", (_u, fn) => fn === "(garbage collector)"],
  ["V8 and native code not attributed to a function", (_u, fn) => fn === "(program)"],
  ["worker hop (postMessage, MessagePort, pool)", (u, fn) => /server\/worker-pool|worker-protocol|internal\/worker|internal\/per_context\/messageport/.test(u) || /^(postMessage|receiveMessageOnPort)$/.test(fn)],
  ["metrics (prom-client, hooks)", (u) => /prom-client|server\/hooks|server\/metrics/.test(u)],
  ["body parsing (JSON)", (u, fn) => /server\/json-body|content-type-parser|secure-json-parse/.test(u) || (u === "" && fn === "parse")],
  ["admission, queue, batching", (u) => /server\/(endpoint|batcher|routes|channel|run-batch|spec)|specs\/plain|abort_controller|event_target/.test(u)],
  ["encoding the response", (u, fn) => /fast-json-stringify|serializ/.test(u + fn) || (u === "" && fn === "stringify")],
  ["fastify (routing, hooks, reply)", (u) => /fastify|find-my-way|avvio|light-my-request/.test(u)],
  ["HTTP parsing and socket I/O", (u, fn) => /_http_|node:net|stream_base_commons|internal\/streams|node:stream|internal\/http/.test(u) || /^(writev|writeUtf8String|writeBuffer|read|readStop|readStart|close|shutdown|onStreamRead|execute)$/.test(fn)],
  ["promises, timers and ticks", (u, fn) => /task_queues|timers|async_hooks/.test(u) || fn === "runMicrotasks"],
];

export async function runMainThreadBench(options: MainThreadOptions = {}): Promise<MainThreadReport> {
  const concurrency = options.concurrency ?? 64;
  const requests = options.requests ?? 20_000;
  const batchwise = options.batchwise ?? { maxBatchSize: 64, batchTimeout: 0.01, workersPerDevice: 1 };
  const body = Buffer.from(JSON.stringify({ text: "x".repeat(Math.max(0, (options.bodyBytes ?? 1024) - 11)) }));
  const profileDir = mkdtempSync(path.join(os.tmpdir(), "batchwise-profile-"));
  try {
    const server = await startServerProcess(
      { kind: "batchwise", options: { api: noopApi(), ...batchwise } },
      { nodeArgs: ["--cpu-prof", "--cpu-prof-dir", profileDir] },
    );
    let result;
    let cpuMicros;
    const window = { start: 0, end: 0 };
    try {
      await runLoad({ url: server.url, path: "/predict", concurrency, requests: Math.min(5000, requests), bodies: [body] });
      const before = mainThreadCpuMicros(server.pid);
      window.start = monotonicMicros();
      result = await runLoad({ url: server.url, path: "/predict", concurrency, requests, bodies: [body] });
      window.end = monotonicMicros();
      cpuMicros = mainThreadCpuMicros(server.pid) - before;
    } finally {
      await server.stop();
    }
    const mainProfile = readdirSync(profileDir).filter((f) => f.endsWith(".cpuprofile")).map((f) => path.join(profileDir, f))
      .find((f) => /\.0\.\d+\.cpuprofile$/.test(f));
    if (!mainProfile) throw new Error("the server wrote no main-thread CPU profile");
    const perRequest = cpuMicros / requests;
    const shares = profileShares(JSON.parse(readFileSync(mainProfile, "utf8")), window);
    return {
      concurrency,
      requests,
      requestsPerSecond: result.requestsPerSecond,
      cpuMicrosPerRequest: perRequest,
      pieces: shares.map(([piece, share]) => ({ piece, share, micros: share * perRequest })),
      batchwise,
    };
  } finally {
    rmSync(profileDir, { recursive: true, force: true });
  }
}

/** The server's main thread's CPU time, µs; a server that cannot be read has nothing to report. */
function mainThreadCpuMicros(pid: number): number {
  const micros = readMainThreadCpuMicros(pid);
  if (micros === null) throw new Error(`cannot read the main thread's CPU time of process ${pid} (/proc needed)`);
  return micros;
}

interface CpuProfile {
  startTime: number;
  nodes: { id: number; callFrame: { functionName: string; url: string } }[];
  samples: number[];
  timeDeltas: number[];
}

/** CLOCK_MONOTONIC in µs: the clock V8 stamps profile samples with on Linux. */
const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

/**
 * The busy (non-idle) self time of a profile split into PIECES, largest first; the rest is "other". Only samples
 * inside `window` (monotonic µs) count, so startup and warm-up do not.
 */
function profileShares(profile: CpuProfile, window?: { start: number; end: number }): [string, number][] {
  const pieceOf = new Map<number, string>();
  for (const node of profile.nodes) {
    const { url, functionName } = node.callFrame;
    if (functionName === "(idle)") continue;
    pieceOf.set(node.id, PIECES.find(([, test]) => test(url, functionName))?.[0] ?? "other (Node internals, our glue)");
  }
  const time = new Map<string, number>();
  let busy = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    at += dt;
    const piece = pieceOf.get(id);
    if (!piece || (window && (at < window.start || at > window.end))) return;
    busy += dt;
    time.set(piece, (time.get(piece) ?? 0) + dt);
  });
  return [...time].map(([piece, t]): [string, number] => [piece, busy ? t / busy : 0]).sort((a, b) => b[1] - a[1]);
}

export function formatMainThreadTable(report: MainThreadReport): string {
  const header = `main thread: ${cell(report.cpuMicrosPerRequest, 1)} µs CPU per request at c=${report.concurrency} (${cell(report.requestsPerSecond)} req/s, ${report.requests} requests, no-op model, ${JSON.stringify(report.batchwise)})`;
  return `${header}\n${formatTable(["piece", "share", "µs / request"], report.pieces.map((p) => [p.piece, `${cell(100 * p.share, 1)} %`, cell(p.micros, 1)]))}`;
}
