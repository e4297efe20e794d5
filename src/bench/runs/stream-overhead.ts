/**
 * `bench stream`: what the streaming path itself costs — HTTP, the batcher, the hop to a worker thread and back,
 * the OpenAI spec's SSE encoding — with a "model" that produces tokens for free ({@link TokenStreamAPI}).
 * LitServe's bar for this path is ≥ 3,500 tokens/s and TTFT < 5 ms; a served LLM can never stream faster than this.
 *
 * The server runs in a child process (see startOpenAIServerProcess), the load generator's client (./http-connection.ts) here.
 */
import { fileURLToPath } from "node:url";
import { ModelAPI, type ApiSource, type PredictContext } from "../../api/model-api.js";
import type { ChatCompletionRequest, ChatStep } from "../../openai/spec.js";
import { runStreamLoad, startOpenAIServerProcess, summarizeStreams, warmUpServer, type LlmLevelResult } from "./llm.js";
import { cell, formatTable } from "../report/table.js";

export interface TokenStreamOptions {
  /** Wait between tokens (ms); 0 = as fast as the pipeline takes them. */
  intervalMs?: number;
}

interface TokenJob {
  tokens: number;
  promptTokens: number;
}

/**
 * A chat "model" for the OpenAI spec that streams `max_tokens` tokens (" t0", " t1", …; default 16) with no
 * computation: every microsecond it takes is the server's. Aborted items stop at the next step.
 */
export class TokenStreamAPI extends ModelAPI<ChatCompletionRequest, TokenJob, ChatStep, ChatStep> {
  constructor(private readonly options: TokenStreamOptions = {}) {
    super();
    this.info = { model: "token-stream" };
  }

  override decodeRequest(request: ChatCompletionRequest): TokenJob {
    return { tokens: request.maxTokens ?? 16, promptTokens: request.messages.length };
  }

  override async *predict(batch: TokenJob[], ctx: PredictContext): AsyncGenerator<(ChatStep | undefined)[]> {
    const steps = Math.max(...batch.map((job) => job.tokens));
    const stopped = batch.map(() => false);
    for (let step = 0; step < steps; step++) {
      // Yield to the worker's event loop so cancel messages are seen between tokens.
      await (this.options.intervalMs ? sleep(this.options.intervalMs) : new Promise((r) => setImmediate(r)));
      batch.forEach((job, i) => {
        if (!stopped[i] && step < job.tokens && ctx.signals[i].aborted) {
          stopped[i] = true;
          this.aborted(i, step);
        }
      });
      if (batch.every((job, i) => stopped[i] || step >= job.tokens)) return;
      yield batch.map((job, i) => {
        if (stopped[i] || step >= job.tokens) return undefined;
        const text = ` t${step}`;
        if (step < job.tokens - 1) return { text };
        return { text, finishReason: "length", usage: { promptTokens: job.promptTokens, completionTokens: job.tokens } };
      });
    }
  }

  /** Called when an item's client has gone (tests record it). */
  protected aborted(_index: number, _step: number): void {}
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function tokenStreamApi(options: TokenStreamOptions = {}): ApiSource<TokenStreamOptions> {
  return { module: fileURLToPath(import.meta.url), export: "TokenStreamAPI", options };
}

export interface StreamBenchOptions {
  concurrency?: number[];
  /** Tokens per request (default 256). */
  tokens?: number;
  /** Requests per level (default 4 × concurrency, at least 64: a TTFT p50 over fewer moves with every hiccup). */
  requests?: number;
  /** Server batching (default 8 / 1 ms): concurrent streams share worker steps. */
  maxBatchSize?: number;
  print?: boolean;
}

export interface StreamBenchResult {
  tokensPerRequest: number;
  levels: LlmLevelResult[];
}

export async function benchStreamOverhead(options: StreamBenchOptions = {}): Promise<StreamBenchResult> {
  const tokens = options.tokens ?? 256;
  const server = await startOpenAIServerProcess({
    api: tokenStreamApi(),
    maxBatchSize: options.maxBatchSize ?? 8,
    batchTimeout: 0.001,
  });
  const body = { model: "token-stream", messages: [{ role: "user", content: "go" }], max_tokens: tokens };
  const levels: LlmLevelResult[] = [];
  try {
    // Warm-up: connections, and enough requests for the JIT to compile the per-request paths (HTTP, batcher, worker
    // hop): with few, c=1's TTFT p50 measured unoptimised code.
    await warmUpServer(server.url, body, 64);
    for (const concurrency of options.concurrency ?? [1, 8, 32]) {
      const load = await runStreamLoad(server.url, body, concurrency, options.requests ?? Math.max(64, 4 * concurrency));
      levels.push(summarizeStreams(concurrency, load.timings, load.wallSeconds));
    }
  } finally {
    await server.stop();
  }
  const result = { tokensPerRequest: tokens, levels };
  if (options.print ?? true) console.log(formatStreamTable(result));
  return result;
}

function formatStreamTable(result: StreamBenchResult): string {
  return (
    `bench stream — SSE overhead, ${result.tokensPerRequest} tokens per request, no model (LitServe bar: ≥ 3,500 tok/s, TTFT < 5 ms)\n` +
    formatTable(
      ["conc", "reqs", "errors", "TTFT p50 ms", "TTFT p95 ms", "ITL p50 ms", "tok/s/req", "tok/s total"],
      result.levels.map((r) => [
        String(r.concurrency),
        String(r.requests),
        String(r.errors),
        cell(r.ttftMs.p50, 2),
        cell(r.ttftMs.p95, 2),
        cell(r.interTokenMs.p50, 3),
        cell(r.tokensPerSecondPerRequest),
        cell(r.totalTokensPerSecond),
      ]),
    )
  );
}
