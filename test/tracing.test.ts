import { trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it } from "vitest";
import { createServer, type BatchwiseServer, type ServerOptions } from "../src/index.js";
import { activeTracer, resetTracerCache } from "../src/server/tracing.js";
import { countApi } from "./fixtures/count-api.js";
import { traceApi } from "./fixtures/trace-api.js";

// W3C trace context through the queue and the worker; spans through @opentelemetry/api only where an SDK is
// registered (here: the SDK's in-memory exporter), none otherwise.

const servers: BatchwiseServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  trace.disable();
  resetTracerCache();
});

async function start(options: Partial<ServerOptions>) {
  const server = await createServer({ api: traceApi(), port: 0, log: false, workersPerDevice: 1, ...options } as ServerOptions);
  servers.push(server);
  return server.listen();
}

function registerSdk() {
  const exporter = new InMemorySpanExporter();
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  resetTracerCache();
  return exporter;
}

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const traceparent = (spanId: string) => `00-${TRACE_ID}-${spanId}-01`;
const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

describe("tracing", () => {
  it("without an SDK: no spans, and the caller's traceparent still reaches the model", async () => {
    expect(activeTracer()).toBeUndefined();
    const url = await start({});
    const answer = await post(url, {}, { traceparent: traceparent("00f067aa0ba902b7") });
    expect(await answer.json()).toEqual({ traceparent: traceparent("00f067aa0ba902b7") });
    expect(await (await post(url, {})).json()).toEqual({ traceparent: null });
  });

  it("with an SDK: request, decode, queue, encode spans under the caller's; one batch span linked to its requests, predict under it", async () => {
    const exporter = registerSdk();
    const url = await start({ maxBatchSize: 4, batchTimeout: 0.2 });
    const callers = ["00f067aa0ba902b7", "b7ad6b7169203331"];
    const busy = post(url, { ms: 300 }); // holds the worker, so the two traced requests queue and leave together
    await new Promise((resolve) => setTimeout(resolve, 100));
    const answers = await Promise.all(callers.map((id) => post(url, { ms: 20 }, { traceparent: traceparent(id) })));
    await busy;
    const seen = (await Promise.all(answers.map((a) => a.json()))) as { traceparent: string }[];
    await new Promise((resolve) => setTimeout(resolve, 100)); // onResponse ends the request spans
    const spans = exporter.getFinishedSpans();

    const requests = spans.filter((s) => s.name === "POST /predict" && s.spanContext().traceId === TRACE_ID);
    expect(requests).toHaveLength(2);
    for (const [i, request] of requests.entries()) {
      expect(request.spanContext().traceId).toBe(TRACE_ID);
      expect(callers).toContain(parentOf(request));
      expect(request.attributes["http.response.status_code"]).toBe(200);
      const children = spans.filter((s) => parentOf(s) === request.spanContext().spanId).map((s) => s.name).sort();
      expect(children, `request ${i}`).toEqual(["decode", "encode", "queue"]);
    }
    // the model got each request's own span as its parent
    expect(seen.map((s) => s.traceparent).sort()).toEqual(requests.map((r) => `00-${TRACE_ID}-${r.spanContext().spanId}-01`).sort());

    const ids = new Set(requests.map((r) => r.spanContext().spanId));
    const batches = spans.filter((s) => s.name === "batch /predict" && s.links.some((l) => ids.has(l.context.spanId)));
    expect(batches).toHaveLength(1);
    expect(batches[0].attributes["batchwise.batch.size"]).toBe(2);
    expect(batches[0].links.map((l) => l.context.spanId).sort()).toEqual(requests.map((r) => r.spanContext().spanId).sort());
    const predict = spans.find((s) => s.name === "predict" && parentOf(s) === batches[0].spanContext().spanId)!;
    expect(parentOf(predict)).toBe(batches[0].spanContext().spanId);
    const ms = predict.duration[0] * 1000 + predict.duration[1] / 1e6;
    expect(ms).toBeGreaterThanOrEqual(15); // the model slept 20 ms, timed in the worker
  });

  it("a stream gets a stream span, and a request without traceparent starts a trace of its own", async () => {
    const exporter = registerSdk();
    const url = await start({ api: countApi({ stepMs: 2 }), stream: true });
    expect(await (await post(url, { n: 3 })).text()).toBe('{"count":1}\n{"count":2}\n{"count":3}\n');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const spans = exporter.getFinishedSpans();
    const request = spans.find((s) => s.name === "POST /predict")!;
    expect(parentOf(request)).toBeUndefined();
    const children = spans.filter((s) => parentOf(s) === request.spanContext().spanId).map((s) => s.name);
    expect(children).toEqual(expect.arrayContaining(["decode", "queue", "stream"]));
  });
});
