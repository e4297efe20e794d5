/**
 * Throughput and tail latency of 1, 2 and 3 classifier replicas behind HAProxy on this machine (docs/scaling-out.md),
 * plus one replica reached directly (what HAProxy's hop costs). Three replicas start once; each round puts
 * an HAProxy in front of the first N and runs a closed-loop load of real photos. Rounds interleave the
 * configurations (1, 2, 3, direct, 1, 2, 3, direct, …) so a busy neighbour on a shared machine hits them alike.
 *
 *   node --import tsx scripts/scale-out-bench.ts [--rounds 2] [--requests 480] [--concurrency 32] [--form binary|json (default: binary if the server takes raw images)]
 */
import { scriptFlags } from "../src/bench/flags.js";
import { defaultImagesDir, imagePayloads, listImages, runLoad, type BodyForm, type LoadResult } from "../src/bench/load/load.js";
import { bodyFormOf, checkBodiesFitBuffer, freePort, Haproxy, Replica } from "./haproxy/cluster.js";

const { rounds, requests, concurrency, form: formFlag, maxBatchSize } = scriptFlags("scale-out-bench");

const replicas: Replica[] = [];
let proxy: Haproxy | undefined;

async function main() {
  for (let i = 0; i < 3; i++) replicas.push(new Replica(`r${i + 1}`, await freePort(), { args: ["--max-batch-size", String(maxBatchSize)] }));
  await Promise.all(replicas.map((r) => r.start()));
  const form: BodyForm = formFlag ?? (await bodyFormOf(replicas[0].url));
  const payloads = await imagePayloads(await listImages(defaultImagesDir()), form);
  checkBodiesFitBuffer(payloads);
  console.log(
    `3 replicas (1 worker × 1 thread each, batching ${maxBatchSize}), c=${concurrency}, ${requests} requests per run, ` +
      `${payloads.length} photos as ${form} bodies, ${rounds} round(s)`,
  );

  const configs = ["1", "2", "3", "1 direct"] as const;
  const results = new Map<string, LoadResult[]>(configs.map((c) => [c, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const config of configs) {
      const n = Number(config[0]);
      let url = replicas[0].url;
      if (config !== "1 direct") {
        proxy = await Haproxy.start(replicas.slice(0, n).map((r) => ({ name: r.name, port: r.port })));
        for (const r of replicas.slice(0, n)) await proxy.waitStatus(r.name, "UP");
        url = proxy.url;
      }
      const common = { url, path: "/predict", concurrency, bodies: payloads, timeoutMs: 60_000 };
      await runLoad({ ...common, requests: concurrency * 2 }); // warm every keep-alive connection and replica
      const result = await runLoad({ ...common, requests });
      results.get(config)!.push(result);
      console.log(
        `round ${round}  ${config.padEnd(8)} replicas: ${result.requestsPerSecond.toFixed(1).padStart(6)} req/s  ` +
          `p50 ${result.latencyMs.p50.toFixed(0).padStart(4)} ms  p99 ${result.latencyMs.p99.toFixed(0).padStart(5)} ms  errors ${result.errorCount}`,
      );
      await proxy?.stop();
      proxy = undefined;
    }
  }

  console.log("\nreplicas   req/s (each round)        p99 ms (each round)       errors");
  for (const config of configs) {
    const runs = results.get(config)!;
    console.log(
      `${config.padEnd(10)} ${runs.map((r) => r.requestsPerSecond.toFixed(1)).join(", ").padEnd(25)} ` +
        `${runs.map((r) => r.latencyMs.p99.toFixed(0)).join(", ").padEnd(25)} ${runs.reduce((s, r) => s + r.errorCount, 0)}`,
    );
  }
}

main()
  .catch((error) => {
    console.error(`scale-out bench failed: ${(error as Error).stack ?? error}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await proxy?.stop();
    await Promise.allSettled(replicas.map((r) => r.stop("SIGKILL")));
  });
