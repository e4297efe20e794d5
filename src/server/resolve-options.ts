/**
 * Options resolved once: what the code passes, the command line's flags and the environment become one typed server
 * config and one typed config per endpoint, every default applied. createServer, serve() and `batchwise serve` all
 * go through {@link resolveOptions}; nothing else reads the environment for an option or holds a default of its own.
 *
 * Precedence, highest first: the code's options, flags, environment variables, the API's own `servingDefaults`
 * (e.g. the classifier's batching), the declared defaults of options.ts.
 */
import type { ServerOptions as HttpsOptions } from "node:https";
import type { ApiSource, ServingDefaults } from "../api/model-api.js";
import type { Callback, CallbackSource } from "./callbacks.js";
import type { PluginEntry } from "./http-options.js";
import type { Logger } from "./user-metrics.js";
import { availableCores } from "../runtime/device.js";
import type { EndpointOptions, ResolvedEndpointOptions } from "./endpoint.js";
import { checkOptions, declaration, ENDPOINT_DEFAULTS, OPTIONS, OptionError, readCliOptions, SERVER_DEFAULTS, type OptionScope } from "./options.js";

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
  apiServers?: number;
  /** Development: a 500's body carries the internal error's message (the log always has it). Off by default. */
  exposeErrors?: boolean;
  /** GET /openapi.json and GET /docs (default true). */
  docs?: boolean;
  /** gzip/br answers of 1,000 bytes or more (default true). */
  compress?: boolean;
  /** Serve HTTPS with these TLS options (`{ key, cert }`, PEM). */
  https?: HttpsOptions;
  /** PEM files for HTTPS when `https` is not given (env BATCHWISE_TLS_CERT / BATCHWISE_TLS_KEY under serve and the CLI). */
  tlsCert?: string;
  tlsKey?: string;
  /** fastify plugins registered before the routes (see docs/extension-points.md). */
  plugins?: PluginEntry[];
  /** Objects whose methods run at each step of a request (see callbacks.ts). */
  callbacks?: (Callback | CallbackSource | (new () => Callback))[];
  /** Objects that receive every value the APIs `log()` (see user-metrics.ts). */
  loggers?: Logger[];
  /** Every response carries `Server-Timing` (default true). */
  serverTiming?: boolean;
  log?: boolean | ((line: string) => void);
}

/** Where options come from besides the code. */
export interface OptionSources {
  /** Parsed command-line flags (`node:util` parseArgs values): they win over the environment. */
  flags?: Record<string, string | boolean | undefined>;
  /** The environment (process.env). Its API key variable is always read, so a key set for the process is never dropped. */
  environment?: NodeJS.ProcessEnv;
  /** Whose flags and variables apply: "server" and/or "endpoint" (none by default: the code alone). */
  scopes?: OptionScope[];
}

/**
 * The server-wide config: the server options, every default of SERVER_DEFAULTS applied, and the intra-op threads of
 * each worker's model (given, or the cores split between every worker of every endpoint of every API server).
 */
type ResolvedServerConfig = Omit<ServerOptions, keyof EndpointOptions | "endpoints" | "threadsPerWorker"> &
  typeof SERVER_DEFAULTS & { threadsPerWorker: number };

export interface ResolvedOptions {
  server: ResolvedServerConfig;
  endpoints: ResolvedEndpointOptions[];
}

const SERVER_SCOPE = new Set(OPTIONS.filter((o) => o.scope === "server").map((o) => o.name).concat("endpoints"));

/** The object without its undefined values, so spreading it never hides a default. */
function defined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** An API's own serving defaults: an ApiSource's `servingDefaults`, or a class's static one. */
function servingDefaultsOf(api: unknown): ServingDefaults {
  const found = (api as Partial<ApiSource> | undefined)?.servingDefaults;
  return found && typeof found === "object" ? found : {};
}

/** The options of `scopes` that flags and environment give (flag first, then each variable), typed and checked. */
export function readSourceOptions(sources: OptionSources, scopes: OptionScope[]): Record<string, unknown> {
  return sources.flags || sources.environment ? readCliOptions(sources.flags ?? {}, scopes, sources.environment ?? {}) : {};
}

/** As readSourceOptions; the API key's variable is read whenever an environment is. */
function fromSources(sources: OptionSources, scopes: OptionScope[]): Record<string, unknown> {
  const given = readSourceOptions(sources, scopes);
  if (given.apiKey === undefined && sources.environment) {
    // As set, even empty: an empty key is refused below rather than served without authentication.
    const key = declaration("apiKey").env?.map((name) => sources.environment![name]).find((v) => v !== undefined);
    if (key !== undefined) given.apiKey = key;
  }
  return given;
}

