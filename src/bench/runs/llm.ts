/**
 * `bench llm`: how fast a served chat model streams, seen from the client, at several concurrency levels — and how
 * close that is to the same model generating in-process with no HTTP in the way (the ceiling).
 *
 * Per level (closed loop: `concurrency` clients, each sending its next request when the previous one ends):
 * - TTFT: request sent → first SSE chunk with content;
 * - inter-token latency: (last content chunk − first) ÷ (completion tokens − 1), per request;
 * - output tokens/s per request (completion tokens ÷ request time) and in total (all tokens ÷ wall time);
 * - errors (non-200, in-band SSE errors, a stream that ends without [DONE]).
 * Tokens are counted by the server's tokenizer (`usage.completion_tokens` via stream_options.include_usage), never
 * by splitting words.
 *
 * The in-process ceiling runs the ChatAPI's own predict on batches of `concurrency` requests (the batch the server
 * would form if every client's request arrived together), on as many threads as the server's single worker gets.
 */
import { StringDecoder } from "node:string_decoder";
import { HttpConnection, requestHead } from "../load/http-connection.js";
import { CHAT_SERVING_DEFAULTS, ChatAPI, chatModel } from "../../chat/chat-api.js";
import { Cancellation, requestContext } from "../../server/cancellation.js";
import type { ServerOptions } from "../../server/server.js";
import { availableCores } from "../../runtime/device.js";
import type { ChatStep } from "../../chat/types.js";
import { parseChatRequest } from "../../openai/spec.js";
import { startServerProcess, type ServerProcess } from "../servers/server-process.js";
import { percentile, ratePerSecond } from "../load/stats.js";
import { cell, formatTable } from "../report/table.js";

export interface BenchLlmOptions {
  /** A running server's base URL; without it a server for `model` is started in a child process. */
  url?: string;
  /** Model id (or folder) for the started server and the in-process ceiling. Default "tiny-random-llama". */
  model?: string;
  concurrency?: number[];
  /** Requests per concurrency level; default max(16, 4 × concurrency). */
  requests?: number;
  /**
   * Rounds per level (default 3): the level's requests are split into rounds in which served and in-process take
   * turns, so a slow spell of a shared machine hits both sides instead of one. Each side's row pools its rounds.
   */
  rounds?: number;
  maxTokens?: number;
  prompt?: string;
  /** Batch size of the started server (default 8). */
  maxBatchSize?: number;
  /**
   * Intra-op threads of the model, served (the started server's threadsPerWorker) and in-process alike; default: every
   * core. Fewer leaves cores to the server's HTTP thread and the client, which the in-process ceiling does not have.
   */
  threads?: number;
  /** Skip the in-process ceiling (e.g. when the server runs another model than `model`). */
  skipInProcess?: boolean;
  /** Print the table (default true). */
  print?: boolean;
}

export interface LatencySummary {
  p50: number;
  p95: number;
}

export interface LlmLevelResult {
  concurrency: number;
  requests: number;
  errors: number;
  ttftMs: LatencySummary;
  interTokenMs: LatencySummary;
  /** Median over requests of completion tokens ÷ request time. */
  tokensPerSecondPerRequest: number;
  totalTokensPerSecond: number;
  completionTokens: number;
  wallSeconds: number;
}

export interface BenchLlmResult {
  url: string;
  model: string;
  maxTokens: number;
  served: LlmLevelResult[];
  inProcess: LlmLevelResult[];
  /** served ÷ in-process total tokens/s, per level (NaN when the ceiling was skipped). */
  servedOverInProcess: number[];
  /** In-process batched vs one-at-a-time at the highest concurrency (absent when the ceiling was skipped). */
  batching?: BatchingComparison;
}

/** What one streamed chat completion looked like from the client. */
export interface StreamTiming {
  ok: boolean;
  error?: string;
  status: number;
  /** ms from sending the request to the first content chunk. */
  ttftMs: number;
  /** ms from sending the request to the end of the stream. */
  totalMs: number;
  /** ms from sending to each content chunk. */
  chunkTimesMs: number[];
  text: string;
  finishReason: string | null;
  completionTokens: number;
  promptTokens: number;
}

