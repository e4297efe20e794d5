/**
 * Every server and endpoint option, declared once: name, kind, default, validation, CLI flag, environment variable
 * and a one-line doc. Validation and defaults (resolve-options.ts, for createServer, serve() and the CLI), the CLI's
 * flags and `--help` (`batchwise serve`, the bench commands) and the option table of docs/reference.md all read these
 * declarations; a test fails when the README table differs from them.
 */
import type { AcceleratorChoice } from "../api/model-api.js";

export type OptionScope = "server" | "endpoint" | "app";

export interface OptionDeclaration {
  name: string;
  scope: OptionScope;
  /** How a value is checked and how a CLI/env string is parsed. "value" options are code-only (no flag). */
  kind: "integer" | "number" | "string" | "boolean" | "list" | "enum" | "value";
  /** Smallest allowed number; `exclusive` makes it a strict bound. */
  min?: number;
  exclusive?: boolean;
  /** Also accepts the string "auto". */
  auto?: boolean;
  values?: readonly string[];
  /** The default the code applies, typed (undefined: none, or computed as `default` says). */
  value?: unknown;
  /** The default as shown to people: `value` written out (with its unit), or how it is computed. */
  default: string;
  /** "bytes": `value` and flag values are byte counts, shown in KiB/MiB. */
  unit?: "bytes";
  doc: string;
  /** CLI flag without dashes; `aliases` are older or shorter spellings that keep working. */
  flag?: string;
  aliases?: string[];
  /** Environment variables read by the CLI, first found wins (the flag wins over all of them). */
  env?: string[];
}

const env = (name: string) => [`BATCHWISE_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`];
const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** A value as `--help` and the README show it: seconds with "s", byte counts in KiB/MiB, nothing as "none". */
function showValue(d: Pick<OptionDeclaration, "kind" | "unit">, value: unknown): string {
  if (value === undefined) return "none";
  if (d.unit === "bytes" && typeof value === "number") {
    for (const [size, unit] of [[1024 * 1024, "MiB"], [1024, "KiB"]] as const) if (value % size === 0) return `${value / size} ${unit}`;
  }
  if (d.kind === "number" && typeof value === "number") return `${value} s`;
  return Array.isArray(value) ? value.join(",") : String(value);
}

function option(
  scope: OptionScope,
  name: string,
  declaration: Omit<OptionDeclaration, "name" | "scope" | "flag" | "env" | "default"> & {
    flag?: string | false;
    env?: string[] | false;
    /** How the default is shown when it is not simply `value` (computed, or `value` under a condition). */
    default?: string;
    /** Words after the shown `value`, e.g. "(off)". */
    note?: string;
  },
): OptionDeclaration {
  const { note, ...rest } = declaration;
  const code = declaration.kind === "value";
  const flag = declaration.flag === false || code ? undefined : (declaration.flag ?? kebab(name));
  const vars = declaration.env === false || code ? undefined : (declaration.env ?? env(name));
  const shown = declaration.default ?? `${showValue(declaration, declaration.value)}${note ? ` ${note}` : ""}`;
  return { ...rest, default: shown, name, scope, flag, env: vars };
}

/** Server-wide defaults, typed: the one place each is written (options below show them, resolve-options applies them). */
export const SERVER_DEFAULTS = {
  host: "127.0.0.1",
  port: 8000,
  maxPayloadSize: 16 * 1024 * 1024,
  requestTimeout: 30,
  keepAliveTimeout: 5,
  drainPeriod: 5,
  apiServers: 1,
  exposeErrors: false,
  docs: true,
  compress: true,
  serverTiming: true,
};

/** Endpoint defaults, typed; an API's own `servingDefaults` (e.g. the classifier's batching) go over them. */
export const ENDPOINT_DEFAULTS = {
  maxBatchSize: 1,
  /** When batching (maxBatchSize > 1); without batching nothing waits (0). */
  batchTimeout: 0.01,
  workersPerDevice: 1,
  maxBatchesPerWorker: 1,
  accelerator: "auto" as AcceleratorChoice,
  queueTimeout: 30,
  maxQueueSize: 1024,
  idempotent: false,
  stream: false,
};

const ACCELERATORS = ["auto", "cpu", "cuda", "webgpu"] as const;
export const PRECISION_CHOICES = ["auto", "fp32", "fp16", "bf16", "int8"] as const;

