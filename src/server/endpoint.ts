import type { ResourceLimits } from "node:worker_threads";
import {
  isAsyncIterable,
  type AcceleratorChoice,
  type AnyModelAPI,
  type ApiConstructor,
  type ApiSource,
  type Device,
  type ModelAPI,
  type RequestContext,
} from "../api/model-api.js";
import { resolveAccelerator, type AcceleratorDecision } from "../runtime/device.js";
import { plainSpec } from "./plain-spec.js";
import { resolveApi } from "./api-source.js";
import type { Authorize } from "./authorize.js";
import { Batcher } from "./batcher.js";
import type { Cancellation } from "./cancellation.js";
import { errors } from "../api/errors.js";
import { formatSetupFailure, RequestFailures } from "./failure-log.js";
import { checkOptions, OptionError } from "./options.js";
import type { Spec, SpecResponse } from "../api/spec.js";
import type { RequestRecord } from "./request-record.js";
import { WorkerPool, type PoolExtensions } from "./worker-pool.js";

/**
 * How one API is served: its path, wire format, batching and workers. Each option is declared, with its default and
 * validation, in options.ts (docs/reference.md's option table is generated from there).
 */
export interface EndpointOptions {
  /** The ModelAPI class (workers import it; see api-source.ts), an ApiSource, or an instance (in-process only). */
  api: ApiConstructor | ApiSource | AnyModelAPI;
  /** Where workers import an `api` class from: `import.meta.url` of the file that exports it or calls `serve`. */
  module?: string;
  /** Passed to the `api` class's constructor on every thread (structured-cloneable). */
  apiOptions?: unknown;
  path?: string;
  spec?: Spec<unknown, unknown>;
  stream?: boolean;
  maxBatchSize?: number;
  batchTimeout?: number;
  workersPerDevice?: number;
  accelerator?: AcceleratorChoice;
  deviceCount?: number | "auto";
  queueTimeout?: number;
  maxQueueSize?: number;
  maxBatchesPerWorker?: number;
  resourceLimits?: ResourceLimits;
  predictTimeout?: number;
  idempotent?: boolean;
  /** Who may call this endpoint (after the server's apiKey); replaces the API's own `authorize`. */
  authorize?: Authorize;
  /** Also expose this endpoint as a tool on `/mcp` (see mcp.ts). */
  mcp?: McpToolOptions;
}

/** An endpoint as an MCP tool: its name, what it does (for the model choosing tools), and optionally its input schema. */
export interface McpToolOptions {
  name: string;
  description?: string;
  /** JSON Schema of the tool's arguments (the request body); default the API's `requestSchema`, else any object. */
  inputSchema?: object;
}

/** EndpointOptions with every default applied (resolve-options.ts). */
export type ResolvedEndpointOptions = EndpointOptions &
  Required<Pick<EndpointOptions, "maxBatchSize" | "batchTimeout" | "workersPerDevice" | "maxBatchesPerWorker" | "accelerator" | "queueTimeout" | "maxQueueSize" | "idempotent" | "stream">>;

export interface ResolvedEndpointConfig {
  path: string;
  /** Whether predict streams: decided once, by the spec, and read from here by everyone else. */
  streams: boolean;
  maxBatchSize: number;
  batchTimeout: number;
  workersPerDevice: number;
  queueTimeout: number;
  maxQueueSize: number;
  maxBatchesPerWorker: number;
  idempotent: boolean;
  accelerator: AcceleratorDecision;
  devices: Device[];
  resourceLimits?: ResourceLimits;
  predictTimeout?: number;
  authorize?: Authorize;
  mcp?: McpToolOptions;
}

/** What an endpoint reports as it works (the server turns these into metrics). */
export interface EndpointEvents {
  batch(path: string, size: number): void;
  retry(path: string, outcome: "retried" | "poison"): void;
}

