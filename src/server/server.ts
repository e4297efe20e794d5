import { availableCores } from "../runtime/device.js";
import { inModelWorker, offerApis } from "./api-source.js";
import { Endpoint, type EndpointOptions } from "./endpoint.js";
import { registerHooks, type ServerState } from "./hooks.js";
import { createHttpApp } from "./http-app.js";
import { createLifecycle, type BatchwiseServer } from "./lifecycle.js";
import { makeLogger } from "./log.js";
import { registerMcpRoute } from "./mcp.js";
import { ServerMetrics } from "./metrics.js";
import { checkOptions, OptionError } from "./options.js";
import { registerEndpointRoutes, registerProbeRoutes } from "./routes.js";

/** Server-wide options, plus one endpoint's options when `endpoints` is not given. See options.ts for each. */
export interface ServerOptions extends Partial<EndpointOptions> {
  endpoints?: EndpointOptions[];
  maxPayloadSize?: number;
  apiKey?: string;
  host?: string;
  port?: number;
  requestTimeout?: number;
  keepAliveTimeout?: number;
  drainPeriod?: number;
  corsOrigins?: string[];
  threadsPerWorker?: number | "auto";
  log?: boolean | ((line: string) => void);
}

const SERVER_OPTIONS = ["host", "port", "maxPayloadSize", "apiKey", "requestTimeout", "keepAliveTimeout", "drainPeriod", "threadsPerWorker", "corsOrigins", "log", "endpoints"];

/**
 * Build a server for one or more model APIs.
 *
 * Inside a batchwise model worker (which imports the module that called this, to find the API class) it starts
 * nothing: it hands the class to the worker and never resolves.
 *
 * @example
 * ```ts
 * const server = await createServer({ api: imageClassifier(), maxBatchSize: 64, batchTimeout: 0.01 });
 * const url = await server.listen();   // http://127.0.0.1:8000
 * ```
 */
export async function createServer(options: ServerOptions): Promise<BatchwiseServer> {
  if (inModelWorker()) {
    offerApis([options.api, ...(options.endpoints ?? []).map((e) => e.api)]);
    return new Promise<never>(() => {});
  }
  const log = makeLogger(options.log);
  const { endpoints: endpointList, ...rest } = options;
  const serverOnly = Object.fromEntries(Object.entries(rest).filter(([k]) => SERVER_OPTIONS.includes(k)));
  const endpointOnly = Object.fromEntries(Object.entries(rest).filter(([k]) => !SERVER_OPTIONS.includes(k)));
  checkOptions(serverOnly, ["server"]);
  if (endpointList && Object.keys(endpointOnly).length > 0) {
    throw new OptionError(`With \`endpoints\`, put ${Object.keys(endpointOnly).join(", ")} in each endpoint's options`);
  }
  const endpointOptions = endpointList ?? (options.api ? [endpointOnly as unknown as EndpointOptions] : []);
  if (endpointOptions.length === 0) throw new OptionError("createServer needs `api` or `endpoints`");
  const apiKey = options.apiKey ?? process.env.BATCHWISE_API_KEY;
  // Fail closed: an empty key (`--api-key "$UNSET_VAR"`) would otherwise silently serve without authentication.
  if (apiKey !== undefined && apiKey.trim() === "") {
    throw new OptionError("The API key is empty (apiKey / --api-key / BATCHWISE_API_KEY): set a key, or leave it unset to serve without one");
  }

  // Split the cores between every worker of every endpoint so N workers never oversubscribe them.
  const totalRunners = endpointOptions.reduce((sum, e) => sum + Math.max(1, e.workersPerDevice ?? 1), 0);
  const threads =
    options.threadsPerWorker === undefined || options.threadsPerWorker === "auto"
      ? Math.max(1, Math.floor(availableCores() / totalRunners))
      : options.threadsPerWorker;
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
      ),
    );
  }
  const paths = endpoints.flatMap((e) => e.routes);
  if (new Set(paths).size !== paths.length) throw new OptionError(`Two endpoints share a path: ${paths.join(", ")}`);
  metrics = new ServerMetrics(endpoints.map((e) => ({ path: e.config.path, load: () => e.load() })));

  const maxPayloadSize = options.maxPayloadSize ?? 16 * 1024 * 1024;
  const app = createHttpApp({
    maxPayloadSize,
    requestTimeout: options.requestTimeout ?? 30,
    keepAliveTimeout: options.keepAliveTimeout ?? 5,
    binaryTypes: [...new Set(endpoints.flatMap((e) => e.binaryTypes))],
    log,
  });
  const state: ServerState = { setupDone: false, startupFailed: false, draining: false, closing: false };
  registerHooks(app, { state, corsOrigins: options.corsOrigins, apiKey, metrics });
  registerEndpointRoutes(app, endpoints, metrics, state);
  await registerMcpRoute(app, endpoints);
  const info = () => ({
    name: "batchwise",
    ready: state.setupDone,
    draining: state.draining,
    maxPayloadSize,
    drainPeriod: options.drainPeriod ?? 5,
    auth: apiKey ? "api-key" : "none",
    endpoints: endpoints.map((e) => e.info()),
  });
  registerProbeRoutes(app, { state, endpoints, metrics, info });
  return createLifecycle({ app, endpoints, state, info, log, host: options.host, port: options.port, drainPeriod: options.drainPeriod ?? 5 });
}

export type { BatchwiseServer, ListenOptions } from "./lifecycle.js";