/**
 * POST one streaming chat completion and time its SSE chunks. `stream_options.include_usage` is always set so the
 * token count comes from the server's tokenizer. Pass a `connection` to reuse one (the load generator's closed loop
 * keeps one per virtual client); without one, a connection is opened for this request and closed after it.
 */
export async function streamChatCompletion(
  baseUrl: string,
  body: Record<string, unknown>,
  connection?: HttpConnection,
): Promise<StreamTiming> {
  let started = Number.NaN; // set as the request goes out: building it is the client's work, not the server's
  const timing: StreamTiming = {
    ok: false,
    status: 0,
    ttftMs: Number.NaN,
    totalMs: Number.NaN,
    chunkTimesMs: [],
    text: "",
    finishReason: null,
    completionTokens: 0,
    promptTokens: 0,
  };
  const url = new URL(baseUrl);
  const own = connection ?? new HttpConnection(url, 600_000);
  const payload = Buffer.from(JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }));
  const head = requestHead("POST", url, `${url.pathname.replace(/\/$/, "")}/v1/chat/completions`, { "content-type": "application/json" }, payload.length);
  let buffer = "";
  const decoder = new StringDecoder("utf8"); // a character may be split between two packets
  let done = false;
  const onEvent = (event: string) => {
    if (!event.startsWith("data: ")) return;
    const data = event.slice(6);
    if (data === "[DONE]") {
      done = true;
      return;
    }
    const chunk = JSON.parse(data);
    if (chunk.error) throw new Error(`in-band error: ${chunk.error.message}`);
    const choice = chunk.choices?.[0];
    if (choice?.delta?.content) {
      const now = performance.now() - started;
      if (timing.chunkTimesMs.length === 0) timing.ttftMs = now;
      timing.chunkTimesMs.push(now);
      timing.text += choice.delta.content;
    }
    if (choice?.finish_reason) timing.finishReason = choice.finish_reason;
    if (chunk.usage) {
      timing.completionTokens = chunk.usage.completion_tokens;
      timing.promptTokens = chunk.usage.prompt_tokens;
    }
  };
  let eventError: Error | undefined;
  try {
    started = performance.now();
    const response = await own.request(head, payload, (piece) => {
      if (eventError) return;
      buffer += decoder.write(piece);
      let end: number;
      try {
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          onEvent(event);
        }
      } catch (error) {
        eventError = error as Error;
      }
    });
    timing.status = response.status;
    if (response.status !== 200) {
      timing.error = `HTTP ${response.status}: ${response.body.toString("utf8", 0, 200)}`;
      return timing;
    }
    if (eventError) throw eventError;
    timing.totalMs = performance.now() - started;
    timing.ok = done;
    if (!done) timing.error = "stream ended without [DONE]";
  } catch (error) {
    timing.error = (error as Error).message;
  } finally {
    if (!connection) own.close();
  }
  return timing;
}

/** Run `requests` streams with `concurrency` clients in a closed loop, one keep-alive connection each. */
export async function runStreamLoad(
  baseUrl: string,
  body: Record<string, unknown>,
  concurrency: number,
  requests: number,
): Promise<StreamRun> {
  const url = new URL(baseUrl);
  const connections = Array.from({ length: concurrency }, () => new HttpConnection(url, 600_000));
  const timings: StreamTiming[] = [];
  let next = 0;
  const started = performance.now();
  try {
    await Promise.all(
      connections.map(async (connection) => {
        while (next < requests) {
          next++;
          timings.push(await streamChatCompletion(baseUrl, body, connection));
        }
      }),
    );
  } finally {
    for (const connection of connections) connection.close();
  }
  return { timings, wallSeconds: (performance.now() - started) / 1000 };
}

/** The timings of one closed-loop run and its wall time. */
export interface StreamRun {
  timings: StreamTiming[];
  wallSeconds: number;
}

