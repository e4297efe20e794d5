import client from "prom-client";
import type { EndpointLoad } from "./endpoint.js";

/**
 * Prometheus metrics of one server. Each server has its own registry, so several servers (tests, notebooks) can live
 * in one process without clashing.
 */
export class ServerMetrics {
  readonly registry = new client.Registry();
  readonly requests = new client.Counter({
    name: "batchwise_requests_total",
    help: "HTTP requests by route and status code",
    labelNames: ["route", "status"] as const,
    registers: [this.registry],
  });
  readonly latency = new client.Histogram({
    name: "batchwise_request_duration_seconds",
    help: "HTTP request latency from arrival to response, by route",
    labelNames: ["route"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly batchSize = new client.Histogram({
    name: "batchwise_batch_size",
    help: "Size of the batches sent to the model, by endpoint",
    labelNames: ["endpoint"] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });

  readonly retries = new client.Counter({
    name: "batchwise_worker_retries_total",
    help: "Requests of idempotent endpoints whose worker died: run again (retried) or refused after a second death (poison)",
    labelNames: ["endpoint", "outcome"] as const,
    registers: [this.registry],
  });

  constructor(endpoints: { path: string; load: () => EndpointLoad }[]) {
    const registers = [this.registry];
    // What an autoscaler or a load balancer reads per replica (see docs/scaling-out.md).
    const gauges: [string, string, (load: EndpointLoad) => number][] = [
      ["batchwise_queue_depth", "Requests waiting for a worker, by endpoint", (l) => l.queued],
      ["batchwise_inflight_requests", "Requests accepted and not yet answered (decoding, queued or running), by endpoint", (l) => l.inflight],
      ["batchwise_workers", "Model workers that are ready, by endpoint", (l) => l.readyWorkers],
      ["batchwise_busy_workers", "Model workers running a batch, by endpoint", (l) => l.busyWorkers],
      ["batchwise_saturation", "Queued and running requests over what the ready workers take at once (above 1: behind), by endpoint", (l) => l.saturation],
    ];
    for (const [name, help, read] of gauges) {
      new client.Gauge({
        name,
        help,
        labelNames: ["endpoint"] as const,
        registers,
        collect() {
          for (const e of endpoints) this.set({ endpoint: e.path }, read(e.load()));
        },
      });
    }
    client.collectDefaultMetrics({ register: this.registry, prefix: "batchwise_" });
  }
}
