import { apiServerIndex } from "./api-servers.js";
import { inModelWorker, offerApis } from "./api-source.js";
import { Endpoint } from "./endpoint.js";
import { registerHooks, type ServerState } from "./hooks.js";
import { createHttpApp } from "./http-app.js";
import { registerCompression, registerPlugins, resolveHttps, type PluginEntry } from "./http-options.js";
import { registerIndexRoute, VERSION } from "./index-route.js";
import { createLifecycle, type BatchwiseServer } from "./lifecycle.js";
import { makeLogger } from "./log.js";
import { registerMcpRoute } from "./mcp.js";
import { ServerMetrics } from "./metrics.js";
import { registerDocs } from "./openapi.js";
import { OptionError } from "./options.js";
import { Pipeline } from "./pipeline.js";
import { resolveOptions, type OptionSources, type ServerOptions } from "./resolve-options.js";
import { registerEndpointRoutes, registerProbeRoutes } from "./routes.js";

/**
 * Build a server for one or more model APIs.
 *
 * Inside a batchwise model worker (which imports the module that called this, to find the API class) it starts
 * nothing: it hands the class to the worker and never resolves. Options are resolved by resolve-options.ts: the
 * code's, over the API's `servingDefaults`, over the declared defaults; of the environment only the API key's
 * variable is read unless `sources` says more (serve() and the CLI do).
 *
 * @example
 * ```ts
 * import { createServer } from "batchwise";
 * import { imageClassifier } from "batchwise/classifier";
 *
 * const server = await createServer({ api: imageClassifier(), maxBatchSize: 64, batchTimeout: 0.01 });
 * const url = await server.listen();   // http://127.0.0.1:8000
 * ```
 */
export async function createServer(options: ServerOptions, sources: OptionSources = { environment: process.env }): Promise<BatchwiseServer> {
  if (inModelWorker()) {
    offerApis([options.api, ...(options.endpoints ?? []).map((e) => e.api), ...(options.callbacks ?? [])]);
    return new Promise<never>(() => {});
  }
  const { server: config, endpoints: endpointOptions } = resolveOptions(options, sources);
  const log = makeLogger(config.log);
  const { apiKey, maxPayloadSize, threadsPerWorker: threads } = config;
  if (config.apiServers > 1 && apiServerIndex() === undefined) {
    throw new OptionError("apiServers > 1 needs serve() or the CLI, which start the API server processes; createServer builds one");
  }
  const pipeline = await Pipeline.create(config, log);
  let metrics: ServerMetrics | undefined;
  const endpoints: Endpoint[] = [];
  for (const e of endpointOptions) {
    endpoints.push(
      await Endpoint.create(
        e,
        threads,
        {
          batch: (path, size) => metrics?.batchSize.observe({ endpoint: path }, size),
          retry: (path, outcome) => metrics?.retries.inc({ endpoint: path, outcome }),
        },
        log,
        config.exposeErrors,
        pipeline.extensions,
      ),
    );
  }
  const paths = endpoints.flatMap((e) => e.routes);
  if (new Set(paths).size !== paths.length) throw new OptionError(`Two endpoints share a path: ${paths.join(", ")}`);
  metrics = new ServerMetrics(endpoints.map((e) => ({ path: e.config.path, load: () => e.load() })));
  pipeline.register(metrics.registry, endpoints.map((e) => ({ path: e.config.path, api: e.api })));

  const app = createHttpApp({
    maxPayloadSize,
    requestTimeout: config.requestTimeout,
    keepAliveTimeout: config.keepAliveTimeout,
    binaryTypes: [...new Set(endpoints.flatMap((e) => e.binaryTypes))],
    log,
    https: resolveHttps(config),
  });
  const state: ServerState = { setupDone: false, startupFailed: false, draining: false, closing: false };
  registerHooks(app, { state, corsOrigins: config.corsOrigins, apiKey, metrics });
  pipeline.install(app);
  // Each of these hooks into the routes declared after it (fastify's onRoute): they go first.
  if (config.compress) await registerCompression(app);
  if (config.docs) await registerDocs(app, { version: VERSION, apiKey: apiKey !== undefined });
  await registerPlugins(app, config.plugins);
  registerIndexRoute(app, { endpoints, docs: config.docs });
  registerEndpointRoutes(app, endpoints, metrics, state, pipeline, log);
  await registerMcpRoute(app, endpoints);
  const info = () => ({
    name: "batchwise",
    ready: state.setupDone,
    draining: state.draining,
    maxPayloadSize,
    drainPeriod: config.drainPeriod,
    auth: apiKey ? "api-key" : "none",
    ...(config.apiServers > 1 ? { apiServers: config.apiServers, apiServer: apiServerIndex() } : {}),
    endpoints: endpoints.map((e) => e.info()),
  });
  registerProbeRoutes(app, { state, endpoints, metrics, info });
  const server = createLifecycle({ app, endpoints, state, info, log, host: config.host, port: config.port, drainPeriod: config.drainPeriod });
  pipeline.attach(app, server.ready, endpoints.map((e) => e.config.path));
  return server;
}

export type { BatchwiseServer, ListenOptions } from "./lifecycle.js";
export type { OptionSources, ServerOptions } from "./resolve-options.js";