/** Several runs of one level as one table row: their requests pooled, their wall times added. */
function summarizeRounds(concurrency: number, runs: StreamRun[]): LlmLevelResult {
  return summarizeStreams(concurrency, runs.flatMap((run) => run.timings), runs.reduce((sum, run) => sum + run.wallSeconds, 0));
}

/** Aggregate stream timings into one table row. */
export function summarizeStreams(concurrency: number, timings: StreamTiming[], wallSeconds: number): LlmLevelResult {
  const ok = timings.filter((t) => t.ok && t.completionTokens > 0);
  const interToken = ok
    .filter((t) => t.completionTokens > 1 && t.chunkTimesMs.length > 1)
    .map((t) => (t.chunkTimesMs[t.chunkTimesMs.length - 1] - t.chunkTimesMs[0]) / (t.completionTokens - 1));
  const tokens = ok.reduce((sum, t) => sum + t.completionTokens, 0);
  return {
    concurrency,
    requests: timings.length,
    errors: timings.length - ok.length,
    ttftMs: latency(ok.map((t) => t.ttftMs)),
    interTokenMs: latency(interToken),
    tokensPerSecondPerRequest: percentile(ok.map((t) => (t.completionTokens / t.totalMs) * 1000), 50),
    totalTokensPerSecond: ratePerSecond(tokens, wallSeconds),
    completionTokens: tokens,
    wallSeconds,
  };
}

function latency(values: number[]): LatencySummary {
  return { p50: percentile(values, 50), p95: percentile(values, 95) };
}

/**
 * The ceiling: the same ChatAPI generating in this process, no HTTP, `concurrency` clients in a closed loop. Each
 * client's request joins the running batch at the next decode step (the engine's continuous batching), so this is
 * what the model can do at that concurrency. TTFT counts from the predict call, which tokenizes the prompt (as the
 * server's worker does); decodeRequest, the main thread's validation, runs before it.
 */
async function inProcessLevel(api: ChatAPI, body: Record<string, unknown>, concurrency: number, requests: number): Promise<StreamRun> {
  const timings: StreamTiming[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        next++;
        const [timing] = await generateInProcess(api, [body]);
        timings.push(timing);
      }
    }),
  );
  return { timings, wallSeconds: (performance.now() - started) / 1000 };
}

/** One predict call over `bodies` (one batch), timed per item like a streaming client would see it. */
async function generateInProcess(api: ChatAPI, bodies: Record<string, unknown>[]): Promise<StreamTiming[]> {
  const inputs = await Promise.all(bodies.map((body) => api.decodeRequest(parseChatRequest(body), requestContext(new Cancellation()))));
  const started = performance.now();
  const rows: StreamTiming[] = inputs.map(() => ({
    ok: false, status: 200, ttftMs: Number.NaN, totalMs: Number.NaN, chunkTimesMs: [], text: "",
    finishReason: null, completionTokens: 0, promptTokens: 0,
  }));
  const signals = inputs.map(() => new AbortController().signal);
  for await (const step of api.predict(inputs, { signals, device: CPU(availableCores()) })) {
    const now = performance.now() - started;
    step.forEach((output, i) => {
      // A chat request is one sequence: its output is a single step.
      const item = output as ChatStep | undefined;
      if (!item || typeof item !== "object") return; // nothing this step, or END_OF_STREAM after its last one
      const row = rows[i];
      if (item.text) {
        if (row.chunkTimesMs.length === 0) row.ttftMs = now;
        row.chunkTimesMs.push(now);
        row.text += item.text;
      }
      if (item.finishReason && item.usage) {
        row.ok = true;
        row.totalMs = now;
        row.finishReason = item.finishReason;
        row.completionTokens = item.usage.completionTokens;
        row.promptTokens = item.usage.promptTokens;
      }
    });
  }
  return rows;
}

interface BatchingComparison {
  prompts: number;
  /** Tokens/s generating the prompts one after another (batch of 1), median of rounds. */
  oneAtATimeTokensPerSecond: number;
  /** Tokens/s generating them as one batch, median of rounds. */
  batchedTokensPerSecond: number;
  speedup: number;
  /** The batched texts equal the one-at-a-time texts (greedy). */
  sameOutput: boolean;
}

