import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isMainThread } from "node:worker_threads";
import { ModelAPI, type ApiConstructor, type ApiSource } from "../api.js";
import { OptionError } from "./options.js";

/**
 * How a served API reaches its worker threads. A class cannot cross a thread boundary, so a worker imports the module
 * that defines it (or that calls `serve` with it) and takes the class from there. This module makes the one-file
 * form work, as LitServe users write it:
 *
 *   export class MyAPI extends ModelAPI { … }
 *   await serve({ api: MyAPI });
 *
 * The main thread constructs its instance from the class it was given (importing its own module, still suspended in
 * that top-level await, would wait for itself forever). A worker importing the module runs `serve` again: there it
 * starts nothing, hands the class to the worker (see {@link offerApis}) and never resolves, so the rest of the
 * module's top level (logging a URL, say) runs only on the main thread.
 */

/** Set by the worker entry before it imports the API module; a global so that every copy of batchwise sees it. */
const WORKER_SLOT = Symbol.for("batchwise.workerApiSlot");
interface WorkerSlot {
  offer(Api: ApiConstructor): void;
}

export function isApiSource(value: unknown): value is ApiSource {
  return (
    typeof value === "object" && value !== null && typeof (value as ApiSource).module === "string" &&
    typeof (value as ApiSource).export === "string" && !(value instanceof ModelAPI)
  );
}

export function isApiClass(value: unknown): value is ApiConstructor {
  return typeof value === "function" && value.prototype instanceof ModelAPI;
}

/** True inside a batchwise model worker: serve/createServer must not start a server there. */
export function inModelWorker(): boolean {
  return !isMainThread && (globalThis as Record<symbol, unknown>)[WORKER_SLOT] !== undefined;
}

/** Inside a model worker: give the worker the API classes a module serves (and any other class it names, kept). */
export function offerApis(apis: unknown[]): void {
  const slot = (globalThis as Record<symbol, WorkerSlot | undefined>)[WORKER_SLOT];
  for (const api of apis) {
    if (isApiClass(api)) slot?.offer(api);
    else if (typeof api === "function" && api.name) offeredClasses().set(api.name, api);
  }
}

/**
 * Classes other than APIs that a module calling `serve` handed over in a worker (callback classes given to `serve`),
 * by name: that module never finishes loading there, so its exports cannot be imported.
 */
export function offeredClasses(): Map<string, unknown> {
  const key = Symbol.for("batchwise.offeredClasses");
  const global = globalThis as Record<symbol, Map<string, unknown> | undefined>;
  return (global[key] ??= new Map());
}

/**
 * The module a worker imports for a class given without `module`: the first file on the call stack outside
 * batchwise itself, i.e. the file that called serve/createServer.
 */
export function callerModule(): string | undefined {
  const own = path.dirname(path.dirname(fileURLToPath(import.meta.url))); // src/ or dist/
  return callerFiles().find((file) => !file.startsWith(own + path.sep));
}

function callerFiles(): string[] {
  const original = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  try {
    Error.stackTraceLimit = 50;
    Error.prepareStackTrace = (_error, frames) => frames;
    const frames = new Error().stack as unknown as NodeJS.CallSite[];
    return frames
      .map((frame) => frame.getFileName())
      .filter((name): name is string => !!name && !name.startsWith("node:"))
      .map((name) => (name.startsWith("file:") ? fileURLToPath(name) : name));
  } finally {
    Error.prepareStackTrace = original;
    Error.stackTraceLimit = limit;
  }
}

/**
 * The worker-side description of an endpoint's API (undefined for an instance, which can only run in-process), and
 * the main thread's own instance.
 */
export async function resolveApi(
  api: unknown,
  module: string | undefined,
  apiOptions: unknown,
): Promise<{ source?: ApiSource; instance: ModelAPI }> {
  if (isApiClass(api)) {
    const from = module ?? callerModule();
    if (!from) throw new OptionError(`Cannot tell which file exports ${api.name}: pass \`module: import.meta.url\``);
    return { source: { module: from, export: api.name, options: apiOptions }, instance: new api(apiOptions) };
  }
  if (isApiSource(api)) {
    if (apiOptions !== undefined) throw new OptionError("apiOptions is for an api class; an ApiSource carries its own `options`");
    const file = toPath(api.module);
    if (callerFiles().includes(file)) {
      throw new OptionError(
        `serve/createServer was called from ${path.basename(file)}, the module the api source points to: importing it ` +
          `again would wait for itself. Pass the class instead: serve({ api: ${api.export} })`,
      );
    }
    return { source: api, instance: await loadApi(api) };
  }
  if (api instanceof ModelAPI) return { instance: api };
  throw new OptionError("api must be a ModelAPI class, an ApiSource { module, export, options } or a ModelAPI instance");
}

/**
 * Construct an API from its source. In a worker, a module that calls `serve` at its top level never finishes
 * loading (see above): the class it hands over through {@link offerApis} is taken instead.
 */
export async function loadApi(source: ApiSource): Promise<ModelAPI> {
  const specifier = source.module.startsWith("file:") ? source.module : pathToFileURL(path.resolve(source.module)).href;
  const offered = new Promise<ApiConstructor>((resolve) => {
    if (isMainThread) return;
    const slot: WorkerSlot = { offer: (Api) => Api.name === source.export && resolve(Api) };
    (globalThis as Record<symbol, unknown>)[WORKER_SLOT] = slot;
  });
  const imported = import(specifier).then((mod: Record<string, unknown>) => {
    const Api = mod[source.export];
    if (typeof Api !== "function") {
      throw new Error(
        `Module ${source.module} has no exported class "${source.export}" and does not serve it: export the class, ` +
          "or pass `module` (the file that exports it)",
      );
    }
    return Api as ApiConstructor;
  });
  const Api = await Promise.race([imported, offered]);
  const api = new Api(source.options);
  if (typeof api.predict !== "function") {
    throw new Error(`"${source.export}" from ${source.module} is not a ModelAPI (no predict method)`);
  }
  return api;
}

function toPath(module: string): string {
  return module.startsWith("file:") ? fileURLToPath(module) : path.resolve(module);
}
