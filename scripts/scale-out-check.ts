/**
 * The multi-replica check (docs/scaling-out.md; run by .ci/run): three classifier replicas on 127.0.0.1 behind a
 * real HAProxy that health-checks GET /readyz, under continuous load (32 clients, the sample photos as raw image
 * bodies, or base64 JSON where the server takes no raw images). While the load runs it
 *   (a) restarts every replica in turn with SIGTERM (drain, exit, start again, wait until HAProxy has it back);
 *       criterion: zero failed requests;
 *   (b) SIGKILLs one replica; criterion: the only failures are requests that were in flight when it died (HAProxy
 *       retries refused connections and answerless closes on another replica), none after;
 *   (c) reports how the requests spread across the replicas (HAProxy's per-server counters); criterion: every
 *       replica served requests.
 * Prints a summary and exits 1 when a criterion fails. Every wait is bounded, and a watchdog ends the run.
 *
 *   node --import tsx scripts/scale-out-check.ts [--concurrency 32] [--watchdog-seconds 600]
 */
import { scriptFlags } from "../src/bench/flags.js";
import { defaultImagesDir, imagePayloads, listImages } from "../src/bench/load/load.js";
import { summarize } from "../src/bench/load/stats.js";
import { bodyFormOf, checkBodiesFitBuffer, freePort, Haproxy, Replica, sleep } from "./haproxy/cluster.js";
import { startLoad, type RequestRecord, type RunningLoad } from "./haproxy/load.js";

const { concurrency, watchdogSeconds } = scriptFlags("scale-out-check");
const REPLICAS = 3;

const replicas: Replica[] = [];
let proxy: Haproxy | undefined;
let load: RunningLoad | undefined;

async function cleanup() {
  await Promise.allSettled([load?.stop(), ...replicas.map((r) => r.stop("SIGKILL"))]);
  await proxy?.stop();
}

const watchdog = setTimeout(() => {
  console.error(`scale-out check: watchdog fired after ${watchdogSeconds} s`);
  void cleanup().finally(() => process.exit(1));
}, watchdogSeconds * 1000);

interface Phase {
  name: string;
  from: number;
  to: number;
}

async function main(): Promise<boolean> {
  for (let i = 0; i < REPLICAS; i++) replicas.push(new Replica(`r${i + 1}`, await freePort()));
  const t = Date.now();
  await Promise.all(replicas.map((r) => r.start()));
  const info = (await (await fetch(`${replicas[0].url}/info`)).json()) as Record<string, unknown>;
  log(`${REPLICAS} replicas ready in ${((Date.now() - t) / 1000).toFixed(1)} s (ports ${replicas.map((r) => r.port).join(", ")}); /predict idempotent: ${String(findIdempotent(info))}`);
  const form = await bodyFormOf(replicas[0].url);
  const payloads = await imagePayloads(await listImages(defaultImagesDir()), form);
  checkBodiesFitBuffer(payloads);

  proxy = await Haproxy.start(replicas.map((r) => ({ name: r.name, port: r.port })));
  for (const r of replicas) await proxy.waitStatus(r.name, "UP");
  log(`haproxy on ${proxy.url} (stats on port ${proxy.statsPort}), all replicas UP; load: ${concurrency} clients, ${payloads.length} photos as ${form} bodies`);

  load = startLoad({ url: proxy.url, path: "/predict", concurrency, payloads });
  const phases: Phase[] = [];
  const phase = async (name: string, body: () => Promise<unknown>) => {
    const from = load!.now();
    await body();
    phases.push({ name, from, to: load!.now() });
  };

  await phase("warm-up", () => sleep(3000));
  await phase("rolling SIGTERM restart", async () => {
    for (const r of replicas) {
      const t0 = load!.now();
      const exitPromise = r.stop("SIGTERM");
      await proxy!.waitStatus(r.name, "DOWN", 15_000);
      const tDown = load!.now();
      const exit = await exitPromise;
      const tExit = load!.now();
      if (exit.code !== 0) throw new Error(`${r.name} exited with ${exit.signal ?? exit.code} after SIGTERM: ${r.log.slice(-1000)}`);
      await r.start();
      await proxy!.waitStatus(r.name, "UP");
      log(
        `  ${r.name}: SIGTERM → haproxy DOWN ${fmt(tDown - t0)} s → exit 0 ${fmt(tExit - t0)} s → ready and UP again ${fmt(load!.now() - t0)} s`,
      );
    }
  });
  await phase("steady", () => sleep(2000));

  const victim = replicas[1];
  const before = (await proxy.stats()).find((s) => s.name === victim.name)!;
  const killedAt = load.now();
  victim.child!.kill("SIGKILL");
  await phase("SIGKILL one replica", async () => {
    await victim.exited;
    await proxy!.waitStatus(victim.name, "DOWN", 15_000);
    log(`  ${victim.name}: SIGKILL with ${before.current} request(s) in flight on it → haproxy DOWN ${fmt(load!.now() - killedAt)} s`);
    await sleep(3000);
  });
  await phase("recovery", async () => {
    await victim.start();
    await proxy!.waitStatus(victim.name, "UP");
    await sleep(2000);
  });

  const records = await load.stop();
  load = undefined;
  const stats = await proxy.stats();
  return report(records, phases, killedAt, before.current, stats);
}

