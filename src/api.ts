import { brandUserError, type ErrorCode } from "./server/errors.js";
import type { Upload } from "./server/upload.js";

/**
 * The model API contract: what a model must implement to be served.
 *
 * The server calls the hooks in one straight line:
 *
 *   request body → decodeRequest → (queue) → batch → predict → unbatch → encodeResponse → response
 *
 * `decodeRequest` and `encodeResponse` run on the main thread (they are async, so I/O-bound work such as sharp
 * decoding does not block it). `setup`, `batch`, `predict` and `unbatch` run inside a worker thread, which owns
 * the model. Because a class cannot cross a thread boundary, a worker loads the API from a module path and an
 * export name (see {@link ApiSource}); the main thread constructs its own instance from the same source, without
 * calling `setup`.
 *
 * Streaming: when `predict` is an async generator, each value it yields is unbatched and sent to the client as it
 * is produced; `encodeResponse` is then called once per item.
 *
 * @example
 * ```ts
 * export class SumAPI extends ModelAPI<{ numbers: number[] }, number, number, { sum: number }> {
 *   decodeRequest(request) { return request.numbers.reduce((a, b) => a + b, 0); }
 *   predict(batch: number[]) { return batch.map((x) => x * 2); }
 *   encodeResponse(output) { return { sum: output }; }
 * }
 * ```
 */

/** Where a model runs. `threads` is this worker's share of the CPU cores, so N workers never oversubscribe. */
export interface Device {
  accelerator: Accelerator;
  /** Device index for GPUs; 0 for the CPU. */
  index: number;
  /** Intra-op threads this worker may use. */
  threads: number;
  /** "cpu", "cuda:0", "webgpu:0". */
  id: string;
}

export type Accelerator = "cpu" | "cuda" | "webgpu";
export type AcceleratorChoice = Accelerator | "auto";
export type Precision = "fp32" | "fp16" | "bf16" | "int8";
export type PrecisionChoice = Precision | "auto";

export interface SetupContext {
  /** 0-based index of the worker that owns this instance (-1 when running in-process). */
  workerId: number;
  /** Batching configuration of the endpoint, so `setup` can e.g. warm up at the right batch size. */
  maxBatchSize: number;
}

export interface RequestContext {
  /** Aborted when the client disconnects. */
  signal: AbortSignal;
  headers: Record<string, string | string[] | undefined>;
  /** Free-form per-request state, shared between decodeRequest and encodeResponse. */
  state: Record<string, unknown>;
}

export interface PredictContext {
  /** One signal per batch item, aborted when that item's client went away (a streaming API should stop it). */
  signals: AbortSignal[];
  device: Device;
  /**
   * Each item's W3C traceparent (its request's span where an OpenTelemetry SDK is registered, else the caller's
   * header), for a model that calls other services; absent when no item of the batch has one.
   */
  traceparents?: (string | undefined)[];
}

/** Values a worker may return from predict: a batch output, or an async stream of batch outputs. */
export type PredictResult<B> = B | Promise<B> | AsyncIterable<B>;

/**
 * Base class for a served model. `In` is one decoded input, `Out` one prediction. `batch` turns `In[]` into
 * whatever `predict` takes; `unbatch` turns what `predict` returns back into `Out[]` (one per input, same order).
 * The defaults pass arrays through unchanged.
 */
export abstract class ModelAPI<Req = unknown, In = unknown, Out = unknown, Res = unknown> {
  /** Metadata shown by GET /info (model name, precision, labels…); filled in by setup or the constructor. */
  info: Record<string, unknown> = {};

  /** Load the model. Runs once per worker, before any request reaches it. */
  setup(_device: Device, _ctx: SetupContext): void | Promise<void> {}

  /** Validate and decode one request. Throw {@link BadRequestError} for input the client got wrong. */
  decodeRequest(request: Req, _ctx: RequestContext): In | Promise<In> {
    return request as unknown as In;
  }

