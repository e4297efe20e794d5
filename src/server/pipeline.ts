import type { AddressInfo } from "node:net";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import client, { type Registry } from "prom-client";
import { LOG_SINK, type ModelAPI } from "../api/model-api.js";
import { callerModule } from "./api-source.js";
import { Callbacks, type ServerCallbackContext } from "./callbacks.js";
import { requestDeadline } from "./deadline.js";
import { RequestRecord } from "./request-record.js";
import { serverTimingHeader } from "./server-timing.js";
import { activeTracer, endRequestSpan, startRequestSpan } from "./tracing.js";
import { UserMetrics } from "./user-metrics.js";
import type { PoolExtensions } from "./worker-pool.js";
import type { WorkerReport } from "./worker-protocol.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The request's record, on the endpoints' routes (see request-record.ts). */
    batchwiseRecord: RequestRecord | null;
  }
}

/** The server options this file owns (declared in options.ts). */
export interface PipelineOptions {
  callbacks?: unknown[];
  loggers?: unknown[];
  serverTiming?: boolean;
}

/**
 * The request's id as callbacks and logs see it: fastify's id for now. Kept in this one place so that a request id
 * taken from the client (X-Request-Id) changes it everywhere at once.
 */
export function requestIdOf(request: FastifyRequest): string {
  return request.id;
}

/**
 * What a request carries beside its body: deadline, stage times for Server-Timing, callbacks, values the APIs log.
 * Built once per server; every per-request part is skipped (no record, no hook) when nothing needs it.
 */
export class Pipeline {
  private userMetrics: UserMetrics | undefined;
  private errorCount: client.Counter<"hook"> | undefined;
  private readonly serverTiming: boolean;
  /** A request needs a record even without a deadline: for Server-Timing or a request-side callback. */
  private readonly alwaysRecord: boolean;

  private constructor(
    readonly callbacks: Callbacks,
    private readonly loggers: ReturnType<typeof UserMetrics.checkLoggers>,
    options: PipelineOptions,
    private readonly log: (line: string) => void,
  ) {
    this.serverTiming = options.serverTiming !== false;
    this.alwaysRecord = this.serverTiming || callbacks.any;
  }

  static async create(options: PipelineOptions, log: (line: string) => void): Promise<Pipeline> {
    const loggers = UserMetrics.checkLoggers(options.loggers);
    let pipeline: Pipeline | undefined;
    const failed = (hook: string, error: unknown) => pipeline?.failed(hook, error);
    const callbacks = await Callbacks.create(options.callbacks, failed, callerModule());
    pipeline = new Pipeline(callbacks, loggers, options, log);
    return pipeline;
  }

  /** A callback or logger threw: logged and counted, never the request's failure. */
  failed(hook: string, error: unknown): void {
    this.errorCount?.inc({ hook });
    this.log(`callback ${hook} failed: ${error instanceof Error ? error.message : String(error)}`);
  }

  /** The pieces a worker pool needs for one endpoint. */
  extensions = (endpoint: string): PoolExtensions => ({
    endpoint,
    callbacks: this.callbacks.sources,
    predict: this.callbacks.predict,
    requestIds: this.callbacks.predictSide,
    report: (message: WorkerReport) => {
      if (message.type === "logs") for (const [name, value, labels] of message.values) this.userMetrics?.record(endpoint, name, value, labels);
      else this.failed(message.hook, new Error(message.message));
    },
  });

  /** Once the registry exists: the error counter, each API's declared series, and where its main-thread log() goes. */
  register(registry: Registry, endpoints: { path: string; api: ModelAPI }[]): void {
    this.errorCount = new client.Counter({
      name: "batchwise_callback_errors_total",
      help: "Callbacks and loggers that threw or rejected (the request went on), by hook",
      labelNames: ["hook"] as const,
      registers: [registry],
    });
    this.userMetrics = new UserMetrics(registry, this.loggers, (hook, error) => this.failed(hook, error), this.log);
    for (const { path, api } of endpoints) {
      this.userMetrics.declare(api.metrics);
      (api as { [LOG_SINK]?: unknown })[LOG_SINK] = this.userMetrics.sink(path);
    }
  }

  /** The fastify side: the record's slot on each request, Server-Timing on every response, onResponse. */
  install(app: FastifyInstance): void {
    app.decorateRequest("batchwiseRecord", null);
    if (this.serverTiming) {
      app.addHook("onSend", (request, reply, payload, done) => {
        reply.header("server-timing", serverTimingHeader(request.batchwiseRecord, reply.elapsedTime));
        done(null, payload);
      });
    }
    // The response is finished (a stream's too). A hook only when a callback wants it: it runs on every request.
    const onResponse = this.callbacks.onResponse;
    if (onResponse) {
      app.addHook("onResponse", (request, reply, done) => {
        const record = request.batchwiseRecord;
        if (record) {
          record.status = reply.statusCode;
          void onResponse(record);
        }
        done();
      });
    }
  }

  /** onServerStart once the server listens and every worker is ready; onServerEnd when it closes. */
  attach(app: FastifyInstance, ready: Promise<void>, endpoints: string[]): void {
    const { onServerStart, onServerEnd } = this.callbacks;
    const context = (): ServerCallbackContext => {
      const address = app.server.address() as AddressInfo | null;
      const host = address?.family === "IPv6" ? `[${address.address}]` : address?.address;
      return { url: address ? `http://${host}:${address.port}` : "", endpoints };
    };
    if (onServerStart) {
      app.addHook("onListen", (done) => {
        ready.then(() => onServerStart(context()), () => {});
        done();
      });
    }
    if (onServerEnd) app.addHook("onClose", async () => onServerEnd(context()));
  }

  /**
   * A request reached an endpoint: its record (deadline from X-Request-Timeout, a 400 when that is malformed), or
   * null when nothing needs one.
   */
  begin(request: FastifyRequest, reply: FastifyReply, endpoint: string): RequestRecord | null {
    const deadline = requestDeadline(request.headers);
    const traceparent = request.headers.traceparent;
    const traced = activeTracer() !== undefined;
    if (deadline === undefined && !this.alwaysRecord && !traced && traceparent === undefined) return null;
    const record = new RequestRecord(endpoint, requestIdOf(request), deadline, this.callbacks.request);
    if (typeof traceparent === "string") record.traceparent = traceparent;
    if (traced) {
      startRequestSpan(record, request.method, traceparent);
      // only traced requests pay for a listener: the span ends when the response does (a stream's too)
      reply.raw.once("close", () => endRequestSpan(record, reply.raw.statusCode));
    }
    request.batchwiseRecord = record;
    return record;
  }

  /** onRequest: a promise only when a callback of it is async. */
  arrived(record: RequestRecord): void | Promise<void> {
    return this.callbacks.onRequest?.(record);
  }

  /** A stream's headers go out (with its first output): its Server-Timing value, or undefined when that is off. */
  streamStarted(request: FastifyRequest, reply: FastifyReply): string | undefined {
    const record = request.batchwiseRecord;
    if (record) record.streamStart = performance.now();
    return this.serverTiming ? serverTimingHeader(record, reply.elapsedTime) : undefined;
  }
}
