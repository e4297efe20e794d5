import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { busyClients, fdCount, openIdleConnections } from "../src/bench/load/connection-storm.js";
import { startChild, type ChildServer } from "./fixtures/child-server.js";

// 2,000 idle keep-alive connections beside 64 busy clients: the busy ones are all served, the server closes every idle
// connection once the keep-alive timeout has passed, and its open file descriptors come back to where they were.
// Speed (the busy clients' throughput with and without the idle crowd) is measured by scripts/connection-storm.ts.

const IDLE = 2_000;
const KEEP_ALIVE_S = 10;

let server: ChildServer;
let pid: number;

beforeAll(async () => {
  // its own process, so its descriptors are only its own
  server = await startChild(["test/fixtures/serve-echo.ts", JSON.stringify({ keepAliveTimeout: KEEP_ALIVE_S })], /^URL (\S+)$/m);
  pid = server.child.pid!;
}, 60_000);

afterAll(async () => {
  server?.child.kill("SIGTERM");
  await server?.exited;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The server's descriptor count once it stops falling (closing is asynchronous), within `ms`. */
async function fdsSettledTo(target: number, ms: number): Promise<number> {
  const end = performance.now() + ms;
  let fds = fdCount(pid)!;
  while (fds > target && performance.now() < end) {
    await sleep(100);
    fds = fdCount(pid)!;
  }
  return fds;
}

describe.skipIf(fdCount(process.pid) === null)("connection storm", () => {
  it(`${IDLE} idle keep-alive connections beside 64 busy clients: all served, all idle closed after the timeout, fds back to baseline`, async () => {
    // warm up (workers, JIT, pools), let those connections time out, then count
    await busyClients(server.url, { concurrency: 8, seconds: 0.5 });
    await sleep(KEEP_ALIVE_S * 1000 + 1_500);
    const baseline = fdCount(pid)!;

    const idle = await openIdleConnections(server.url, IDLE);
    const withIdle = fdCount(pid)!;
    // Node closes idle keep-alive sockets after keepAliveTimeout (+1 s it adds): all are still open during this run
    const busy = await busyClients(server.url, { concurrency: 64, seconds: 1 });
    const openAfterBusy = IDLE - idle.closedCount();
    const closedByServer = await idle.allClosed(KEEP_ALIVE_S * 1000 + 20_000);
    const after = await fdsSettledTo(baseline, 15_000);
    const delays = idle.closeDelaysMs();
    console.log(
      `connection storm: server fds ${baseline} → ${withIdle} with ${IDLE} idle open → ${after} after; ` +
        `busy: ${busy.requests} served, ${busy.errors} errors; idle closed by the server: ${idle.closedCount()}/${IDLE}, ` +
        `${(Math.min(...delays) / 1000).toFixed(1)}–${(Math.max(...delays) / 1000).toFixed(1)} s after their request`,
    );
    expect(withIdle - baseline).toBeGreaterThanOrEqual(IDLE);
    expect(busy.errors, busy.firstError).toBe(0);
    expect(busy.requests).toBeGreaterThan(0);
    expect(openAfterBusy).toBe(IDLE);
    expect(closedByServer).toBe(true);
    // none closed before the keep-alive timeout
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(KEEP_ALIVE_S * 1000 - 50);
    expect(after).toBeLessThanOrEqual(baseline);
    // and the server still serves
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  }, 120_000);
});