  /** Combine decoded inputs into one model input. */
  batch(inputs: In[]): unknown {
    return inputs;
  }

  /** Run the model on a batch (an array of one item when batching is off). May be an async generator. */
  abstract predict(x: any, ctx: PredictContext): PredictResult<any>;

  /** Split a batch output into one output per input. */
  unbatch(output: unknown): Out[] {
    if (!Array.isArray(output)) {
      throw new ContractError("predict() returned a non-array value; implement unbatch() to split it per input");
    }
    return output as Out[];
  }

  /** Turn one output into the response body. */
  encodeResponse(output: Out, _ctx: RequestContext): Res | Promise<Res> {
    return output as unknown as Res;
  }

  /**
   * Content types this API takes as raw bytes: a body of one of them, or the file of a `multipart/form-data` body,
   * reaches decodeRequest as an {@link Upload} (no base64, no JSON). Empty by default: JSON bodies only.
   */
  binaryTypes: readonly string[] = [];

  /**
   * Optional readiness check beyond "setup finished" (e.g. a GPU still healthy). Runs where the model lives: in
   * each worker, on the instance that ran setup. /health and /readyz answer 503 while it returns false.
   */
  health?(): boolean | Promise<boolean>;

  /**
   * Series this API feeds with {@link log}, by name: each becomes `batchwise_user_<name>` in /metrics (a histogram or
   * a gauge, with an `endpoint` label and the label names declared here). A name logged but not declared reaches the
   * loggers only.
   */
  metrics?: Record<string, MetricDeclaration>;

  /**
   * Record a value from any hook, on whichever thread runs it (a worker's values travel to the main thread): it is
   * observed by the declared series in /metrics (see {@link metrics}) and handed to every `loggers` entry. Values
   * from all workers land in the same series. Costs nothing when the API is not served.
   *
   * @example
   * ```ts
   * metrics = { tokens_per_batch: { type: "histogram", buckets: [16, 64, 256] } };
   * predict(batch: string[]) { this.log("tokens_per_batch", countTokens(batch)); … }
   * ```
   */
  log(name: string, value: number, labels?: Record<string, string>): void {
    (this as { [LOG_SINK]?: LogSink })[LOG_SINK]?.(name, value, labels);
  }
}

/** How a user series is kept: a histogram (distribution, with `buckets`) or a gauge (the last value). */
export interface MetricDeclaration {
  type: "histogram" | "gauge";
  help?: string;
  /** Histogram bucket upper bounds (prom-client's defaults when absent). */
  buckets?: number[];
  /** Label names `log()` may pass (besides `endpoint`, which the server adds). */
  labelNames?: string[];
}

/** Where an API instance's `log()` calls go: set by the server on each instance it serves. */
export type LogSink = (name: string, value: number, labels?: Record<string, string>) => void;

/** The property holding an instance's {@link LogSink}; a global symbol, so a second copy of batchwise shares it. */
export const LOG_SINK: unique symbol = Symbol.for("batchwise.logSink");

/**
 * How a worker finds an API: a module (absolute path or file: URL) and the name of an exported class.
 * `options` must be structured-cloneable; it is passed to the class constructor on every thread.
 */
export interface ApiSource<Options = unknown> {
  module: string;
  export: string;
  options?: Options;
}

export type ApiConstructor = new (options?: any) => ModelAPI<any, any, any, any>;

/**
 * The client sent something the API cannot use: becomes a 400 (or the 4xx `status` given) with this code and
 * message. Recognised by a brand, so it works even when the API module loaded a second copy of batchwise.
 */
export class BadRequestError extends Error {
  constructor(message: string, readonly code: ErrorCode | (string & {}) = "bad_request", readonly status = 400) {
    super(message);
    this.name = "BadRequestError";
    brandUserError(this);
  }
}

/** The API broke its contract (e.g. unbatch returned the wrong number of outputs): a bug in the API, not the client. */
export class ContractError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ContractError";
  }
}

export function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value != null && typeof (value as any)[Symbol.asyncIterator] === "function";
}