/** What a load balancer or autoscaler needs to know about one endpoint right now. */
export interface EndpointLoad {
  queued: number;
  decoding: number;
  inflight: number;
  busyWorkers: number;
  readyWorkers: number;
  /** (queued + running) ÷ (ready workers × batch capacity): above 1 the endpoint is behind. */
  saturation: number;
}

/**
 * One served API: the main-thread instance (decode/encode), the batcher and the worker pool. `handle` is the whole
 * request path after HTTP parsing; the server asks an endpoint for its load and readiness instead of reaching in.
 */
export class Endpoint {
  private readonly batcher: Batcher;
  private readonly pool: WorkerPool;
  private inflight = 0;

  private constructor(
    readonly spec: Spec,
    readonly api: ModelAPI,
    readonly config: ResolvedEndpointConfig,
    source: ApiSource | undefined,
    events: EndpointEvents,
    private readonly log: (message: string) => void,
    private readonly exposeErrors: boolean,
    extensions: PoolExtensions | undefined,
  ) {
    this.pool = new WorkerPool({
      extensions,
      source,
      inline: config.workersPerDevice === 0 ? api : undefined,
      devices: config.devices,
      setupContext: { maxBatchSize: config.maxBatchSize },
      stream: config.streams,
      resourceLimits: config.resourceLimits,
      predictTimeout: config.predictTimeout,
      maxBatchesPerWorker: config.maxBatchesPerWorker,
      idempotent: config.idempotent,
      onIdle: () => this.batcher.pump(),
      log,
    });
    this.batcher = new Batcher(this.pool, {
      ...config,
      onBatch: (size) => events.batch(config.path, size),
      onRetry: (outcome) => {
        events.retry(config.path, outcome);
        log(outcome === "retried" ? `${config.path}: a request whose worker died runs again` : `${config.path}: an input stopped a worker twice: answered 500 poison_input`);
      },
    });
  }

  /** Build the endpoint from resolved options (resolve-options.ts); workers start with {@link start}. */
  static async create(
    options: ResolvedEndpointOptions,
    /** Intra-op threads each worker's model may use (the server splits the cores between all its workers). */
    threads: number,
    events: EndpointEvents,
    log: (message: string) => void,
    /** Development: 500 bodies carry the internal error's message (see failure-log.ts). */
    exposeErrors = false,
    /** Callbacks around predict and where workers' logged values go (see callbacks.ts, user-metrics.ts). */
    extensions?: (path: string) => PoolExtensions,
  ): Promise<Endpoint> {
    const spec = options.spec ?? plainSpec({ path: options.path, stream: options.stream });
    const path = options.path ?? spec.path;
    const { maxBatchSize, workersPerDevice } = options;
    const { source, instance } = await resolveApi(options.api, options.module, options.apiOptions);
    if (!source && workersPerDevice > 0) {
      throw new OptionError(
        "An API instance can only run in-process (workersPerDevice: 0). To use worker threads pass the class " +
          "(api: MyAPI) or an ApiSource { module, export, options }.",
      );
    }
    const accelerator = await resolveAccelerator(options.accelerator);
    const deviceCount = options.deviceCount === undefined || options.deviceCount === "auto" ? accelerator.count : options.deviceCount;
    const devices: Device[] = [];
    for (let d = 0; d < deviceCount; d++) {
      for (let w = 0; w < Math.max(1, workersPerDevice); w++) {
        const id = accelerator.accelerator === "cpu" ? "cpu" : `${accelerator.accelerator}:${d}`;
        devices.push({ accelerator: accelerator.accelerator, index: d, threads, id });
      }
    }
    const config: ResolvedEndpointConfig = {
      path,
      streams: spec.streamsPredict,
      maxBatchSize,
      batchTimeout: options.batchTimeout,
      workersPerDevice,
      queueTimeout: options.queueTimeout,
      maxQueueSize: options.maxQueueSize,
      maxBatchesPerWorker: options.maxBatchesPerWorker,
      idempotent: options.idempotent,
      accelerator,
      devices,
      resourceLimits: options.resourceLimits,
      predictTimeout: options.predictTimeout,
      authorize: options.authorize ?? (instance.authorize ? (request) => instance.authorize!(request) : undefined),
      mcp: checkMcp(options.mcp),
    };
    checkStreaming(instance, spec, options.spec === undefined);
    return new Endpoint(spec, instance, config, source, events, log, exposeErrors, extensions?.(path));
  }