/**
 * One endpoint's options over its API's serving defaults over the declared defaults, checked. The API's worker count
 * is for the whole machine: with several API servers, each process gets its share.
 */
function resolveEndpointOptions(options: EndpointOptions, apiServers: number): ResolvedEndpointOptions {
  const { maxPayloadSize: _serverWide, ...apiDefaults } = servingDefaultsOf(options.api);
  if (apiDefaults.workersPerDevice !== undefined) apiDefaults.workersPerDevice = Math.max(1, Math.round(apiDefaults.workersPerDevice / apiServers));
  const merged = { ...apiDefaults, ...defined(options) } as EndpointOptions;
  checkOptions(merged, ["endpoint"]);
  const maxBatchSize = merged.maxBatchSize ?? ENDPOINT_DEFAULTS.maxBatchSize;
  return {
    ...merged,
    maxBatchSize,
    batchTimeout: merged.batchTimeout ?? (maxBatchSize > 1 ? ENDPOINT_DEFAULTS.batchTimeout : 0),
    workersPerDevice: merged.workersPerDevice ?? ENDPOINT_DEFAULTS.workersPerDevice,
    maxBatchesPerWorker: merged.maxBatchesPerWorker ?? ENDPOINT_DEFAULTS.maxBatchesPerWorker,
    accelerator: merged.accelerator ?? ENDPOINT_DEFAULTS.accelerator,
    queueTimeout: merged.queueTimeout ?? ENDPOINT_DEFAULTS.queueTimeout,
    maxQueueSize: merged.maxQueueSize ?? ENDPOINT_DEFAULTS.maxQueueSize,
    idempotent: merged.idempotent ?? ENDPOINT_DEFAULTS.idempotent,
    stream: merged.stream ?? ENDPOINT_DEFAULTS.stream,
  };
}

/** Code options, flags and environment → the typed server config and one config per endpoint. */
export function resolveOptions(code: ServerOptions, sources: OptionSources = {}): ResolvedOptions {
  // With `endpoints`, endpoint options belong to each endpoint: flags and variables set only server-wide ones.
  const scopes = (sources.scopes ?? []).filter((s) => s === "server" || (s === "endpoint" && !code.endpoints));
  const given: ServerOptions = { ...fromSources(sources, scopes), ...defined(code) };
  const { endpoints: list, ...rest } = given;
  const serverOnly = defined(Object.fromEntries(Object.entries(rest).filter(([k]) => SERVER_SCOPE.has(k))));
  const endpointOnly = Object.fromEntries(Object.entries(rest).filter(([k]) => !SERVER_SCOPE.has(k)));
  checkOptions(serverOnly, ["server"]);
  if (list && Object.keys(endpointOnly).length > 0) {
    throw new OptionError(`With \`endpoints\`, put ${Object.keys(endpointOnly).join(", ")} in each endpoint's options`);
  }
  const endpointList = list ?? (given.api ? [endpointOnly as unknown as EndpointOptions] : []);
  if (endpointList.length === 0) throw new OptionError("createServer needs `api` or `endpoints`");
  // Fail closed: an empty key (`--api-key "$UNSET_VAR"`) would otherwise silently serve without authentication.
  if (given.apiKey !== undefined && given.apiKey.trim() === "") {
    throw new OptionError("The API key is empty (apiKey / --api-key / BATCHWISE_API_KEY): set a key, or leave it unset to serve without one");
  }
  const apiServers = (serverOnly as { apiServers?: number }).apiServers ?? SERVER_DEFAULTS.apiServers;
  const endpoints = endpointList.map((e) => resolveEndpointOptions(e, apiServers));
  // Split the cores between every worker of every endpoint (of every API server) so they never oversubscribe them.
  const runners = apiServers * endpoints.reduce((sum, e) => sum + Math.max(1, e.workersPerDevice), 0);
  const threadsPerWorker =
    given.threadsPerWorker === undefined || given.threadsPerWorker === "auto" ? Math.max(1, Math.floor(availableCores() / runners)) : given.threadsPerWorker;
  const onlyApi = list ? {} : servingDefaultsOf(given.api);
  const server: ResolvedServerConfig = {
    ...SERVER_DEFAULTS,
    ...(onlyApi.maxPayloadSize === undefined ? {} : { maxPayloadSize: onlyApi.maxPayloadSize }),
    ...(serverOnly as Partial<ResolvedServerConfig>),
    threadsPerWorker,
  };
  return { server, endpoints };
}
