import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from "@opentelemetry/api";

/** What tracing reads of a request's record (request-record.ts), kept structural so neither file imports the other. */
export interface TracedRecord {
  span: unknown;
  readonly endpoint: string;
  readonly requestId: string;
  readonly arrivedAt: number;
  enqueuedAt: number;
  dequeuedAt: number;
  streamStart: number;
  /** The caller's W3C traceparent header, when it sent one. */
  traceparent?: string;
}
type RequestRecord = TracedRecord;

/**
 * Tracing through OpenTelemetry's API. batchwise makes spans only when the application registered an SDK (a tracer
 * provider): without one, no span object is made at all, and the only cost per request is one cached check.
 *
 * A request's spans: `POST <path>` (SERVER, child of the caller's W3C `traceparent` when it sent one) with children
 * `decode`, `queue` (waiting for a worker), `encode` and, for a stream, `stream` (first write to the end). Each batch
 * is a span of its own, `batch <path>` (its size as `batchwise.batch.size`, a link to every request it holds), with a
 * child `predict` timed where the model ran (a worker thread measures it; the span is made here, on the thread
 * where the application registered its SDK). A request's traceparent reaches the model as
 * `PredictContext.traceparents`, so a model that calls other services can pass the trace on.
 *
 * Spans are made after the fact with the measured start and end times, so the request path does not carry an
 * active context around (no AsyncLocalStorage needed).
 */

const NAME = "batchwise";
const REFRESH_MS = 1000;

/** The tracer to use, or undefined while no SDK is registered (checked at most once a second). */
let cached: Tracer | undefined;
let checkedAt = -Infinity;
export function activeTracer(now = performance.now()): Tracer | undefined {
  if (now - checkedAt < REFRESH_MS) return cached;
  checkedAt = now;
  const provider = trace.getTracerProvider() as { getDelegate?: () => object };
  const delegate = provider.getDelegate ? provider.getDelegate() : provider;
  cached = delegate.constructor?.name === "NoopTracerProvider" ? undefined : trace.getTracer(NAME);
  return cached;
}

/** Forget the cached answer (tests register and unregister SDKs). */
export function resetTracerCache(): void {
  checkedAt = -Infinity;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The caller's context from a W3C `traceparent` header, or the root when it has none (or an invalid one). */
export function parentContext(traceparent: string | string[] | undefined): Context {
  if (typeof traceparent !== "string") return ROOT_CONTEXT;
  const match = TRACEPARENT.exec(traceparent.trim());
  if (!match || /^0+$/.test(match[1]) || /^0+$/.test(match[2])) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: match[1],
    spanId: match[2],
    traceFlags: parseInt(match[3], 16) & TraceFlags.SAMPLED,
    isRemote: true,
  });
}

/** A span's W3C `traceparent`. */
export function traceparentOf(span: Span): string {
  const c = span.spanContext();
  return `00-${c.traceId}-${c.spanId}-0${c.traceFlags & TraceFlags.SAMPLED}`;
}

const epoch = (t: number) => performance.timeOrigin + t;

/** The request's own span (SERVER), begun at its arrival, when an SDK is registered. */
export function startRequestSpan(record: RequestRecord, method: string, traceparent: string | string[] | undefined): void {
  const tracer = activeTracer();
  if (!tracer) return;
  record.span = tracer.startSpan(
    `${method} ${record.endpoint}`,
    { kind: SpanKind.SERVER, startTime: epoch(record.arrivedAt), attributes: { "http.request.method": method, "http.route": record.endpoint, "batchwise.request.id": record.requestId } },
    parentContext(traceparent),
  );
}

/** A finished stage of a traced request, as a child span with its measured times. */
export function stageSpan(record: RequestRecord, name: string, start: number, end: number): void {
  const parent = record.span as Span | undefined;
  if (!parent) return;
  const tracer = activeTracer() ?? trace.getTracer(NAME);
  tracer.startSpan(name, { startTime: epoch(start) }, trace.setSpan(ROOT_CONTEXT, parent)).end(epoch(end));
}

/** The request span ends with the response (status from the answer). */
export function endRequestSpan(record: RequestRecord, status: number): void {
  const span = record.span as Span | undefined;
  if (!span) return;
  span.setAttribute("http.response.status_code", status);
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  if (record.streamStart) stageSpan(record, "stream", record.streamStart, performance.now());
  span.end();
}

/** One batch of traced requests, from dispatch to its outcome. */
export class BatchTrace {
  private constructor(private readonly span: Span, private readonly tracer: Tracer, private readonly size: number) {}

  /** The queue spans of the batch's traced requests, and the batch span linked to them; undefined when untraced. */
  static begin(records: (RequestRecord | undefined)[], endpoint: string, runnerId: number): BatchTrace | undefined {
    const tracer = activeTracer();
    if (!tracer) return undefined;
    const links: Link[] = [];
    for (const record of records) {
      if (!record?.span) continue;
      stageSpan(record, "queue", record.enqueuedAt, record.dequeuedAt);
      links.push({ context: (record.span as Span).spanContext() });
    }
    const span = tracer.startSpan(`batch ${endpoint}`, {
      kind: SpanKind.INTERNAL,
      links,
      attributes: { "batchwise.batch.size": records.length, "batchwise.worker.id": runnerId, "batchwise.endpoint": endpoint },
    });
    return new BatchTrace(span, tracer, records.length);
  }

  /** Traceparents of the batch's requests for the model (the request span's where traced, else the caller's). */
  static traceparents(records: (RequestRecord | undefined)[]): (string | undefined)[] | undefined {
    if (!records.some((r) => r?.span || r?.traceparent)) return undefined;
    return records.map((r) => (r?.span ? traceparentOf(r.span as Span) : r?.traceparent));
  }

  /** The predict span (times measured where the model ran) and the batch span's end. */
  end(predict: { start: number; ms: number } | undefined, failed: boolean): void {
    if (predict) {
      this.tracer
        .startSpan("predict", { startTime: predict.start, attributes: { "batchwise.batch.size": this.size } }, trace.setSpan(ROOT_CONTEXT, this.span))
        .end(predict.start + predict.ms);
    }
    if (failed) this.span.setStatus({ code: SpanStatusCode.ERROR });
    this.span.end();
  }
}
