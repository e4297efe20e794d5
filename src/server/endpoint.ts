import {
  isAsyncIterable,
  ModelAPI,
  type AcceleratorChoice,
  type ApiSource,
  type Device,
  type RequestContext,
} from "../api.js";
import type { ResourceLimits } from "node:worker_threads";
import { resolveAccelerator, type AcceleratorDecision } from "../runtime/device.js";
import { loadApi, isApiSource } from "./api-loader.js";
import { Batcher } from "./batcher.js";
import { decodeFailed } from "./errors.js";
import { plainSpec, type Spec, type SpecResponse } from "./spec.js";
import { WorkerPool } from "./worker-pool.js";

/** How one API is served: its path, wire format, batching and workers. */
export interface EndpointOptions {
  /** Where the model API comes from. An instance can only run in-process (workersPerDevice: 0). */
  api: ApiSource | ModelAPI<any, any, any, any>;
  /** Route path (POST). Default: the spec's path, "/predict" for the plain spec. */
  path?: string;
  /** Wire format. Default: plain JSON (NDJSON when `stream`). */
  spec?: Spec<any, any>;
  /** Plain spec only: predict is an async generator whose outputs are streamed as NDJSON. */
  stream?: boolean;
  /** Most requests per batch; 1 (the default) turns batching off. */
  maxBatchSize?: number;
  /** Seconds a batch may wait to fill under load (as in LitServe). Default 0.01 when batching, else 0. */
  batchTimeout?: number;
  /** Model workers per device; 0 runs the API on the main thread. Default 1. */
  workersPerDevice?: number;
  accelerator?: AcceleratorChoice;
  /** How many devices of the accelerator to use; "auto" = all found (1 for the CPU). */
  devices?: number | "auto";
  /** Seconds a request may wait in the queue before a 504. Default 30. */
  timeout?: number;
  /** Requests queued or being decoded beyond which new ones get 503 + Retry-After. Default 1024. */
  maxQueueSize?: number;
  /** Batches one worker may hold at once (default 1); see WorkerPoolOptions.maxBatchesPerWorker. */
  maxBatchesPerWorker?: number;
  /** Heap limits of each worker thread (e.g. `{ maxOldGenerationSizeMb: 2048 }`); a worker past them is replaced. */
  resourceLimits?: ResourceLimits;
  /**
   * Seconds a worker may take to answer a batch (a streaming API: between two outputs) before it is considered hung,
   * stopped and replaced; its requests get 504. Default: no limit. Worker threads only (workersPerDevice ≥ 1).
   */
  predictTimeout?: number;
}

export type ResolvedEndpointConfig = Required<Omit<EndpointOptions, "api" | "spec" | "accelerator" | "devices" | "resourceLimits" | "predictTimeout">> & {
  accelerator: AcceleratorDecision;
  devices: Device[];
  resourceLimits?: ResourceLimits;
  predictTimeout?: number;
};

/**
 * One served API: the main-thread instance (decode/encode), the batcher and the worker pool. `handle` is the whole
 * request path after HTTP parsing.
 */
export class Endpoint {
  readonly batcher: Batcher;
  readonly pool: WorkerPool;

  private constructor(
    readonly spec: Spec,
    readonly api: ModelAPI,
    readonly config: ResolvedEndpointConfig,
    source: ApiSource | undefined,
    onBatch: (size: number) => void,
    log: (message: string) => void,
  ) {
    this.pool = new WorkerPool({
      source,
      inline: config.workersPerDevice === 0 ? api : undefined,
      devices: config.devices,
      setupContext: { maxBatchSize: config.maxBatchSize },
      stream: spec.streamsPredict,
      resourceLimits: config.resourceLimits,
      predictTimeout: config.predictTimeout,
      maxBatchesPerWorker: config.maxBatchesPerWorker,
      onIdle: () => this.batcher.pump(),
      log,
    });
    this.batcher = new Batcher(this.pool, { ...config, onBatch });
  }

