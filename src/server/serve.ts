import cluster from "node:cluster";
import { libuvPoolWarning } from "../runtime/cores.js";
import { reportApiServerReady, superviseApiServers } from "./api-servers.js";
import type { BatchwiseServer } from "./lifecycle.js";
import { makeLogger } from "./log.js";
import { resolveOptions, type OptionSources } from "./resolve-options.js";
import { createServer, type ServerOptions } from "./server.js";

/**
 * Create, listen, log the configuration, and shut down gracefully on SIGTERM/SIGINT: drain (not ready, still
 * serving) for `drainPeriod`, finish in-flight requests, exit 0. For CLIs and scripts; resolves with the server
 * once it is ready. Options the code leaves unset are read from their environment variables (`PORT`, …), as
 * `npm start` does; `sources` adds the CLI's flags. In a model worker, createServer starts nothing and never
 * resolves, and so neither does this. With `apiServers: N` this process only supervises N API server processes
 * (api-servers.ts), and the promise never resolves in it.
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
export async function serve(options: ServerOptions, sources: OptionSources = {}): Promise<BatchwiseServer> {
  const log = makeLogger(options.log);
  const allSources: OptionSources = { environment: process.env, scopes: ["server", "endpoint"], ...sources };
  const { apiServers } = resolveOptions(options, allSources).server;
  if (apiServers > 1 && cluster.isPrimary) return superviseApiServers(apiServers, log);
  const server = await createServer(options, allSources);
  const url = await server.listen();
  reportApiServerReady();
  const poolWarning = libuvPoolWarning();
  if (poolWarning) log(poolWarning);
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
    const period = server.info().drainPeriod as number;
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