  /** Start the workers; a setup failure is logged (with the stack from where it threw) and rejects. */
  start(): Promise<void> {
    return this.pool.start().catch((error: unknown) => {
      this.log(formatSetupFailure(this.config.path, error));
      throw error;
    });
  }

  /** Content types this endpoint takes as raw bytes (the body itself, or a multipart file): the API's own list. */
  get binaryTypes(): readonly string[] {
    return this.api.binaryTypes ?? [];
  }

  /** The POST paths that reach this endpoint: its own, and the spec's extra ones (one queue for all). */
  get routes(): string[] {
    return [this.config.path, ...(this.spec.extraPaths ?? [])];
  }

  /** decodeRequest → queue → worker (batch/predict/unbatch) → encodeResponse → the spec's response. */
  async handle(
    body: unknown,
    ctx: RequestContext,
    cancellation: Cancellation,
    route: string = this.config.path,
    /** Deadline, stage times and request-side callbacks (see request-record.ts). */
    record?: RequestRecord,
  ): Promise<SpecResponse> {
    const request = this.spec.parseRequest(body, ctx, route);
    this.batcher.checkCapacity();
    this.batcher.decoding++;
    // Every failure of this request's stages goes through here: logged once with the request id, answered safely.
    const failures = new RequestFailures({ log: this.log, exposeErrors: this.exposeErrors }, ctx.requestId, route);
    let input: unknown;
    try {
      const before = record?.beforeDecode();
      if (before) await before;
      input = await this.api.decodeRequest(request, ctx);
      const after = record?.afterDecode();
      if (after) await after;
    } catch (error) {
      throw failures.decode(error);
    } finally {
      this.batcher.decoding--;
    }
    // An idempotent request whose worker died runs again from a fresh decode: its input's buffers went to the dead
    // worker (moved, not copied), and the request is still here (no copy kept for a rare retry).
    const redecode = this.config.idempotent ? () => this.api.decodeRequest(request, ctx) : undefined;
    if (this.config.streams) {
      const outputs = this.batcher.submitStream(input, cancellation, redecode, record);
      return this.spec.respond(request, this.encodeEach(outputs, ctx, failures, record), ctx);
    }
    let output: unknown;
    try {
      output = await this.batcher.submit(input, cancellation, redecode, record);
    } catch (error) {
      throw failures.predict(error);
    }
    return this.spec.respond(request, this.encodeEach([output], ctx, failures, record), ctx);
  }

  /** Count a request from arrival until its response is finished (streams included). */
  track(): () => void {
    this.inflight++;
    let done = false;
    return () => {
      if (!done) this.inflight--;
      done = true;
    };
  }

  load(): EndpointLoad {
    const readyWorkers = this.pool.readyCount;
    const queued = this.batcher.depth;
    const running = Math.max(0, this.inflight - queued - this.batcher.decoding);
    const capacity = Math.max(1, readyWorkers) * this.config.maxBatchSize * this.config.maxBatchesPerWorker;
    return {
      queued,
      decoding: this.batcher.decoding,
      inflight: this.inflight,
      busyWorkers: this.pool.busyCount,
      readyWorkers,
      saturation: (queued + running) / capacity,
    };
  }

  /** Ready to serve: at least one worker finished setup, and the API's own health check (where it has one) passes. */
  async healthy(): Promise<boolean> {
    if (this.pool.readyCount === 0) return false;
    return this.api.health ? this.pool.healthy() : true;
  }