  /** Validate options and build the endpoint; workers start with {@link start}. */
  static async create(
    options: EndpointOptions,
    /** Intra-op threads each worker's model may use (the server splits the cores between all its workers). */
    threads: number,
    onBatch: (path: string, size: number) => void,
    log: (message: string) => void,
  ): Promise<Endpoint> {
    const spec = options.spec ?? plainSpec({ path: options.path, stream: options.stream });
    const path = options.path ?? spec.path;
    const maxBatchSize = positiveInt(options.maxBatchSize ?? 1, "maxBatchSize");
    const workersPerDevice = options.workersPerDevice ?? 1;
    if (!Number.isInteger(workersPerDevice) || workersPerDevice < 0) {
      throw new Error(`workersPerDevice must be an integer ≥ 0, got ${workersPerDevice}`);
    }
    const source = isApiSource(options.api) ? options.api : undefined;
    if (!source && workersPerDevice > 0) {
      throw new Error(
        "An API instance can only run in-process (workersPerDevice: 0). To use worker threads pass an ApiSource " +
          "{ module, export, options }: a class defined in a notebook cell cannot cross a thread boundary.",
      );
    }
    const api = source ? await loadApi(source) : (options.api as ModelAPI);
    const accelerator = await resolveAccelerator(options.accelerator ?? "auto");
    const deviceCount = options.devices === undefined || options.devices === "auto" ? accelerator.count : options.devices;
    const runnersPerDevice = Math.max(1, workersPerDevice);
    const devices: Device[] = [];
    for (let d = 0; d < deviceCount; d++) {
      for (let w = 0; w < runnersPerDevice; w++) {
        const id = accelerator.accelerator === "cpu" ? "cpu" : `${accelerator.accelerator}:${d}`;
        devices.push({ accelerator: accelerator.accelerator, index: d, threads, id });
      }
    }
    const config: ResolvedEndpointConfig = {
      path,
      stream: spec.streamsPredict,
      maxBatchSize,
      batchTimeout: nonNegative(options.batchTimeout ?? (maxBatchSize > 1 ? 0.01 : 0), "batchTimeout"),
      workersPerDevice,
      timeout: positive(options.timeout ?? 30, "timeout"),
      maxQueueSize: positiveInt(options.maxQueueSize ?? 1024, "maxQueueSize"),
      accelerator,
      devices,
      resourceLimits: options.resourceLimits,
      predictTimeout: options.predictTimeout === undefined ? undefined : positive(options.predictTimeout, "predictTimeout"),
      maxBatchesPerWorker: positiveInt(options.maxBatchesPerWorker ?? 1, "maxBatchesPerWorker"),
    };
    return new Endpoint(spec, api, config, source, (size) => onBatch(path, size), log);
  }

  start(): Promise<void> {
    return this.pool.start();
  }

  /** decodeRequest → queue → worker (batch/predict/unbatch) → encodeResponse → the spec's response. */
  async handle(body: unknown, ctx: RequestContext): Promise<SpecResponse> {
    const request = this.spec.parseRequest(body, ctx);
    this.batcher.checkCapacity();
    this.batcher.decoding++;
    let input: unknown;
    try {
      input = await this.api.decodeRequest(request, ctx);
    } catch (error) {
      throw decodeFailed(error);
    } finally {
      this.batcher.decoding--;
    }
    if (this.spec.streamsPredict) {
      const outputs = this.batcher.submitStream(input, ctx.signal);
      return this.spec.respond(request, this.encodeEach(outputs, ctx), ctx);
    }
    const output = await this.batcher.submit(input, ctx.signal);
    return this.spec.respond(request, this.encodeEach([output], ctx), ctx);
  }

  info(): Record<string, unknown> {
    const { accelerator, devices, ...config } = this.config;
    return {
      ...config,
      spec: this.spec.name,
      accelerator: accelerator.accelerator,
      acceleratorReason: accelerator.reason,
      devices: devices.map((d) => d.id),
      threadsPerWorker: devices[0]?.threads,
      workers: { configured: devices.length, ready: this.pool.readyCount, restarts: this.pool.restarts },
      model: { ...this.api.info, ...this.pool.info },
    };
  }

  private async *encodeEach(outputs: Iterable<unknown> | AsyncIterable<unknown>, ctx: RequestContext) {
    for await (const output of outputs) {
      const encoded = await this.api.encodeResponse(output, ctx);
      if (isAsyncIterable(encoded)) yield* encoded;
      else yield encoded;
    }
  }
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be an integer ≥ 1, got ${value}`);
  return value;
}
function positive(value: number, name: string): number {
  if (!(value > 0)) throw new Error(`${name} must be > 0, got ${value}`);
  return value;
}
function nonNegative(value: number, name: string): number {
  if (!(value >= 0)) throw new Error(`${name} must be ≥ 0, got ${value}`);
  return value;
}
