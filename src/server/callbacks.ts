import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Device } from "../api/model-api.js";
import { offeredClasses } from "./api-source.js";
import { OptionError } from "./options.js";
import type { CallbackContext, RequestHooks, RequestRecord } from "./request-record.js";

/**
 * Callbacks: user code the server calls at each step of its life and of every request, as LitServe's `Callback`
 * (on_before_setup … on_after_predict, on_request/on_response, on_server_start/end). Each method is optional and may
 * be sync or async (the step waits for a returned promise). A callback that throws or rejects is logged and counted
 * in `batchwise_callback_errors_total{hook}`; it never fails the request.
 *
 * Request-side methods receive the request's {@link CallbackContext}: the same object from onRequest to onResponse,
 * with the endpoint path, the request id, the stage timings so far and a `state` to share between methods.
 *
 * onWorkerSetup, onBeforePredict and onAfterPredict run where the model runs: in each worker thread. A function
 * cannot cross a thread boundary, so a callback with any of them is given by module path, like an API:
 * `{ module, export, options? }` (the export: an object with the methods, or a class constructed with `options`).
 */
export interface Callback {
  onServerStart?(ctx: ServerCallbackContext): unknown;
  onServerEnd?(ctx: ServerCallbackContext): unknown;
  onRequest?(ctx: CallbackContext): unknown;
  onResponse?(ctx: CallbackContext): unknown;
  onBeforeDecode?(ctx: CallbackContext): unknown;
  onAfterDecode?(ctx: CallbackContext): unknown;
  onBeforeEncode?(ctx: CallbackContext): unknown;
  onAfterEncode?(ctx: CallbackContext): unknown;
  onWorkerSetup?(ctx: WorkerCallbackContext): unknown;
  onBeforePredict?(ctx: PredictCallbackContext): unknown;
  onAfterPredict?(ctx: PredictCallbackContext): unknown;
}

/** Where a worker finds a callback: a module (path or file: URL), an export, and options for a class. */
export interface CallbackSource {
  module: string;
  export: string;
  options?: unknown;
}

export interface ServerCallbackContext {
  /** The base URL the server listens on ("" in onServerEnd of a server that never listened). */
  url: string;
  /** Every endpoint's path. */
  endpoints: string[];
}

export interface WorkerCallbackContext {
  endpoint: string;
  /** 0-based worker index (-1 on the main thread, workersPerDevice: 0). */
  workerId: number;
  device: Device;
}

export interface PredictCallbackContext extends WorkerCallbackContext {
  /** The ids of the batch's requests, in batch order. */
  requestIds: string[];
  batchSize: number;
  /** onAfterPredict: how long batch → predict → unbatch took, ms. */
  timings: { predict?: number };
}

/** The predict-side hooks, composed (absent when no callback gives them). */
export interface PredictHooks {
  onWorkerSetup?: (ctx: WorkerCallbackContext) => void | Promise<void>;
  onBeforePredict?: (ctx: PredictCallbackContext) => void | Promise<void>;
  onAfterPredict?: (ctx: PredictCallbackContext) => void | Promise<void>;
}

const PREDICT_SIDE = ["onWorkerSetup", "onBeforePredict", "onAfterPredict"] as const;
const REQUEST_SIDE = ["onBeforeDecode", "onAfterDecode", "onBeforeEncode", "onAfterEncode"] as const;

export type CallbackFailure = (hook: string, error: unknown) => void;

export function isCallbackSource(value: unknown): value is CallbackSource {
  const v = value as CallbackSource;
  return typeof v === "object" && v !== null && typeof v.module === "string" && typeof v.export === "string";
}

/**
 * Import a callback from its source: an exported object, or a class constructed with `options`. In a worker, a class
 * that the serving module handed over (it never finishes loading there) is taken instead of importing it.
 */
export async function loadCallback(source: CallbackSource): Promise<Callback> {
  const file = source.module.startsWith("file:") ? source.module : pathToFileURL(path.resolve(source.module)).href;
  const exported = offeredClasses().get(source.export) ?? ((await import(file)) as Record<string, unknown>)[source.export];
  if (typeof exported === "function") return new (exported as new (options?: unknown) => Callback)(source.options);
  if (typeof exported === "object" && exported !== null) return exported as Callback;
  throw new OptionError(`callbacks: module ${source.module} has no export "${source.export}" (an object or a class)`);
}

/**
 * Compose one hook of several callbacks into one function: undefined when none has it (so a server without callbacks
 * runs no code and allocates nothing for them), else each in order, waiting for those that return a promise.
 */
