import { brandUserError, type ErrorCode } from "./errors.js";
import type { Upload } from "./upload.js";

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
 * Streaming: when `predict` is an async generator (the endpoint then needs `stream: true`, checked when the server
 * starts), each array it yields has one entry per input: an output, sent to that input's client at once (through
 * `encodeResponse`); `undefined` when that input has nothing this step; or {@link END_OF_STREAM} when its stream is
 * finished: its response closes then, while the rest of the batch goes on. A stream also ends when the generator
 * returns.
 *
 * @example
 * ```ts
 * import { ModelAPI } from "batchwise";
 *
 * export class SumAPI extends ModelAPI<{ numbers: number[] }, number, number, { sum: number }> {
 *   override decodeRequest(request: { numbers: number[] }) { return request.numbers.reduce((a, b) => a + b, 0); }
 *   predict(batch: number[]) { return batch.map((x) => x * 2); }
 *   override encodeResponse(output: number) { return { sum: output }; }
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
  /** The request's id: its `X-Request-Id` header when the client sent a sane one, else generated; every response and
   * every failure logged for it carry it. */
  requestId: string;
  /** Aborted when the client disconnects. */
  signal: AbortSignal;
  headers: Record<string, string | string[] | undefined>;
  /** Free-form per-request state, shared between decodeRequest and encodeResponse. */
  state: Record<string, unknown>;
}

/**
 * A JSON Schema (draft-07 / 2020-12 keywords fastify's validator knows). TypeBox schemas are JSON Schema as they are;
 * zod users pass `z.toJSONSchema(schema)`.
 */
export type JsonSchema = Record<string, unknown> | boolean;

/** What {@link ModelAPI.authorize} sees of a request: before its body is read. */
export interface AuthorizeRequest {
  method: string;
  /** The path without the query string. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The client's address (the socket's, not X-Forwarded-For). */
  ip: string;
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
 * The entry a streaming predict yields for an input whose stream is finished: that input's response ends at once,
 * while the others of its batch go on. (A registered symbol, so a second copy of batchwise sees the same one.)
 *
 * @example
 * ```ts
 * import { END_OF_STREAM, ModelAPI } from "batchwise";
 *
 * export class Countdown extends ModelAPI<{ n: number }, number, { left: number }, { left: number }> {
 *   override decodeRequest(request: { n: number }) { return request.n; }
 *   async *predict(batch: number[]) {
 *     for (let step = 0; step <= Math.max(...batch); step++) {
 *       yield batch.map((n) => (step < n ? { left: n - step } : step === n ? END_OF_STREAM : undefined));
 *     }
 *   }
 * }
 * ```
 */
export const END_OF_STREAM: unique symbol = Symbol.for("batchwise.endOfStream") as never;
export type EndOfStream = typeof END_OF_STREAM;

/**
 * One batch's outputs as predict returns them (through the default `unbatch`): one entry per input, in input order.
 * A streaming predict yields one such array per step, where an entry may also be `undefined` (nothing for that input
 * this step) or {@link END_OF_STREAM} (that input's stream is finished).
 */
export type BatchOutputs<Out> = (Out | undefined | EndOfStream)[];

/**
 * Base class for a served model. `Req` is a request body, `In` one decoded input, `Out` one prediction, `Res` one
 * response body. `batch` turns `In[]` into `Batch`, what `predict` takes; `unbatch` turns what `predict` returns
 * (`Raw`) back into `Out[]` (one per input, same order). The defaults pass arrays through unchanged, so by default
 * predict takes `In[]` and returns `Out[]` (or a stream of them): tsc checks predict against the class's parameters.
 */
export abstract class ModelAPI<Req = unknown, In = unknown, Out = unknown, Res = unknown, Batch = In[], Raw = BatchOutputs<Out>> {
  /** Metadata shown by GET /info (model name, precision, labels…); filled in by setup or the constructor. */
  info: Record<string, unknown> = {};

  /** Load the model. Runs once per worker, before any request reaches it. */
  setup(_device: Device, _ctx: SetupContext): void | Promise<void> {}

  /** Validate and decode one request. Throw {@link BadRequestError} for input the client got wrong. */
  decodeRequest(request: Req, _ctx: RequestContext): In | Promise<In> {
    return request as unknown as In;
  }

  /** Combine decoded inputs into one model input. */
  batch(inputs: In[]): Batch {
    return inputs as unknown as Batch;
  }

  /**
   * Run the model on a batch (an array of one item when batching is off). May be an async generator (a streaming
   * endpoint: see the class's description for how each input's stream ends).
   */
  abstract predict(batch: Batch, ctx: PredictContext): PredictResult<Raw>;

  /** Split a batch output into one output per input. */
  unbatch(output: Raw): Out[] {
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
   * JSON Schema of the JSON request body. The server checks each JSON body against it with fastify's validator before
   * decodeRequest (a body that breaks it is a 400 `invalid_body` naming the field and the rule), and /openapi.json
   * and /docs show it. Raw bodies of {@link binaryTypes} are not JSON and are not checked.
   */
  requestSchema?: JsonSchema;

  /** JSON Schema of one response body (one NDJSON line when predict streams): documentation in /openapi.json. */
  responseSchema?: JsonSchema;

  /**
   * Decide whether a request may reach this API's routes: runs on the main thread before the body is read, after
   * the server's API key (when one is set). `false` answers 401 `unauthorized`; throw `new HttpError("forbidden")`
   * for a 403. The endpoint option `authorize` replaces it.
   */
  authorize?(request: AuthorizeRequest): boolean | Promise<boolean>;

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
   * import { ModelAPI, type MetricDeclaration } from "batchwise";
   *
   * export class Lengths extends ModelAPI<{ text: string }, string, number, { length: number }> {
   *   override metrics: Record<string, MetricDeclaration> = { batch_chars: { type: "histogram", buckets: [16, 64, 256] } };
   *   override decodeRequest(request: { text: string }) { return request.text; }
   *   predict(batch: string[]) {
   *     this.log("batch_chars", batch.reduce((sum, text) => sum + text.length, 0));
   *     return batch.map((text) => text.length);
   *   }
   *   override encodeResponse(length: number) { return { length }; }
   * }
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
 * How a worker finds an API: a module and the name of an exported class. `options` must be structured-cloneable; it
 * is passed to the class constructor on every thread. `module` is spelled as a TypeScript `nodenext` import: a
 * path relative to the file that calls serve/createServer (or absolute, or a file: URL), ending `.js`; where that
 * `.js` does not exist but the `.ts` beside it does (the source, run under tsx), the `.ts` is loaded.
 *
 * @example
 * ```ts
 * import { serve, type ApiSource } from "batchwise";
 *
 * const api: ApiSource<{ factor: number }> = { module: "./doubler-api.js", export: "Doubler", options: { factor: 2 } };
 * await serve({ api });
 * ```
 */
export interface ApiSource<Options = unknown> {
  module: string;
  export: string;
  options?: Options;
  /** How this API is best served; createServer applies these where the code, flags and environment say nothing. */
  servingDefaults?: ServingDefaults;
}

/**
 * Serving options an API comes with (the classifier batches up to 64 images on a worker per core, say): createServer,
 * serve() and the CLI lay them under what the code, the flags and the environment set, and over the declared defaults.
 */
export interface ServingDefaults {
  maxBatchSize?: number;
  batchTimeout?: number;
  workersPerDevice?: number;
  maxBatchesPerWorker?: number;
  idempotent?: boolean;
  /** Server-wide: applies when this API is the server's only endpoint. */
  maxPayloadSize?: number;
}

/** Any served API, whatever its type parameters. */
export type AnyModelAPI = ModelAPI<unknown, unknown, unknown, unknown, unknown, unknown>;

/** A ModelAPI class, as `api:` takes it: constructed with its `options` on every thread. */
export type ApiConstructor<Options = never> = new (options: Options) => AnyModelAPI;

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
  return value != null && typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === "function";
}
