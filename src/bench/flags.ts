import { parseArgs } from "node:util";
import { PRECISION_CHOICES } from "../server/options.js";

/**
 * Every flag of the toolkit's commands (`batchwise bench <kind>`, `batchwise soak`), declared once the way
 * src/server/options.ts declares the server's options: a name (the key the command's code reads), its kind, the
 * flag, a one-line doc. Each command lists the flags it takes with their defaults as typed values; `--help` and
 * validation both come from here, so a bad value is an error that names its flag, never a NaN that runs.
 */

type Kind = "integer" | "number" | "string" | "boolean" | "list" | "enum" | "strings";

interface KindValue {
  integer: number;
  number: number;
  string: string;
  boolean: boolean;
  /** Comma-separated whole numbers: "1,8,32,64". */
  list: number[];
  enum: string;
  /** A flag given several times. */
  strings: string[];
}

interface FlagDeclaration {
  flag: string;
  kind: Kind;
  doc: string;
  /** Smallest allowed number (integer, number, each element of a list). */
  min?: number;
  values?: readonly string[];
  /** Older or shorter spellings that keep working. */
  aliases?: readonly string[];
  /** What the help shows after the flag: "FILE", "DIR", "URL"… (default: from the kind). */
  placeholder?: string;
  /** An environment variable that sets a boolean flag ("1" = on). */
  env?: string;
}

const declareFlags = <T extends Record<string, FlagDeclaration>>(flags: T) => flags;

export const FLAGS = declareFlags({
  json: { flag: "json", kind: "string", placeholder: "FILE", doc: "also write the results to FILE as JSON" },
  quick: { flag: "quick", kind: "boolean", env: "BATCHWISE_QUICK", doc: "smaller counts: the whole run in minutes" },
  precision: { flag: "precision", kind: "enum", values: PRECISION_CHOICES, doc: "the model file's precision (auto: what npm start picks on this CPU)" },
  threads: { flag: "threads", kind: "integer", min: 1, aliases: ["threads-per-worker"], doc: "intra-op threads of each session (default: npm start's cores ÷ workers)" },
  workers: { flag: "workers", kind: "integer", min: 0, aliases: ["workers-per-device"], doc: "model worker threads (default: npm start's one per core)" },
  maxBatchSize: { flag: "max-batch-size", kind: "integer", min: 1, doc: "most requests per batch; 1 turns batching off" },
  batchTimeout: { flag: "batch-timeout", kind: "number", min: 0, placeholder: "SECONDS", doc: "seconds a batch may wait to fill" },
  batchSize: { flag: "batch-size", kind: "integer", min: 1, doc: "images per batch (default: npm start's max batch size)" },
  batchSizes: { flag: "batch-sizes", kind: "list", min: 1, doc: "batch sizes of the raw model, comma-separated" },
  runs: { flag: "runs", kind: "integer", min: 1, doc: "timed runs per batch size" },
  concurrency: { flag: "concurrency", kind: "integer", min: 1, doc: "clients sending at once" },
  concurrencyLevels: { flag: "concurrency", kind: "list", min: 1, doc: "concurrency levels, comma-separated, one measurement each" },
  requests: { flag: "requests", kind: "integer", min: 1, doc: "measured requests per level" },
  waves: { flag: "waves", kind: "integer", min: 1, doc: "at least N × concurrency requests per level" },
  url: { flag: "url", kind: "string", placeholder: "URL", doc: "the running server" },
  path: { flag: "path", kind: "string", placeholder: "PATH", doc: "the endpoint's route" },
  body: { flag: "body", kind: "enum", values: ["json", "binary"] as const, doc: "json: {\"image\": base64}; binary: the photo's bytes with its image content type" },
  imagesDir: { flag: "images", kind: "string", placeholder: "DIR", doc: "folder of photos sent round-robin (default: the sample photos)" },
  imageCount: { flag: "images", kind: "integer", min: 1, doc: "images pushed through the pipeline after warm-up" },
  image: { flag: "image", kind: "strings", placeholder: "FILE", doc: "a photo to send (repeat for several; default darknet_dog.jpg)" },
  serverPid: { flag: "server-pid", kind: "integer", min: 1, placeholder: "PID", doc: "the server's process id: its CPU and memory are sampled" },
  bodyBytes: { flag: "body-bytes", kind: "integer", min: 11, doc: "bytes of the no-op request's JSON body" },
  out: { flag: "out", kind: "string", placeholder: "DIR", doc: "parent folder of the timestamped report folder" },
  model: { flag: "model", kind: "string", placeholder: "ID", doc: "model id (a folder under BATCHWISE_MODELS_DIR) or path" },
  rounds: { flag: "rounds", kind: "integer", min: 1, doc: "rounds of the in-process batching comparison" },
  maxTokens: { flag: "max-tokens", kind: "integer", min: 1, doc: "tokens generated per request" },
  noInProcess: { flag: "no-in-process", kind: "boolean", doc: "skip the in-process ceiling (served figures only)" },
  tokens: { flag: "tokens", kind: "integer", min: 1, doc: "tokens streamed per request" },
  minutes: { flag: "minutes", kind: "number", min: 0.05, doc: "how long the load runs" },
  window: { flag: "window", kind: "number", min: 1, placeholder: "SECONDS", doc: "seconds per reported window" },
  warmup: { flag: "warmup", kind: "number", min: 0, placeholder: "SECONDS", doc: "seconds of load before the first window counts" },
  form: { flag: "form", kind: "enum", values: ["json", "binary"] as const, doc: "body form of the photos (default: what the replicas accept)" },
  watchdogSeconds: { flag: "watchdog-seconds", kind: "number", min: 1, doc: "give up (exit 1) after this many seconds" },
  idle: { flag: "idle", kind: "integer", min: 0, doc: "idle keep-alive connections opened against the server" },
  busy: { flag: "busy", kind: "integer", min: 1, doc: "clients sending requests meanwhile" },
  seconds: { flag: "seconds", kind: "number", min: 0.1, doc: "seconds of busy load per round" },
  keepAlive: { flag: "keep-alive", kind: "number", min: 0.1, placeholder: "SECONDS", doc: "the server's keep-alive timeout" },
});

