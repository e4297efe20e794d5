import type { BatchwiseServer } from "./lifecycle.js";
import { makeLogger } from "./log.js";
import { readCliOptions } from "./options.js";
import { createServer, type ServerOptions } from "./server.js";

/**
 * Create, listen, log the configuration, and shut down gracefully on SIGTERM/SIGINT: drain (not ready, still
 * serving) for `drainPeriod`, finish in-flight requests, exit 0. For CLIs and scripts; resolves with the server
 * once it is ready. Options the code leaves unset are read from their environment variables (`PORT`, …). In a model
 * worker, createServer starts nothing and never resolves, and so neither does this.
 *
 * @example
 * ```ts
 * import { ModelAPI, serve } from "batchwise";
 *
 * // a body of `21` answers `42`
 * export class Doubler extends ModelAPI<number, number, number, number> {
 *   predict(batch: number[]) { return batch.map((x) => 2 * x); }
 * }
 * await serve({ api: Doubler, maxBatchSize: 64 });
 * ```
 */
export async function serve(options: ServerOptions): Promise<BatchwiseServer> {
  const log = makeLogger(options.log);
  // As `npm start` does: PORT, BATCHWISE_HOST and the other server options' variables apply where the code is silent.
  const fromEnv = options.endpoints ? readCliOptions({}, ["server"]) : readCliOptions({}, ["server", "endpoint"]);
  const merged: ServerOptions = { ...fromEnv, ...options };
  const server = await createServer(merged);
  const url = await server.listen();
  for (const endpoint of server.endpoints) {
    const i = endpoint.info();
    log(
      `serving ${endpoint.config.path} at ${url}${endpoint.config.path} — batching ${i.maxBatchSize === 1 ? "off" : `max ${i.maxBatchSize} / ${i.batchTimeout} s`}, ` +
        `${(i.devices as string[]).length} worker(s) on ${i.accelerator} (${i.acceleratorReason}), ${i.threadsPerWorker} thread(s) each`,
    );
  }
  let stopping = false;
  const shutdown = async (signal: string, drain: boolean) => {
    if (stopping) return;
    stopping = true;
    const period = merged.drainPeriod ?? 5;
    const draining = drain && period > 0;
    log(`${signal}: ${draining ? `draining for ${period} s, then ` : ""}finishing in-flight requests, then exiting`);
    await (draining ? server.drain() : server.close());
    process.exit(0);
  };
  // SIGTERM is how orchestrators stop a replica: drain first. It may come twice (a wrapper such as the tsx CLI relays
  // the signal its process group also got): the second must not kill the drain. Ctrl-C (SIGINT) is a person at a
  // terminal: no drain, and a second Ctrl-C exits at once (the default action, once this handler is gone).
  process.on("SIGTERM", () => void shutdown("SIGTERM", true));
  process.once("SIGINT", () => void shutdown("SIGINT", false));
  return server;
}
