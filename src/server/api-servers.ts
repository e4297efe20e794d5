/**
 * Several HTTP processes on one port (LitServe's `num_api_servers`). One main thread parses HTTP, runs
 * decodeRequest/encodeResponse and hands work to the model workers: on a machine with many cores it tops out before
 * the models do. `apiServers: N` forks N processes with node:cluster, which hands each new connection to the next
 * process in turn; each process runs its own model workers, and the cores are split between all of them.
 *
 * The first process (the cluster's primary) serves nothing: it starts the API servers, starts another when one
 * dies after it was ready, stops when one fails before it was ready, and relays SIGTERM/SIGINT so each drains.
 */
import cluster from "node:cluster";
import { libuvPoolSize } from "../runtime/cores.js";

const READY = "batchwise:api-server-ready";

/** Whether this process is one of several API servers, and which (1-based, as cluster numbers them). */
export function apiServerIndex(): number | undefined {
  return cluster.isWorker ? cluster.worker!.id : undefined;
}

/** In an API server: tell the primary that this process listens and its models are set up. */
export function reportApiServerReady(): void {
  if (cluster.isWorker) process.send?.(READY);
}

/** In the primary: run `count` API servers until a signal stops them; never resolves. */
export function superviseApiServers(count: number, log: (line: string) => void): Promise<never> {
  let stopping = false;
  const start = () => {
    // a new process: its libuv pool (image decoding) can still be sized, one thread per core
    const server = cluster.fork({ UV_THREADPOOL_SIZE: String(libuvPoolSize()) });
    let ready = false;
    server.on("message", (message) => {
      if (message === READY) ready = true;
    });
    server.on("exit", (code, signal) => {
      if (stopping) {
        if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
        return;
      }
      if (!ready) {
        log(`API server ${server.process.pid} failed before it was ready (${signal ?? `exit ${code}`}): stopping the others`);
        stop("SIGINT", 1);
        return;
      }
      log(`API server ${server.process.pid} died (${signal ?? `exit ${code}`}): starting another`);
      start();
    });
  };
  const stop = (signal: NodeJS.Signals, exitCode = 0) => {
    stopping = true;
    process.exitCode = exitCode;
    const servers = Object.values(cluster.workers ?? {});
    if (servers.length === 0) process.exit(exitCode);
    for (const server of servers) server?.process.kill(signal);
  };
  for (let i = 0; i < count; i++) start();
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  log(`${count} API servers (node:cluster, one port, connections handed out in turn)`);
  return new Promise<never>(() => {});
}