type FlagName = keyof typeof FLAGS;

type KindOf<N extends FlagName> = (typeof FLAGS)[N]["kind"];
/** The typed value of a flag: an enum's own literals, a list's numbers… */
type FlagValue<N extends FlagName> = KindOf<N> extends "enum"
  ? (typeof FLAGS)[N] extends { values: readonly (infer V)[] } ? V : string
  : KindValue[KindOf<N>];

type CommandFlags = { [N in FlagName]?: { default?: FlagValue<N> } };

interface CommandDeclaration {
  /** One line: what it measures. */
  doc: string;
  /** How it is run, when not `batchwise bench <name>`. */
  invocation?: string;
  flags: CommandFlags;
}

const declareCommands = <T extends Record<string, CommandDeclaration>>(commands: T) => commands;

/**
 * What each command takes. A flag without a default here is undefined when not given, and the run's own default
 * applies (each run module's options document it), so a default is written in one place.
 */
export const COMMANDS = declareCommands({
  baseline: {
    doc: "raw model throughput of ONE worker's session: onnxruntime on random input, no HTTP, no decoding",
    flags: { precision: {}, threads: {}, batchSizes: {}, runs: {}, json: {} },
  },
  precision: {
    doc: "every precision: runs here?, file size, session RSS, raw and served throughput, agreement with fp32",
    flags: { quick: {}, threads: {}, batchSizes: {}, runs: {}, concurrency: {}, requests: {}, imagesDir: {}, json: {} },
  },
  pipeline: {
    doc: "decode + batched inference on N worker threads + encode, in-process (no HTTP): the served limit",
    flags: { batchSize: {}, image: {}, workers: {}, threads: {}, precision: {}, imageCount: {}, json: {} },
  },
  api: {
    doc: "a running server under closed-loop load, CPU/GPU/RSS sampled",
    flags: {
      url: { default: "http://127.0.0.1:8000" },
      path: {},
      concurrencyLevels: {},
      requests: {},
      waves: {},
      body: {},
      imagesDir: {},
      serverPid: {},
      json: {},
    },
  },
  overhead: {
    doc: "no-op model vs bare fastify, each in its own process (default: batching off, 1 worker)",
    flags: { concurrencyLevels: {}, requests: {}, bodyBytes: {}, maxBatchSize: {}, workers: {}, json: {} },
  },
  "main-thread": {
    doc: "the server main thread's CPU µs per request (no-op model), split by piece from a CPU profile",
    flags: { concurrency: {}, requests: {}, maxBatchSize: { default: 64 }, workers: { default: 1 }, bodyBytes: {}, json: {} },
  },
  suite: {
    doc: "the whole sequence + report.html with its targets",
    flags: { quick: {}, imagesDir: {}, out: {}, json: {} },
  },
  llm: {
    doc: "chat model tokens/s served over the OpenAI spec, and the in-process ceiling",
    flags: { url: {}, model: {}, concurrencyLevels: {}, requests: {}, rounds: {}, maxTokens: {}, maxBatchSize: {}, threads: {}, noInProcess: {}, json: {} },
  },
  stream: {
    doc: "SSE streaming overhead, no model",
    flags: { concurrencyLevels: {}, tokens: {}, requests: {}, maxBatchSize: {}, json: {} },
  },
  soak: {
    invocation: "batchwise soak",
    doc: "sustained real-photo load on the classifier: errors, p50/p99 and server RSS per window (exits 1 on any error)",
    flags: {
      minutes: { default: 5 },
      concurrency: { default: 64 },
      window: { default: 30 },
      // RSS climbs for the first minutes of load (allocator arenas, sharp's caches, onnxruntime's buffers for each
      // batch size), then stays level: the windows that count start after it
      warmup: { default: 60 },
      imagesDir: {},
      maxBatchSize: {},
      batchTimeout: {},
      workers: {},
      precision: { default: "auto" },
      json: {},
    },
  },
  "scale-out-check": {
    invocation: "npx tsx scripts/scale-out-check.ts",
    doc: "three replicas behind haproxy under load while one is drained and one killed: no request may fail",
    flags: { concurrency: { default: 32 }, watchdogSeconds: { default: 600 } },
  },
  "scale-out-bench": {
    invocation: "npx tsx scripts/scale-out-bench.ts",
    doc: "img/s of one replica vs three behind haproxy, interleaved rounds",
    flags: { rounds: { default: 2 }, requests: { default: 480 }, concurrency: { default: 32 }, form: {}, maxBatchSize: { default: 64 } },
  },
  "connection-storm": {
    invocation: "npx tsx scripts/connection-storm.ts",
    doc: "busy clients' throughput with and without a crowd of idle keep-alive connections",
    flags: { idle: { default: 2000 }, busy: { default: 64 }, seconds: { default: 6 }, rounds: { default: 3 }, keepAlive: { default: 12 } },
  },
});

