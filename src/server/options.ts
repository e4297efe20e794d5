/**
 * Every server and endpoint option, declared once: name, kind, default, validation, CLI flag, environment variable
 * and a one-line doc. Validation (createServer), the CLI's flags (`batchwise serve`, the bench commands) and the
 * README's option table all read these declarations; a test fails when the README table differs from them.
 */

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
  /** The default, as shown to people (the code's default lives where it is applied, named in `doc`). */
  default: string;
  doc: string;
  /** CLI flag without dashes; `aliases` are older or shorter spellings that keep working. */
  flag?: string;
  aliases?: string[];
  /** Environment variables read by the CLI, first found wins (the flag wins over all of them). */
  env?: string[];
}

const env = (name: string) => [`BATCHWISE_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`];
const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function option(
  scope: OptionScope,
  name: string,
  declaration: Omit<OptionDeclaration, "name" | "scope" | "flag" | "env"> & { flag?: string | false; env?: string[] | false },
): OptionDeclaration {
  const code = declaration.kind === "value";
  const flag = declaration.flag === false || code ? undefined : (declaration.flag ?? kebab(name));
  const vars = declaration.env === false || code ? undefined : (declaration.env ?? env(name));
  return { ...declaration, name, scope, flag, env: vars };
}

export const ACCELERATORS = ["auto", "cpu", "cuda", "webgpu"] as const;
export const PRECISION_CHOICES = ["auto", "fp32", "fp16", "bf16", "int8"] as const;

export const OPTIONS: readonly OptionDeclaration[] = [
  // server: one per process
  option("server", "host", { kind: "string", default: "127.0.0.1", doc: "bind address (loopback unless you say otherwise)" }),
  option("server", "port", { kind: "integer", min: 0, default: "8000", doc: "TCP port; 0 picks a free one", env: ["PORT", "BATCHWISE_PORT"] }),
  option("server", "maxPayloadSize", { kind: "integer", min: 1, default: "16 MiB", doc: "largest request body in bytes; beyond it, 413" }),
  option("server", "apiKey", { kind: "string", default: "none", doc: "require `X-API-Key` or `Authorization: Bearer` on every route but the probes" }),
  option("server", "requestTimeout", { kind: "number", min: 0, exclusive: true, default: "30 s", doc: "seconds a client may take to send a whole request" }),
  option("server", "keepAliveTimeout", { kind: "number", min: 0, exclusive: true, default: "5 s", doc: "seconds an idle keep-alive connection stays open" }),
  option("server", "drainPeriod", { kind: "number", min: 0, default: "5 s", doc: "on SIGTERM: seconds /readyz answers 503 while requests are still served, so a load balancer can notice; then in-flight requests finish and the process exits" }),
  option("server", "threadsPerWorker", { kind: "integer", min: 1, auto: true, default: "cores ÷ all workers", doc: "intra-op threads of each worker's model" }),
  option("server", "corsOrigins", { kind: "list", default: "none", doc: "browsers from these origins may call the server (CORS)" }),
  option("server", "log", { kind: "value", default: "on", doc: "`false` silences the server; a function receives each log line (bodies are never logged)" }),
  option("server", "endpoints", { kind: "value", default: "—", doc: "several APIs on one server, each with its own endpoint options and path" }),
  // endpoint: one per served API
  option("endpoint", "api", { kind: "value", default: "—", doc: "the ModelAPI class, `{ module, export, options }`, or an instance (in-process only)" }),
  option("endpoint", "module", { kind: "value", default: "the calling file", doc: "where workers import an `api` class from (`import.meta.url` of the file that exports it or calls `serve`)" }),
  option("endpoint", "apiOptions", { kind: "value", default: "none", doc: "structured-cloneable argument passed to the `api` class's constructor on every thread" }),
  option("endpoint", "path", { kind: "value", default: "`/predict`", doc: "route (POST); the spec's own path by default" }),
  option("endpoint", "spec", { kind: "value", default: "plain JSON", doc: "wire format: `plainSpec()` or `openAISpec()`" }),
  option("endpoint", "stream", { kind: "value", default: "false", doc: "plain spec: `predict` is an async generator whose outputs are sent as NDJSON" }),
  option("endpoint", "maxBatchSize", { kind: "integer", min: 1, default: "1 (off)", doc: "most requests per batch; 1 turns batching off" }),
  option("endpoint", "batchTimeout", { kind: "number", min: 0, default: "0.01 s when batching", doc: "seconds a batch may wait to fill while more work is on its way" }),
  option("endpoint", "workersPerDevice", { kind: "integer", min: 0, default: "1", doc: "model worker threads per device; 0 runs the API on the main thread", aliases: ["workers"] }),
  option("endpoint", "maxBatchesPerWorker", { kind: "integer", min: 1, default: "1", doc: "batches one worker holds at once (a streaming engine can admit new requests into a running loop)" }),
  option("endpoint", "accelerator", { kind: "enum", values: ACCELERATORS, default: "auto", doc: "where the model runs; auto picks a GPU provider when one works, else the CPU" }),
  option("endpoint", "deviceCount", { kind: "integer", min: 1, auto: true, default: "auto (all found)", doc: "how many devices of the accelerator to use", aliases: ["devices"] }),
  option("endpoint", "queueTimeout", { kind: "number", min: 0, exclusive: true, default: "30 s", doc: "seconds a request may wait for a worker before a 504", aliases: ["timeout"] }),
  option("endpoint", "maxQueueSize", { kind: "integer", min: 1, default: "1024", doc: "requests queued or decoding; beyond it, 503 with Retry-After before the body is decoded" }),
  option("endpoint", "predictTimeout", { kind: "number", min: 0, exclusive: true, default: "none", doc: "seconds a worker may take per batch (per output when streaming) before it is replaced; its requests get 504" }),
  option("endpoint", "idempotent", { kind: "boolean", default: "false", doc: "predict may run twice for one request: load balancers may retry it, and a request whose worker died is retried once" }),
  option("endpoint", "resourceLimits", { kind: "value", default: "none", doc: "worker heap limits (`maxOldGenerationSizeMb`, …); a worker past them is replaced" }),
  // app: what `batchwise serve classifier|chat` serves
  option("app", "model", { kind: "string", default: "mobilenetv2-12 / hub default", doc: "model id (a folder under `BATCHWISE_MODELS_DIR`) or path" }),
  option("app", "precision", { kind: "enum", values: PRECISION_CHOICES, default: "auto", doc: "weights and compute precision; auto: the fastest the provider runs" }),
  option("app", "labels", { kind: "enum", values: ["cat-dog", "imagenet"], default: "cat-dog", doc: "classifier: the seed's Cat/Dog/Other, or ImageNet top-5" }),
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
export function checkOption(name: string, value: unknown): void {
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
    if (!d) throw new OptionError(`Unknown option "${name}" (see the README's option table)`);
    checkOption(name, value);
  }
}

/** Parse a flag's or environment variable's text into the option's type, then check it. */
export function parseOptionText(name: string, text: string): unknown {
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

/** One line per flag for `--help`. */
export function flagHelp(scopes: OptionScope[]): string {
  return OPTIONS.filter((d) => d.flag && scopes.includes(d.scope))
    .map((d) => {
      const arg = d.kind === "boolean" ? "" : d.kind === "enum" ? ` ${d.values!.join("|")}` : " VALUE";
      return `  --${d.flag}${arg}`.padEnd(44) + `${d.doc} (default ${d.default}${d.env ? `; env ${d.env.join(", ")}` : ""})`;
    })
    .join("\n");
}
