/**
 * LLM serving metrics in Prometheus' conventions, measured where the client's view is: the main thread, as the
 * OpenAI spec turns generation steps into responses.
 *
 * - batchwise_llm_prompt_tokens_total / batchwise_llm_generation_tokens_total: token counts from the tokenizer (usage);
 * - batchwise_llm_time_to_first_token_seconds: request parsed → first generated text;
 * - batchwise_llm_inter_token_latency_seconds: per request, (last text − first text) ÷ (completion tokens − 1);
 * - batchwise_llm_requests_waiting: accepted, no token yet (queued or being prefilled);
 * - batchwise_llm_requests_running: generating (first token out, not finished);
 * - batchwise_llm_requests_finished_total{finish_reason}: stop, length, or abort (client gone / failed mid-way).
 */
import client, { type Registry } from "prom-client";
import type { ChatStep, FinishReason } from "../chat/types.js";

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const ITL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export class LlmMetrics {
  private readonly promptTokens: client.Counter<"endpoint">;
  private readonly generationTokens: client.Counter<"endpoint">;
  private readonly ttft: client.Histogram<"endpoint">;
  private readonly itl: client.Histogram<"endpoint">;
  private readonly waiting: client.Gauge<"endpoint">;
  private readonly running: client.Gauge<"endpoint">;
  private readonly finished: client.Counter<"endpoint" | "finish_reason">;

  /** Several OpenAI endpoints on one server share the metrics, told apart by the `endpoint` label. */
  constructor(registry: Registry, private readonly endpoint: string) {
    const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
    const registers = [registry];
    const labelNames = ["endpoint"] as const;
    this.promptTokens = get("batchwise_llm_prompt_tokens_total", () =>
      new client.Counter({ name: "batchwise_llm_prompt_tokens_total", help: "Prompt tokens of finished LLM requests", labelNames, registers }));
    this.generationTokens = get("batchwise_llm_generation_tokens_total", () =>
      new client.Counter({ name: "batchwise_llm_generation_tokens_total", help: "Tokens generated for LLM requests", labelNames, registers }));
    this.ttft = get("batchwise_llm_time_to_first_token_seconds", () =>
      new client.Histogram({
        name: "batchwise_llm_time_to_first_token_seconds",
        help: "Time from a parsed LLM request to its first generated text",
        labelNames,
        buckets: LATENCY_BUCKETS,
        registers,
      }));
    this.itl = get("batchwise_llm_inter_token_latency_seconds", () =>
      new client.Histogram({
        name: "batchwise_llm_inter_token_latency_seconds",
        help: "Mean time between generated tokens, one observation per LLM request",
        labelNames,
        buckets: ITL_BUCKETS,
        registers,
      }));
    this.waiting = get("batchwise_llm_requests_waiting", () =>
      new client.Gauge({ name: "batchwise_llm_requests_waiting", help: "LLM requests accepted and without a token yet", labelNames, registers }));
    this.running = get("batchwise_llm_requests_running", () =>
      new client.Gauge({ name: "batchwise_llm_requests_running", help: "LLM requests generating tokens", labelNames, registers }));
    this.finished = get("batchwise_llm_requests_finished_total", () =>
      new client.Counter({
        name: "batchwise_llm_requests_finished_total",
        help: "LLM requests finished, by finish reason (abort: the client went away or generation failed)",
        labelNames: ["endpoint", "finish_reason"] as const,
        registers,
      }));
    // Zero series exist from the start, so rates and dashboards do not wait for the first request.
    for (const m of [this.promptTokens, this.generationTokens, this.waiting, this.running]) m.inc({ endpoint }, 0);
    for (const reason of ["stop", "length", "tool_calls", "abort"]) this.finished.inc({ endpoint, finish_reason: reason }, 0);
  }

  /**
   * Observe one request's steps as they pass (a request with several prompts: every choice counts), from the
   * moment it was parsed (`startedAt`, performance.now()).
   */
  async *observe<T extends ChatStep | ChatStep[]>(steps: AsyncIterable<T>, startedAt: number): AsyncGenerator<T> {
    const labels = { endpoint: this.endpoint };
    this.waiting.inc(labels);
    let first = Number.NaN;
    let last = Number.NaN;
    let finishedReasons: FinishReason[] = [];
    let prompt = 0;
    let completion = 0;
    try {
      for await (const value of steps) {
        for (const step of Array.isArray(value) ? value : [value]) {
          if (step.text || step.toolCalls) {
            last = performance.now();
            if (Number.isNaN(first)) {
              first = last;
              this.ttft.observe(labels, (first - startedAt) / 1000);
              this.waiting.dec(labels);
              this.running.inc(labels);
            }
          }
          if (step.finishReason) finishedReasons.push(step.finishReason);
          if (step.usage) {
            prompt += step.usage.promptTokens;
            completion += step.usage.completionTokens;
          }
        }
        yield value;
      }
    } finally {
      if (Number.isNaN(first)) this.waiting.dec(labels);
      else this.running.dec(labels);
      this.promptTokens.inc(labels, prompt);
      this.generationTokens.inc(labels, completion);
      if (completion > 1 && last > first) this.itl.observe(labels, (last - first) / 1000 / (completion - 1));
      if (finishedReasons.length === 0) finishedReasons = ["abort" as FinishReason];
      for (const reason of finishedReasons) this.finished.inc({ endpoint: this.endpoint, finish_reason: reason });
    }
  }
}