/** Batched vs one-at-a-time generation of the same greedy prompts, in-process, rounds interleaved against noise. */
async function compareBatching(api: ChatAPI, body: Record<string, unknown>, prompts: number, rounds = 3): Promise<BatchingComparison> {
  const bodies = Array.from({ length: prompts }, (_, i) => ({
    ...body,
    messages: [{ role: "user", content: `${(body.messages as { content: string }[])[0].content} (variant ${i})` }],
  }));
  const rate = (timings: StreamTiming[], ms: number) => (timings.reduce((sum, t) => sum + t.completionTokens, 0) / ms) * 1000;
  const single: number[] = [];
  const batched: number[] = [];
  let sameOutput = true;
  for (let round = 0; round < rounds; round++) {
    let started = performance.now();
    const alone: StreamTiming[] = [];
    for (const b of bodies) alone.push(...(await generateInProcess(api, [b])));
    single.push(rate(alone, performance.now() - started));
    started = performance.now();
    const together = await generateInProcess(api, bodies);
    batched.push(rate(together, performance.now() - started));
    sameOutput &&= together.every((t, i) => t.text === alone[i].text);
  }
  const oneAtATime = percentile(single, 50);
  const all = percentile(batched, 50);
  return { prompts, oneAtATimeTokensPerSecond: oneAtATime, batchedTokensPerSecond: all, speedup: all / oneAtATime, sameOutput };
}

/** Requests sent before measuring (see benchLlm). */
const WARM_UP_REQUESTS = 24;

/**
 * Short requests (one token each) sent before measuring, so that the per-request code (HTTP, parsing, the batcher,
 * the worker hop) is measured as a long-running server runs it: a fresh server's TTFT at c=1 kept falling for the
 * first several hundred requests.
 */
const WARM_UP_SHORT_REQUESTS = 1000;

/** Warm a server up: WARM_UP_SHORT_REQUESTS one-token requests, then `full` requests of `body`, 4 at a time. */
export async function warmUpServer(baseUrl: string, body: Record<string, unknown>, full: number): Promise<void> {
  await runStreamLoad(baseUrl, { ...body, max_tokens: 1 }, 4, WARM_UP_SHORT_REQUESTS);
  await runStreamLoad(baseUrl, body, 4, full);
}

const CPU = (threads: number) => ({ accelerator: "cpu" as const, index: 0, threads, id: "cpu" });