export type CommandName = keyof typeof COMMANDS;

type DeclaredFlags<C extends CommandName> = (typeof COMMANDS)[C]["flags"];
/** A command's parsed flags: typed, checked, defaults filled in; a flag with no default may be undefined. */
export type Flags<C extends CommandName> = {
  [N in keyof DeclaredFlags<C> & FlagName]: DeclaredFlags<C>[N] extends { default: unknown } ? FlagValue<N> : FlagValue<N> | undefined;
};

/** A flag the command does not take, or a value its declaration refuses. */
export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

/** Parse `argv` for `command`; undefined when `--help` was asked for (the caller prints {@link commandHelp}). */
export function parseFlags<C extends CommandName>(command: C, argv: string[], environment: NodeJS.ProcessEnv = process.env): Flags<C> | undefined {
  const declared = Object.entries(COMMANDS[command].flags) as [FlagName, { default?: unknown }][];
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = { help: { type: "boolean" } };
  for (const [name] of declared) {
    const d: FlagDeclaration = FLAGS[name];
    for (const flag of [d.flag, ...(d.aliases ?? [])]) options[flag] = { type: d.kind === "boolean" ? "boolean" : "string", ...(d.kind === "strings" ? { multiple: true } : {}) };
  }
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true }).values;
  } catch (error) {
    throw new FlagError(`${(error as Error).message.replace(/\.?\s*(To specify|$)[\s\S]*/, "")} for ${invocationOf(command)} (see --help)`);
  }
  if (values.help) return undefined;
  const result: Record<string, unknown> = {};
  for (const [name, { default: fallback }] of declared) {
    const d: FlagDeclaration = FLAGS[name];
    const given = [d.flag, ...(d.aliases ?? [])].map((f) => values[f]).find((v) => v !== undefined);
    const fromEnv = d.env && environment[d.env] === "1" ? true : undefined;
    result[name] = given === undefined ? fromEnv ?? fallback : parseFlagValue(d, given);
  }
  return result as Flags<C>;
}

