import client from "prom-client";

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

  constructor(endpoints: { path: string; queueDepth: () => number; workers: () => number }[]) {
    const registers = [this.registry];
    new client.Gauge({
      name: "batchwise_queue_depth",
      help: "Requests waiting for a worker, by endpoint",
      labelNames: ["endpoint"] as const,
      registers,
      collect() {
        for (const e of endpoints) this.set({ endpoint: e.path }, e.queueDepth());
      },
    });
    new client.Gauge({
      name: "batchwise_workers",
      help: "Model workers that are ready, by endpoint",
      labelNames: ["endpoint"] as const,
      registers,
      collect() {
        for (const e of endpoints) this.set({ endpoint: e.path }, e.workers());
      },
    });
    client.collectDefaultMetrics({ register: this.registry, prefix: "batchwise_" });
  }
}
