import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isMainThread } from "node:worker_threads";
import { ModelAPI, type ApiConstructor, type ApiSource } from "../api/model-api.js";
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

function isApiSource(value: unknown): value is ApiSource {
  return (
    typeof value === "object" && value !== null && typeof (value as ApiSource).module === "string" &&
    typeof (value as ApiSource).export === "string" && !(value instanceof ModelAPI)
  );
}

function isApiClass(value: unknown): value is ApiConstructor {
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
    const from = module === undefined ? callerModule() : resolveModulePath(module, callerModule());
    if (!from) throw new OptionError(`Cannot tell which file exports ${api.name}: pass \`module: import.meta.url\``);
    return { source: { module: from, export: api.name, options: apiOptions }, instance: new (api as new (options: unknown) => ModelAPI)(apiOptions) };
  }
  if (isApiSource(api)) {
    if (apiOptions !== undefined) throw new OptionError("apiOptions is for an api class; an ApiSource carries its own `options`");
    const file = resolveModulePath(api.module, callerModule());
    if (callerFiles().includes(file)) {
      throw new OptionError(
        `serve/createServer was called from ${path.basename(file)}, the module the api source points to: importing it ` +
          `again would wait for itself. Pass the class instead: serve({ api: ${api.export} })`,
      );
    }
    const source = { ...api, module: file };
    return { source, instance: await loadApi(source) };
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
  const imported = import(specifier).catch((error: NodeJS.ErrnoException) => {
    // The .ts beside a missing .js was chosen (see resolveModulePath), but this process does not run TypeScript.
    if (error?.code !== "ERR_UNKNOWN_FILE_EXTENSION" || !/\.[mc]?ts$/.test(specifier)) throw error;
    throw new OptionError(
      `${fileURLToPath(specifier)} is TypeScript and its .js does not exist: run the server under tsx ` +
        "(`npx tsx server.ts`), or compile both files and run the compiled server",
    );
  }).then((mod: Record<string, unknown>) => {
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
  const api = new (Api as new (options: unknown) => ModelAPI)(source.options);
  if (typeof api.predict !== "function") {
    throw new Error(`"${source.export}" from ${source.module} is not a ModelAPI (no predict method)`);
  }
  return api;
}

/**
 * The file an API module path names, spelled as a TypeScript `nodenext` import is, so one spelling works under tsx and
 * compiled: a relative path is taken from the file that called serve/createServer (as an import would be; the
 * working directory when that file has no such module), and a `.js` (`.mjs`, `.cjs`) that does not exist but has a
 * `.ts` (`.mts`, `.cts`) beside it is that TypeScript file: the source, run through tsx.
 */
export function resolveModulePath(module: string, caller: string | undefined): string {
  if (module.startsWith("file:")) return typeScriptTwin(fileURLToPath(module));
  if (path.isAbsolute(module)) return typeScriptTwin(module);
  const fromCaller = caller && /^\.\.?[\\/]/.test(module) ? typeScriptTwin(path.resolve(path.dirname(caller), module)) : undefined;
  return fromCaller && existsSync(fromCaller) ? fromCaller : typeScriptTwin(path.resolve(module));
}

function typeScriptTwin(file: string): string {
  if (existsSync(file)) return file;
  const twin = file.replace(/\.([mc]?)js$/, ".$1ts");
  return twin !== file && existsSync(twin) ? twin : file;
}
