import { stageSpan } from "./tracing.js";

/**
 * What the server knows about one request as it goes down the line: which endpoint, its id, its deadline and when
 * each stage began and ended. One small object per request, made by the route; the batcher, the endpoint, the
 * Server-Timing header, the callbacks (it is their context) and the tracing spans all read the same one, so no stage
 * allocates its own.
 */

/** Milliseconds spent in each stage so far (undefined: the stage has not run, or not yet). */
export interface RequestTimings {
  /** decodeRequest, on the main thread. */
  decode?: number;
  /** From the queue to a worker. */
  queue?: number;
  /** batch → predict → unbatch as the worker measured it; a stream: up to its first output. */
  predict?: number;
  /** encodeResponse of every output so far. */
  encode?: number;
  /** How many requests shared the batch this one ran in. */
  batchSize?: number;
  /** From arrival until now (or until the response was finished, in onResponse). */
  total: number;
}

/** The context every request-side callback receives: the same object from onRequest to onResponse. */
export interface CallbackContext {
  /** The endpoint's path (`/predict`, `/v1/chat/completions`). */
  readonly endpoint: string;
  /** The request's id (fastify's request id; the same one the logs carry). */
  readonly requestId: string;
  /** The HTTP status, once the response is finished (onResponse). */
  readonly status?: number;
  readonly timings: RequestTimings;
  /** Free-form state a callback may keep for a later callback of the same request. */
  readonly state: Record<string, unknown>;
}

/** A hook on the request path: resolves (or returns) when the callbacks given for it are done. */
export type RequestHook = (record: RequestRecord) => void | Promise<void>;

/** The request-side hooks an endpoint runs; each is absent when no callback gives it (absent costs nothing). */
export interface RequestHooks {
  onBeforeDecode?: RequestHook;
  onAfterDecode?: RequestHook;
  onBeforeEncode?: RequestHook;
  onAfterEncode?: RequestHook;
}

const NO_HOOKS: RequestHooks = {};

export class RequestRecord implements CallbackContext {
  readonly arrivedAt = performance.now();
  status?: number;
  decodeStart = 0;
  decodeEnd = 0;
  enqueuedAt = 0;
  /** Left the queue: dispatched in a batch, or dropped (deadline, queue timeout, client gone). */
  dequeuedAt = 0;
  /** Measured where the model runs; -1 until the worker reported it. */
  predictMs = -1;
  /** A stream's first output arrived on the main thread (0: not yet). */
  firstOutputAt = 0;
  encodeMs = 0;
  private encodeStart = 0;
  batchSize = 0;
  /** The tracing span of this request, when a tracer is active (see tracing.ts). */
  span: unknown = undefined;
  /** The caller's W3C traceparent header, passed on to the model (see tracing.ts). */
  traceparent: string | undefined = undefined;
  /** A stream's headers went out (0: not a stream, or not yet). */
  streamStart = 0;
  private stateObject: Record<string, unknown> | undefined;

  constructor(
    readonly endpoint: string,
    readonly requestId: string,
    /** performance.now() after which the request's work is dropped (X-Request-Timeout); undefined: none. */
    readonly deadline: number | undefined,
    readonly hooks: RequestHooks = NO_HOOKS,
  ) {}

  get state(): Record<string, unknown> {
    return (this.stateObject ??= {});
  }

  // The stages' marks and callbacks; each returns the callbacks' promise only when one of them is async.
  beforeDecode(): void | Promise<void> {
    this.decodeStart = performance.now();
    return this.hooks.onBeforeDecode?.(this);
  }
  afterDecode(): void | Promise<void> {
    this.decodeEnd = performance.now();
    if (this.span) stageSpan(this, "decode", this.decodeStart, this.decodeEnd);
    return this.hooks.onAfterDecode?.(this);
  }
  beforeEncode(): void | Promise<void> {
    this.encodeStart = performance.now();
    return this.hooks.onBeforeEncode?.(this);
  }
  afterEncode(): void | Promise<void> {
    const now = performance.now();
    this.encodeMs += now - this.encodeStart;
    if (this.span && !this.streamStart) stageSpan(this, "encode", this.encodeStart, now);
    return this.hooks.onAfterEncode?.(this);
  }

  /** True when the deadline has passed at `now`. */
  expired(now = performance.now()): boolean {
    return this.deadline !== undefined && now >= this.deadline;
  }

  get timings(): RequestTimings {
    const timings: RequestTimings = { total: performance.now() - this.arrivedAt };
    if (this.decodeEnd) timings.decode = this.decodeEnd - this.decodeStart;
    if (this.dequeuedAt) timings.queue = this.dequeuedAt - this.enqueuedAt;
    if (this.predictMs >= 0) timings.predict = this.predictMs;
    else if (this.firstOutputAt) timings.predict = this.firstOutputAt - this.dequeuedAt;
    if (this.encodeMs) timings.encode = this.encodeMs;
    if (this.batchSize) timings.batchSize = this.batchSize;
    return timings;
  }
}