export const OPTIONS: readonly OptionDeclaration[] = [
  // server: one per process
  option("server", "host", { kind: "string", value: SERVER_DEFAULTS.host, doc: "bind address (loopback unless you say otherwise)" }),
  option("server", "port", { kind: "integer", min: 0, value: SERVER_DEFAULTS.port, doc: "TCP port; 0 picks a free one", env: ["PORT", "BATCHWISE_PORT"] }),
  option("server", "maxPayloadSize", { kind: "integer", min: 1, unit: "bytes", value: SERVER_DEFAULTS.maxPayloadSize, doc: "largest request body in bytes; beyond it, 413" }),
  option("server", "apiKey", { kind: "string", doc: "require `X-API-Key` or `Authorization: Bearer` on every route but the probes" }),
  option("server", "requestTimeout", { kind: "number", min: 0, exclusive: true, value: SERVER_DEFAULTS.requestTimeout, doc: "seconds a client may take to send a whole request" }),
  option("server", "keepAliveTimeout", { kind: "number", min: 0, exclusive: true, value: SERVER_DEFAULTS.keepAliveTimeout, doc: "seconds an idle keep-alive connection stays open" }),
  option("server", "drainPeriod", { kind: "number", min: 0, value: SERVER_DEFAULTS.drainPeriod, doc: "on SIGTERM: seconds /readyz answers 503 while requests are still served, so a load balancer can notice; then in-flight requests finish and the process exits" }),
  option("server", "apiServers", { kind: "integer", min: 1, value: SERVER_DEFAULTS.apiServers, doc: "HTTP processes sharing the port (node:cluster), each with its own model workers: for machines where one main thread tops out before the models (serve() and the CLI only)" }),
  option("server", "threadsPerWorker", { kind: "integer", min: 1, auto: true, default: "cores ÷ all workers", doc: "intra-op threads of each worker's model" }),
  option("server", "corsOrigins", { kind: "list", doc: "browsers from these origins may call the server (CORS)" }),
  option("server", "exposeErrors", { kind: "boolean", value: SERVER_DEFAULTS.exposeErrors, doc: "development: a 500's body carries the internal error's message (it is always in the server's log, with the stack and the request id)" }),
  option("server", "log", { kind: "value", default: "on", doc: "`false` silences the server; a function receives each log line (bodies are never logged)" }),
  option("server", "docs", { kind: "boolean", value: SERVER_DEFAULTS.docs, doc: "serve `GET /openapi.json` (OpenAPI 3.1 of every route) and `GET /docs` (Swagger UI)" }),
  option("server", "compress", { kind: "boolean", value: SERVER_DEFAULTS.compress, doc: "gzip/br responses of 1,000 bytes or more to clients that accept them (never a stream)" }),
  option("server", "https", { kind: "value", default: "none", doc: "serve HTTPS: `{ key, cert }` (PEM), as node's `https.createServer` takes them" }),
  option("server", "tlsCert", { kind: "string", doc: "PEM certificate file: with `tlsKey`, serve HTTPS (`https` in code wins)" }),
  option("server", "tlsKey", { kind: "string", doc: "PEM private key file of `tlsCert`" }),
  option("server", "plugins", { kind: "value", default: "none", doc: "fastify plugins (`plugin` or `[plugin, options]`) registered before the routes: middleware, hooks, routes of your own" }),
  option("server", "serverTiming", { kind: "boolean", value: SERVER_DEFAULTS.serverTiming, doc: "every response carries `Server-Timing` (decode, queue, predict with the batch size, encode, total)" }),
  option("server", "callbacks", { kind: "value", default: "none", doc: "objects whose methods run at each step (onRequest … onResponse); ones with predict-side methods as `{ module, export }`" }),
  option("server", "loggers", { kind: "value", default: "none", doc: "objects whose `log(entry)` receives every value the APIs `log()`" }),
  option("server", "endpoints", { kind: "value", default: "—", doc: "several APIs on one server, each with its own endpoint options and path" }),
  // endpoint: one per served API
  option("endpoint", "api", { kind: "value", default: "—", doc: "the ModelAPI class, `{ module, export, options }` (`module`: a path like an import's, `./my-api.js`, which loads `./my-api.ts` under tsx), or an instance (in-process only)" }),
  option("endpoint", "module", { kind: "value", default: "the calling file", doc: "where workers import an `api` class from (`import.meta.url` of the file that exports it or calls `serve`)" }),
  option("endpoint", "apiOptions", { kind: "value", default: "none", doc: "structured-cloneable argument passed to the `api` class's constructor on every thread" }),
  option("endpoint", "path", { kind: "value", default: "`/predict`", doc: "route (POST); the spec's own path by default" }),
  option("endpoint", "spec", { kind: "value", default: "plain JSON", doc: "wire format: `plainSpec()` or `openAISpec()`" }),
  option("endpoint", "stream", { kind: "value", value: ENDPOINT_DEFAULTS.stream, doc: "plain spec: `predict` is an async generator whose outputs are sent as NDJSON (not inferred: the server refuses to start when predict and this disagree)" }),
  option("endpoint", "maxBatchSize", { kind: "integer", min: 1, value: ENDPOINT_DEFAULTS.maxBatchSize, note: "(off)", doc: "most requests per batch; 1 turns batching off" }),
  option("endpoint", "batchTimeout", { kind: "number", min: 0, value: ENDPOINT_DEFAULTS.batchTimeout, note: "when batching", doc: "seconds a batch may wait to fill while more work is on its way" }),
  option("endpoint", "workersPerDevice", { kind: "integer", min: 0, value: ENDPOINT_DEFAULTS.workersPerDevice, doc: "model worker threads per device; 0 runs the API on the main thread", aliases: ["workers"] }),
  option("endpoint", "maxBatchesPerWorker", { kind: "integer", min: 1, value: ENDPOINT_DEFAULTS.maxBatchesPerWorker, doc: "batches one worker holds at once (a streaming engine can admit new requests into a running loop)" }),
  option("endpoint", "accelerator", { kind: "enum", values: ACCELERATORS, value: ENDPOINT_DEFAULTS.accelerator, doc: "where the model runs; auto picks a GPU provider when one works, else the CPU" }),
  option("endpoint", "deviceCount", { kind: "integer", min: 1, auto: true, default: "auto (all found)", doc: "how many devices of the accelerator to use", aliases: ["devices"] }),
  option("endpoint", "queueTimeout", { kind: "number", min: 0, exclusive: true, value: ENDPOINT_DEFAULTS.queueTimeout, doc: "seconds a request may wait for a worker before a 504", aliases: ["timeout"] }),
  option("endpoint", "maxQueueSize", { kind: "integer", min: 1, value: ENDPOINT_DEFAULTS.maxQueueSize, doc: "requests queued or decoding; beyond it, 503 with Retry-After before the body is decoded" }),
  option("endpoint", "predictTimeout", { kind: "number", min: 0, exclusive: true, doc: "seconds a worker may take per batch (per output when streaming) before it is replaced; its requests get 504" }),
  option("endpoint", "idempotent", { kind: "boolean", value: ENDPOINT_DEFAULTS.idempotent, doc: "predict may run twice for one request: load balancers may retry it, and a request whose worker died is retried once" }),
  option("endpoint", "authorize", { kind: "value", default: "the API's `authorize`", doc: "`(request) => boolean` deciding who may call this endpoint (after `apiKey`); replaces the API's own" }),
  option("endpoint", "mcp", { kind: "value", default: "off", doc: "`{ name, description, inputSchema? }`: also expose the endpoint as a tool on `/mcp` (Model Context Protocol, streamable HTTP; docs/mcp.md)" }),
  option("endpoint", "resourceLimits", { kind: "value", default: "none", doc: "worker heap limits (`maxOldGenerationSizeMb`, …); a worker past them is replaced" }),
  // app: what `batchwise serve classifier|chat` serves
  option("app", "model", { kind: "string", default: "mobilenetv2-12 / hub default", doc: "model id (a folder under `BATCHWISE_MODELS_DIR`) or path; `serve embeddings` needs one" }),
  option("app", "precision", { kind: "enum", values: PRECISION_CHOICES, value: "auto", doc: "weights and compute precision; auto: the fastest the provider runs" }),
  option("app", "mcp", { kind: "boolean", value: false, doc: "`serve classifier` and `serve embeddings`: also expose the endpoint as a tool on `/mcp`", env: false }),
  option("app", "labels", { kind: "enum", values: ["cat-dog", "imagenet"], value: "cat-dog", doc: "classifier: the seed's Cat/Dog/Other, or ImageNet top-5" }),
  option("app", "chatTemplate", { kind: "enum", values: ["hermes"], default: "the tokenizer's", doc: "chat: a named chat template instead of the model's own; `hermes`: ChatML with Hermes/Qwen tool calls, parsed into `tool_calls`" }),
];

