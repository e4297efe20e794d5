/**
 * `npx tsx scripts/connection-storm.ts [--idle 2000] [--busy 64] [--seconds 6] [--rounds 3] [--keep-alive 12]`
 *
 * A server in its own process (the no-op model, so the HTTP side is what is measured) serves `busy` closed-loop
 * clients for `seconds`, alone and then beside `idle` keep-alive connections that sent one request and went quiet;
 * alternated `rounds` times so machine noise hits both alike. Prints the busy clients' req/s for each run, the
 * ratio, when the server closed the idle connections (keep-alive timeout `keep-alive` s; Node adds 1 s), and the
 * server's open file descriptors: at baseline, with the idle connections open, and after they closed.
 * The keep-alive timeout is longer than a run so the idle connections stay open through it.
 */
import { scriptFlags } from "../src/bench/flags.js";
import { busyClients, fdCount, openIdleConnections } from "../src/bench/load/connection-storm.js";
import { noopApi } from "../src/bench/servers/noop-api.js";
import { startServerProcess } from "../src/bench/servers/server-process.js";
import { percentile } from "../src/bench/load/stats.js";

const { idle, busy, seconds, rounds, keepAlive } = scriptFlags("connection-storm");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function settleFds(pid: number, target: number, timeoutMs = 10_000) {
  const end = performance.now() + timeoutMs;
  let fds = fdCount(pid);
  while (fds !== null && fds > target && performance.now() < end) {
    await sleep(100);
    fds = fdCount(pid);
  }
  return fds;
}

async function main() {
  const server = await startServerProcess({
    kind: "batchwise",
    options: { api: noopApi(), workersPerDevice: 1, maxBatchSize: 8, batchTimeout: 0.005, keepAliveTimeout: keepAlive },
  });
  try {
    // warm up, then take the baseline with nothing connected
    await busyClients(server.url, { concurrency: busy, seconds: 2 });
    await sleep(keepAlive * 1000 + 2_000);
    const baseline = fdCount(server.pid);
    console.log(`server pid ${server.pid}; baseline ${baseline} open fds; ${busy} busy clients × ${seconds} s, ${idle} idle keep-alive connections, keep-alive ${keepAlive} s`);
    const alone: number[] = [];
    const withIdle: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const a = await busyClients(server.url, { concurrency: busy, seconds });
      alone.push(a.requestsPerSecond);
      // the busy pool's connections close after the keep-alive timeout too; let them, so counts below are the idle ones
      await sleep(keepAlive * 1000 + 2_000);
      const before = fdCount(server.pid);
      const idleConnections = await openIdleConnections(server.url, idle);
      const during = fdCount(server.pid);
      const b = await busyClients(server.url, { concurrency: busy, seconds });
      withIdle.push(b.requestsPerSecond);
      const openAfterRun = idle - idleConnections.closedCount();
      const allClosed = await idleConnections.allClosed(keepAlive * 1000 + 10_000);
      const delays = idleConnections.closeDelaysMs();
      const after = await settleFds(server.pid, baseline ?? 0, keepAlive * 1000 + 5_000);
      console.log(
        `round ${round}: alone ${a.requestsPerSecond.toFixed(0)} req/s (${a.errors} errors), with ${idle} idle ` +
          `${b.requestsPerSecond.toFixed(0)} req/s (${b.errors} errors) = ${((b.requestsPerSecond / a.requestsPerSecond) * 100).toFixed(1)} %; ` +
          `idle still open after the run ${openAfterRun}/${idle}; all closed by the server: ${allClosed} ` +
          `(close after their request: min ${(Math.min(...delays) / 1000).toFixed(1)} s, median ${(percentile(delays, 50) / 1000).toFixed(1)} s, max ${(Math.max(...delays) / 1000).toFixed(1)} s); ` +
          `server fds ${before} before → ${during} with idle open → ${after} after (baseline ${baseline})`,
      );
      idleConnections.destroy();
    }
    const median = (xs: number[]) => percentile(xs, 50);
    console.log(
      `busy req/s, median of ${rounds}: alone ${median(alone).toFixed(0)} [${alone.map((x) => x.toFixed(0)).join(", ")}], ` +
        `with idle ${median(withIdle).toFixed(0)} [${withIdle.map((x) => x.toFixed(0)).join(", ")}] → ${((median(withIdle) / median(alone)) * 100).toFixed(1)} % of alone`,
    );
  } finally {
    await server.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