function report(records: RequestRecord[], phases: Phase[], killedAt: number, inFlightOnVictim: number, stats: Awaited<ReturnType<Haproxy["stats"]>>) {
  const failed = records.filter((r) => r.status !== 200);
  const overlapsKill = (r: RequestRecord) => r.start <= killedAt && r.end >= killedAt;
  const wall = Math.max(...records.map((r) => r.end)) / 1000;
  const ok = records.filter((r) => r.status === 200);
  const latency = summarize(ok.map((r) => r.end - r.start));
  log("");
  log(`requests: ${records.length} sent, ${ok.length} answered 200, ${failed.length} failed, over ${wall.toFixed(1)} s (${(ok.length / wall).toFixed(1)} req/s); latency p50 ${latency.p50.toFixed(0)} ms, p99 ${latency.p99.toFixed(0)} ms`);
  log("phase                      requests  failed");
  for (const p of phases) {
    const inPhase = records.filter((r) => r.start >= p.from && r.start < p.to);
    log(`${p.name.padEnd(26)} ${String(inPhase.length).padStart(8)}  ${String(inPhase.filter((r) => r.status !== 200).length).padStart(6)}`);
  }
  const kinds = new Map<string, number>();
  for (const r of failed) kinds.set(`${r.status || "no response"} ${r.error ?? ""}`.trim(), (kinds.get(`${r.status || "no response"} ${r.error ?? ""}`.trim()) ?? 0) + 1);
  for (const [kind, n] of kinds) log(`  failure ×${n}: ${kind}`);

  const total2xx = stats.reduce((sum, s) => sum + s.responses2xx, 0);
  log("replica  status  2xx     share   5xx  retries  redispatches  went DOWN");
  for (const s of stats) {
    log(
      `${s.name.padEnd(8)} ${s.status.padEnd(7)} ${String(s.responses2xx).padStart(6)}  ${((100 * s.responses2xx) / Math.max(1, total2xx)).toFixed(1).padStart(5)} %  ${String(s.responses5xx).padStart(4)}  ${String(s.retries).padStart(7)}  ${String(s.redispatches).padStart(12)}  ${String(s.downs).padStart(9)}`,
    );
  }

  const rolling = phases.find((p) => p.name === "rolling SIGTERM restart")!;
  const criteria: [string, boolean][] = [
    ["(a) rolling SIGTERM restart: zero failed requests", failed.filter((r) => !overlapsKill(r) && r.start < rolling.to).length === 0],
    [
      `(b) SIGKILL: failures only among requests in flight at the kill (${failed.filter(overlapsKill).length} failed, at most ${concurrency} can be in flight)`,
      failed.every(overlapsKill) && failed.length <= concurrency,
    ],
    ["(c) every replica served requests", stats.length === REPLICAS && stats.every((s) => s.responses2xx > 0)],
    ["load ran throughout (requests answered in every phase)", phases.every((p) => ok.some((r) => r.end >= p.from && r.end <= p.to))],
  ];
  log("");
  for (const [what, passed] of criteria) log(`${passed ? "PASS" : "FAIL"} ${what}`);
  return criteria.every(([, passed]) => passed);
}

/** The /predict endpoint's `idempotent` flag in /info, wherever the server puts it (top level or per endpoint). */
function findIdempotent(info: unknown): unknown {
  if (!info || typeof info !== "object") return undefined;
  if ("idempotent" in info) return (info as { idempotent: unknown }).idempotent;
  for (const value of Object.values(info)) {
    const found = findIdempotent(value);
    if (found !== undefined) return found;
  }
  return undefined;
}

const fmt = (ms: number) => (ms / 1000).toFixed(1);
function log(line: string) {
  console.log(line);
}

main()
  .then(async (passed) => {
    await cleanup();
    clearTimeout(watchdog);
    console.log(passed ? "scale-out check passed" : "scale-out check FAILED");
    process.exit(passed ? 0 : 1);
  })
  .catch(async (error) => {
    console.error(`scale-out check failed: ${(error as Error).stack ?? error}`);
    await cleanup();
    process.exit(1);
  });