export function declaration(name: string): OptionDeclaration {
  const found = OPTIONS.find((o) => o.name === name);
  if (!found) throw new Error(`No option named ${name}`);
  return found;
}

/** A value that breaks its declaration: thrown by createServer before anything starts. */
export class OptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OptionError";
  }
}

/** Check one value against its declaration; `undefined` (not set) always passes. */
function checkOption(name: string, value: unknown): void {
  if (value === undefined) return;
  const d = declaration(name);
  if (d.auto && value === "auto") return;
  const fail = (wanted: string): never => {
    throw new OptionError(`${name} must be ${wanted}, got ${typeof value === "string" ? JSON.stringify(value) : String(value)}`);
  };
  const bound = d.min === undefined ? "" : ` ${d.exclusive ? ">" : "≥"} ${d.min}`;
  const inRange = (x: number) => d.min === undefined || (d.exclusive ? x > d.min : x >= d.min);
  switch (d.kind) {
    case "integer":
      if (typeof value !== "number" || !Number.isInteger(value) || !inRange(value)) fail(`an integer${bound}${d.auto ? ' or "auto"' : ""}`);
      break;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value) || !inRange(value)) fail(`a number${bound}`);
      break;
    case "string":
      if (typeof value !== "string") fail("a string");
      break;
    case "boolean":
      if (typeof value !== "boolean") fail("true or false");
      break;
    case "list":
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) fail("a list of strings");
      break;
    case "enum":
      if (!d.values!.includes(value as string)) fail(`one of ${d.values!.join(", ")}`);
      break;
  }
}