  /** Fail everything still queued (shutdown), then stop the workers. */
  async close(): Promise<void> {
    this.batcher.rejectAll(errors.shuttingDown());
    await this.pool.close();
  }

  info(): Record<string, unknown> {
    const { accelerator, devices, authorize, ...config } = this.config;
    return {
      ...config,
      spec: this.spec.name,
      binaryTypes: this.binaryTypes,
      authorize: authorize ? "custom" : undefined,
      accelerator: accelerator.accelerator,
      acceleratorReason: accelerator.reason,
      devices: devices.map((d) => d.id),
      threadsPerWorker: devices[0]?.threads,
      workers: { configured: devices.length, ready: this.pool.readyCount, restarts: this.pool.restarts },
      model: { ...this.api.info, ...this.pool.info },
    };
  }

  /** encodeResponse for each output; a predict failure mid-stream or an encode failure is logged and answered once. */
  private async *encodeEach(
    outputs: Iterable<unknown> | AsyncIterable<unknown>,
    ctx: RequestContext,
    failures: RequestFailures,
    record?: RequestRecord,
  ) {
    const iterator = (Symbol.asyncIterator in outputs ? outputs[Symbol.asyncIterator]() : outputs[Symbol.iterator]()) as
      AsyncIterator<unknown> | Iterator<unknown>;
    let finished = false;
    try {
      for (;;) {
        let next: IteratorResult<unknown>;
        try {
          next = await iterator.next();
        } catch (error) {
          finished = true;
          throw failures.predict(error);
        }
        if (next.done) return void (finished = true);
        let encoded: unknown;
        try {
          const before = record?.beforeEncode();
          if (before) await before;
          encoded = await this.api.encodeResponse(next.value, ctx);
          const after = record?.afterEncode();
          if (after) await after;
        } catch (error) {
          throw failures.encode(error);
        }
        if (isAsyncIterable(encoded)) yield* encoded;
        else yield encoded;
      }
    } finally {
      // The response stopped reading (client gone, encode failed): as for-of would, stop the outputs' source too.
      if (!finished) await iterator.return?.();
    }
  }
}

/**
 * Streaming is decided at setup, not found out by the first request: an async-generator predict needs a streaming
 * endpoint (`stream: true`, or a spec that streams), and a streaming endpoint needs a predict that can stream (an
 * async generator, or a plain method returning an AsyncIterable; an `async` method returns a single Promise).
 */
function checkStreaming(api: ModelAPI, spec: Spec, plain: boolean): void {
  const kind = (api.predict as { constructor?: { name?: string } })?.constructor?.name;
  const name = api.constructor.name;
  if (kind === "AsyncGeneratorFunction" && !spec.streamsPredict) {
    throw new OptionError(
      plain
        ? `${name}.predict is an async generator: set \`stream: true\` on its endpoint to send each output as it comes (NDJSON), or make predict return its outputs`
        : `${name}.predict is an async generator but the ${spec.name} spec does not stream predict`,
    );
  }
  if (kind === "AsyncFunction" && spec.streamsPredict) {
    throw new OptionError(
      plain
        ? `\`stream: true\` needs predict to stream, but ${name}.predict is an async method (one Promise): write it as \`async *predict\` and yield each step's outputs, or remove \`stream: true\``
        : `The ${spec.name} spec streams predict, but ${name}.predict is an async method (one Promise): write it as \`async *predict\``,
    );
  }
}

/** MCP tool names are what a model calls: letters, digits, `_` and `-` (the MCP spec's advice), 1–64 of them. */
function checkMcp(mcp: McpToolOptions | undefined): McpToolOptions | undefined {
  if (mcp === undefined) return undefined;
  if (mcp === null || typeof mcp !== "object" || typeof mcp.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(mcp.name)) {
    throw new OptionError("mcp must be { name, description? } with a name of 1–64 letters, digits, _ or -");
  }
  if (mcp.description !== undefined && typeof mcp.description !== "string") throw new OptionError("mcp.description must be a string");
  return { ...mcp };
}