export function compose<C>(hook: string, callbacks: Callback[], failed: CallbackFailure): ((ctx: C) => void | Promise<void>) | undefined {
  const fns = callbacks
    .filter((c) => typeof (c as Record<string, unknown>)[hook] === "function")
    .map((c) => ((c as Record<string, (ctx: C) => unknown>)[hook]).bind(c));
  if (fns.length === 0) return undefined;
  const call = (fn: (ctx: C) => unknown, ctx: C): Promise<void> | undefined => {
    try {
      const result = fn(ctx);
      if (result && typeof (result as PromiseLike<unknown>).then === "function") {
        return Promise.resolve(result).then(noop, (error) => failed(hook, error));
      }
    } catch (error) {
      failed(hook, error);
    }
    return undefined;
  };
  if (fns.length === 1) return (ctx) => call(fns[0], ctx);
  return (ctx) => {
    let chain: Promise<void> | undefined;
    for (const fn of fns) chain = chain ? chain.then(() => call(fn, ctx)) : call(fn, ctx);
    return chain;
  };
}

const noop = () => {};

/** The predict-side hooks of the given callbacks (in a worker, or on the main thread for workersPerDevice: 0). */
export function predictHooks(callbacks: Callback[], failed: CallbackFailure): PredictHooks {
  return {
    onWorkerSetup: compose("onWorkerSetup", callbacks, failed),
    onBeforePredict: compose("onBeforePredict", callbacks, failed),
    onAfterPredict: compose("onAfterPredict", callbacks, failed),
  };
}

/** The server's callbacks, loaded and composed once: what each step of the server calls. */
export class Callbacks {
  readonly request: RequestHooks;
  readonly predict: PredictHooks;
  readonly onRequest?: (ctx: RequestRecord) => void | Promise<void>;
  readonly onResponse?: (ctx: RequestRecord) => void | Promise<void>;
  readonly onServerStart?: (ctx: ServerCallbackContext) => void | Promise<void>;
  readonly onServerEnd?: (ctx: ServerCallbackContext) => void | Promise<void>;
  /** What each worker loads (the callbacks given by module). */
  readonly sources: CallbackSource[];
  /** Some callback runs around predict: the workers need each batch's request ids. */
  readonly predictSide: boolean;
  /** Any request-side callback at all (else a request needs no record for them). */
  readonly any: boolean;

  private constructor(callbacks: Callback[], sources: CallbackSource[], readonly failed: CallbackFailure) {
    this.sources = sources;
    const request: RequestHooks = {};
    for (const hook of REQUEST_SIDE) {
      const fn = compose<RequestRecord>(hook, callbacks, failed);
      if (fn) request[hook] = fn;
    }
    this.request = request;
    this.predict = predictHooks(callbacks, failed);
    this.predictSide = PREDICT_SIDE.some((hook) => this.predict[hook] !== undefined);
    this.onRequest = compose("onRequest", callbacks, failed);
    this.onResponse = compose("onResponse", callbacks, failed);
    this.onServerStart = compose("onServerStart", callbacks, failed);
    this.onServerEnd = compose("onServerEnd", callbacks, failed);
    this.any = Object.keys(request).length > 0 || this.onRequest !== undefined || this.onResponse !== undefined;
  }

  /**
   * Check and load the `callbacks` option. An object given inline may not have predict-side methods (they run in the
   * workers, which can only import them); `caller` is the module that called createServer, which cannot be imported
   * again while it waits for the server.
   */
  static async create(given: unknown, failed: CallbackFailure, caller: string | undefined): Promise<Callbacks> {
    if (given === undefined) return new Callbacks([], [], failed);
    if (!Array.isArray(given)) throw new OptionError("callbacks must be a list of callback objects or { module, export } sources");
    const callbacks: Callback[] = [];
    const sources: CallbackSource[] = [];
    for (const [i, entry] of given.entries()) {
      if (typeof entry === "function") {
        // A class, as `api: MyAPI` is one: constructed here, and where it has worker-side methods, in each worker from
        // the file that calls serve (which hands it over there).
        const instance = new (entry as new () => Callback)();
        callbacks.push(instance);
        if (PREDICT_SIDE.some((hook) => typeof (instance as Record<string, unknown>)[hook] === "function")) {
          if (!caller) throw new OptionError(`callbacks[${i}]: cannot tell which file defines ${entry.name}; give { module, export }`);
          sources.push({ module: caller, export: entry.name });
        }
        continue;
      }
      if (isCallbackSource(entry)) {
        const file = entry.module.startsWith("file:") ? fileURLToPath(entry.module) : path.resolve(entry.module);
        if (caller && file === caller) {
          throw new OptionError(`callbacks[${i}]: ${path.basename(file)} calls serve/createServer itself; put the callback in a module of its own`);
        }
        sources.push(entry);
        callbacks.push(await loadCallback(entry));
        continue;
      }
      if (typeof entry !== "object" || entry === null) throw new OptionError(`callbacks[${i}] must be an object or { module, export }`);
      const inWorker = PREDICT_SIDE.filter((hook) => typeof (entry as Record<string, unknown>)[hook] === "function");
      if (inWorker.length > 0) {
        throw new OptionError(
          `callbacks[${i}]: ${inWorker.join(", ")} run in the model's worker thread: give this callback as { module, export } (the file that exports it)`,
        );
      }
      callbacks.push(entry as Callback);
    }
    return new Callbacks(callbacks, sources, failed);
  }
}