export async function benchLlm(options: BenchLlmOptions = {}): Promise<BenchLlmResult> {
  const model = options.model ?? "tiny-random-llama";
  const levels = options.concurrency ?? [1, 4, 8];
  const maxTokens = options.maxTokens ?? 64;
  const body = {
    model,
    messages: [{ role: "user", content: options.prompt ?? "Write a short story about a robot who learns to paint." }],
    max_tokens: maxTokens,
    temperature: 0,
  };
  const server = options.url
    ? { url: options.url, stop: async () => {} }
    : await startOpenAIServerProcess({
        api: chatModel({ model }),
        maxBatchSize: options.maxBatchSize ?? CHAT_SERVING_DEFAULTS.maxBatchSize,
        batchTimeout: CHAT_SERVING_DEFAULTS.batchTimeout,
        workersPerDevice: CHAT_SERVING_DEFAULTS.workers,
        maxBatchesPerWorker: CHAT_SERVING_DEFAULTS.maxBatchesPerWorker,
        ...(options.threads ? { threadsPerWorker: options.threads } : {}),
      });
  let ceiling: ChatAPI | undefined;
  if (!options.skipInProcess) {
    ceiling = new ChatAPI({ model });
    await ceiling.setup(CPU(options.threads ?? availableCores()), { workerId: -1, maxBatchSize: Math.max(...levels) });
  }
  const served: LlmLevelResult[] = [];
  const inProcess: LlmLevelResult[] = [];
  try {
    // Warm-up, served and in-process alike: connections, the tokenizer, and enough requests for the JIT to compile
    // the per-request paths (HTTP, batcher, worker hop; called once a request, they stay cold for dozens of requests:
    // 4 requests left c=1's TTFT p50 measuring unoptimised code).
    await warmUpServer(server.url, body, WARM_UP_REQUESTS);
    if (ceiling) {
      await inProcessLevel(ceiling, { ...body, max_tokens: 1 }, 4, WARM_UP_SHORT_REQUESTS);
      await inProcessLevel(ceiling, body, 4, WARM_UP_REQUESTS);
    }
    // Served and in-process take turns, round by round, so that machine noise hits both alike.
    for (const concurrency of levels) {
      const requests = options.requests ?? Math.max(16, 4 * concurrency);
      const rounds = Math.max(1, Math.min(options.rounds ?? 3, Math.floor(requests / concurrency)));
      const servedRounds: StreamRun[] = [];
      const ceilingRounds: StreamRun[] = [];
      for (let round = 0; round < rounds; round++) {
        // the level's requests, split as evenly as whole requests allow
        const share = Math.floor(((round + 1) * requests) / rounds) - Math.floor((round * requests) / rounds);
        servedRounds.push(await runStreamLoad(server.url, body, concurrency, share));
        if (ceiling) ceilingRounds.push(await inProcessLevel(ceiling, body, concurrency, share));
      }
      served.push(summarizeRounds(concurrency, servedRounds));
      if (ceiling) inProcess.push(summarizeRounds(concurrency, ceilingRounds));
    }
  } finally {
    await server.stop();
  }
  const batching = ceiling ? await compareBatching(ceiling, body, Math.max(...levels)) : undefined;
  const result: BenchLlmResult = {
    url: server.url,
    model,
    maxTokens,
    served,
    inProcess,
    servedOverInProcess: served.map((s, i) => (inProcess[i] ? s.totalTokensPerSecond / inProcess[i].totalTokensPerSecond : Number.NaN)),
    batching,
  };
  if (options.print ?? true) console.log(formatLlmTable(result));
  return result;
}

export function formatLlmTable(result: BenchLlmResult): string {
  const rows = result.served.flatMap((s, i) => {
    const row = (label: string, r: LlmLevelResult, ratio: string) => [
      label,
      String(r.concurrency),
      String(r.requests),
      String(r.errors),
      cell(r.ttftMs.p50),
      cell(r.ttftMs.p95),
      cell(r.interTokenMs.p50, 2),
      cell(r.interTokenMs.p95, 2),
      cell(r.tokensPerSecondPerRequest),
      cell(r.totalTokensPerSecond),
      ratio,
    ];
    const lines = [row("served", s, "")];
    const ceiling = result.inProcess[i];
    if (ceiling) lines.push(row("in-process", ceiling, `${cell(result.servedOverInProcess[i] * 100)}%`));
    return lines;
  });
  const b = result.batching;
  const batching = b
    ? `\nin-process, ${b.prompts} prompts: one at a time ${cell(b.oneAtATimeTokensPerSecond)} tok/s, one batch ` +
      `${cell(b.batchedTokensPerSecond)} tok/s (${cell(b.speedup, 2)}×), same greedy output: ${b.sameOutput ? "yes" : "NO"}`
    : "";
  return (
    `bench llm — ${result.model}, max_tokens ${result.maxTokens}, greedy, tokens counted by the tokenizer (usage)\n` +
    formatTable(
      ["", "conc", "reqs", "errors", "TTFT p50 ms", "TTFT p95 ms", "ITL p50 ms", "ITL p95 ms", "tok/s/req", "tok/s total", "served÷in-proc"],
      rows,
    ) +
    batching
  );
}

/**
 * Start a batchwise server with the OpenAI spec in a child process, so the load generator in this process does not
 * share its event loop or CPU accounting. `options` must be JSON (an ApiSource, numbers); the spec is added there.
 */
export function startOpenAIServerProcess(options: ServerOptions, timeoutMs = 120_000): Promise<ServerProcess> {
  return startServerProcess({ kind: "batchwise", options, spec: "openai" }, { startTimeoutMs: timeoutMs });
}
