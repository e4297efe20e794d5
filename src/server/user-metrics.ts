import client, { type Registry } from "prom-client";
import type { LogSink, MetricDeclaration } from "../api/model-api.js";
import type { CallbackFailure } from "./callbacks.js";
import { OptionError } from "./options.js";

/** One value an API logged with `this.log()`, as every Logger receives it. */
export interface LogEntry {
  name: string;
  value: number;
  labels?: Record<string, string>;
  /** The endpoint (path) whose API logged it. */
  endpoint: string;
}

/**
 * Receives every value the APIs log (LitServe's `Logger`): to ship them to a store of your own. Sync or async; a
 * logger that throws is logged and counted in `batchwise_callback_errors_total{hook="logger"}`.
 */
export interface Logger {
  log(entry: LogEntry): unknown;
}

/** A logged value as it crosses from a worker: name, value, labels. */
export type LoggedValue = [name: string, value: number, labels: Record<string, string> | undefined];

const NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

type Series = { observe: (labels: Record<string, string>, value: number) => void };

/**
 * The `batchwise_user_<name>` series the APIs declare (their `metrics` field), fed by `this.log()` from any thread, and
 * the loggers that receive each value. Every series has an `endpoint` label, so one name serves several endpoints.
 */
export class UserMetrics {
  private readonly series = new Map<string, Series>();
  private readonly declared = new Map<string, string>();
  private readonly warned = new Set<string>();

  constructor(
    private readonly registry: Registry,
    private readonly loggers: Logger[],
    private readonly failed: CallbackFailure,
    private readonly log: (line: string) => void,
  ) {}

  /** Check a `loggers` option. */
  static checkLoggers(loggers: unknown): Logger[] {
    if (loggers === undefined) return [];
    if (!Array.isArray(loggers) || loggers.some((l) => typeof l?.log !== "function")) {
      throw new OptionError("loggers must be a list of objects with a log(entry) method");
    }
    return loggers as Logger[];
  }

  /** Register the series an API declares; the same name from two APIs must be declared the same way. */
  declare(metrics: Record<string, MetricDeclaration> | undefined): void {
    for (const [name, d] of Object.entries(metrics ?? {})) {
      if (!NAME.test(name)) throw new OptionError(`metrics: "${name}" is not a valid metric name (letters, digits, _)`);
      if (d?.type !== "histogram" && d?.type !== "gauge") throw new OptionError(`metrics.${name}.type must be "histogram" or "gauge"`);
      const labelNames = ["endpoint", ...(d.labelNames ?? [])];
      const key = JSON.stringify({ ...d, labelNames });
      const before = this.declared.get(name);
      if (before !== undefined) {
        if (before !== key) throw new OptionError(`metrics.${name} is declared differently by two endpoints`);
        continue;
      }
      this.declared.set(name, key);
      const common = { name: `batchwise_user_${name}`, help: d.help ?? `${name} (logged by the model API)`, labelNames, registers: [this.registry] };
      if (d.type === "histogram") {
        const histogram = new client.Histogram({ ...common, ...(d.buckets ? { buckets: d.buckets } : {}) });
        this.series.set(name, { observe: (labels, value) => histogram.observe(labels, value) });
      } else {
        const gauge = new client.Gauge(common);
        this.series.set(name, { observe: (labels, value) => gauge.set(labels, value) });
      }
    }
  }

  /** Where the `log()` calls of one endpoint's API go. */
  sink(endpoint: string): LogSink {
    return (name, value, labels) => this.record(endpoint, name, value, labels);
  }

  record(endpoint: string, name: string, value: number, labels?: Record<string, string>): void {
    const series = this.series.get(name);
    if (series) {
      try {
        series.observe(labels ? { ...labels, endpoint } : { endpoint }, value);
      } catch (error) {
        this.warnOnce(name, `log("${name}") was not recorded: ${(error as Error).message}`);
      }
    } else if (this.loggers.length === 0) {
      this.warnOnce(name, `log("${name}"): no such series in the API's \`metrics\` and no loggers: the value is dropped`);
    }
    if (this.loggers.length === 0) return;
    const entry: LogEntry = { name, value, labels, endpoint };
    for (const logger of this.loggers) {
      try {
        const result = logger.log(entry);
        if (result && typeof (result as PromiseLike<unknown>).then === "function") {
          Promise.resolve(result).catch((error) => this.failed("logger", error));
        }
      } catch (error) {
        this.failed("logger", error);
      }
    }
  }

  private warnOnce(name: string, line: string) {
    if (this.warned.has(name)) return;
    this.warned.add(name);
    this.log(line);
  }
}