/** A flag's text as its kind's value, checked against its bounds; the error names the flag and what it wants. */
function parseFlagValue(d: FlagDeclaration, given: string | boolean | (string | boolean)[]): unknown {
  if (d.kind === "boolean") return given === true;
  if (d.kind === "strings") return (Array.isArray(given) ? given : [given]).map(String);
  const text = String(given);
  const fail = (wanted: string): never => {
    throw new FlagError(`--${d.flag} must be ${wanted}, got ${JSON.stringify(text)}`);
  };
  const bound = d.min === undefined ? "" : ` ≥ ${d.min}`;
  const number = (part: string, integer: boolean) => {
    const n = part.trim() === "" ? NaN : Number(part);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || (d.min !== undefined && n < d.min)) {
      fail(d.kind === "list" ? `comma-separated whole numbers${bound}` : `${integer ? "a whole number" : "a number"}${bound}`);
    }
    return n;
  };
  switch (d.kind) {
    case "integer":
      return number(text, true);
    case "number":
      return number(text, false);
    case "list":
      return text.split(",").map((part) => number(part, true));
    case "enum":
      return d.values!.includes(text) ? text : fail(`one of ${d.values!.join(", ")}`);
    default:
      return text;
  }
}

/** `--help` of one command: its doc, then one line per flag with its default. */
export function commandHelp(command: CommandName): string {
  const invocation = invocationOf(command);
  const lines = Object.entries(COMMANDS[command].flags).map(([name, { default: fallback }]: [string, { default?: unknown }]) => {
    const d: FlagDeclaration = FLAGS[name as FlagName];
    const spelled = [d.flag, ...(d.aliases ?? [])].map((f) => `--${f}`).join(", ");
    const shown = fallback === undefined ? "" : ` (default ${Array.isArray(fallback) ? fallback.join(",") : String(fallback)})`;
    return `  ${spelled}${argumentOf(d)}`.padEnd(46) + `${d.doc}${shown}${d.env ? ` (env ${d.env}=1)` : ""}`;
  });
  return [`Usage: ${invocation} [options]`, `  ${COMMANDS[command].doc}`, ...lines, `  --help`.padEnd(46) + "this text"].join("\n");
}

/** The overview: every bench command with its one-line doc. */
export function benchUsage(): string {
  const kinds = (Object.keys(COMMANDS) as CommandName[]).filter((c) => !(COMMANDS[c] as CommandDeclaration).invocation);
  return [
    "Usage: batchwise bench <kind> [options] [--json FILE]",
    "  Defaults are what `npm start` serves (precision auto, one single-threaded worker per core, batching 64 / 0.01 s);",
    "  flags change one thing at a time. `batchwise bench <kind> --help` lists a kind's flags.",
    ...kinds.map((c) => `  ${c.padEnd(13)}${COMMANDS[c].doc}`),
  ].join("\n");
}

/** `batchwise bench <name>`, or the command's own invocation (`batchwise soak`, a script). */
export function invocationOf(command: CommandName): string {
  return (COMMANDS[command] as CommandDeclaration).invocation ?? `batchwise bench ${command}`;
}

/** A `bench` kind (not soak, not a script). */
export function isBenchKind(name: string | undefined): name is CommandName {
  return name !== undefined && Object.hasOwn(COMMANDS, name) && !(COMMANDS[name as CommandName] as CommandDeclaration).invocation;
}

/**
 * A script's flags from process.argv: `--help` prints the help and exits 0, a bad flag prints its error and exits 2.
 * (`batchwise bench` and `batchwise soak` go through ./cli.ts instead.)
 */
export function scriptFlags<C extends CommandName>(command: C, argv = process.argv.slice(2)): Flags<C> {
  try {
    const flags = parseFlags(command, argv);
    if (flags) return flags;
    console.log(commandHelp(command));
    process.exit(0);
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
}

function argumentOf(d: FlagDeclaration): string {
  if (d.kind === "boolean") return "";
  if (d.kind === "enum") return ` ${d.values!.join("|")}`;
  return ` ${d.placeholder ?? (d.kind === "list" ? "N,N,…" : "N")}`;
}