/** Check every declared option present in `options`, and refuse names that are not declared (a typo is an error). */
export function checkOptions(options: object, scopes: OptionScope[]): void {
  for (const [name, value] of Object.entries(options)) {
    const d = OPTIONS.find((o) => o.name === name && scopes.includes(o.scope));
    if (!d) throw new OptionError(`Unknown option "${name}" (see the option table in batchwise's docs/reference.md)`);
    checkOption(name, value);
  }
}

/** Parse a flag's or environment variable's text into the option's type, then check it. */
function parseOptionText(name: string, text: string): unknown {
  const d = declaration(name);
  let value: unknown = text;
  if (d.auto && text === "auto") return "auto";
  if (d.kind === "integer" || d.kind === "number") value = text.trim() === "" ? NaN : Number(text);
  else if (d.kind === "boolean") value = text === "" || text === "true" || text === "1" ? true : text === "false" || text === "0" ? false : text;
  else if (d.kind === "list") value = text.split(",").map((s) => s.trim()).filter(Boolean);
  try {
    checkOption(name, value);
  } catch (error) {
    throw new OptionError(`--${d.flag} (${(error as Error).message})`);
  }
  return value;
}

/** Options with a flag in these scopes, as `node:util` parseArgs wants them (aliases included). */
export function cliFlags(scopes: OptionScope[]): Record<string, { type: "string" | "boolean" }> {
  const flags: Record<string, { type: "string" | "boolean" }> = {};
  for (const d of OPTIONS) {
    if (!d.flag || !scopes.includes(d.scope)) continue;
    for (const flag of [d.flag, ...(d.aliases ?? [])]) flags[flag] = { type: d.kind === "boolean" ? "boolean" : "string" };
  }
  return flags;
}

/**
 * The options given on the command line or in the environment (flag first, then each env variable), typed and
 * checked. Options given by neither are absent, so callers can lay them over their own defaults.
 */
export function readCliOptions(
  values: Record<string, string | boolean | undefined>,
  scopes: OptionScope[],
  environment: NodeJS.ProcessEnv = process.env,
): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const d of OPTIONS) {
    if (!d.flag || !scopes.includes(d.scope)) continue;
    const given = [d.flag, ...(d.aliases ?? [])].map((f) => values[f]).find((v) => v !== undefined);
    if (given !== undefined) {
      result[d.name] = typeof given === "boolean" ? given : parseOptionText(d.name, given);
      continue;
    }
    const fromEnv = d.env?.map((v) => environment[v]).find((v) => v !== undefined && v !== "");
    if (fromEnv !== undefined) result[d.name] = parseOptionText(d.name, fromEnv);
  }
  return result;
}

/** One line per flag for `--help`; `defaults` are the command's own (an app's serving defaults) over the declared ones. */
export function flagHelp(scopes: OptionScope[], defaults: Record<string, unknown> = {}): string {
  return OPTIONS.filter((d) => d.flag && scopes.includes(d.scope))
    .map((d) => {
      const arg = d.kind === "boolean" ? "" : d.kind === "enum" ? ` ${d.values!.join("|")}` : " VALUE";
      const shown = defaults[d.name] === undefined ? d.default : showValue(d, defaults[d.name]);
      return `  --${d.flag}${arg}`.padEnd(44) + `${d.doc} (default ${shown}${d.env ? `; env ${d.env.join(", ")}` : ""})`;
    })
    .join("\n");
}
