/**
 * The OpenAI wire format on top of the batching core: `POST /v1/chat/completions` and `POST /v1/completions` (JSON,
 * or Server-Sent Events with `stream: true`) and `GET /v1/models`, so the official `openai` clients work unchanged.
 * Both POST routes go through the same endpoint: one queue, one batcher, one engine.
 *
 * The API behind it always streams: its predict is an async generator and its encodeResponse yields one
 * {@link ChatStep} per generation step (a list of steps, one per prompt with news, for a multi-prompt completion).
 * A streaming request turns the steps into SSE chunks as soon as they exist — the steps that are already waiting
 * when the socket asks for more go out as one chunk, so a client that falls behind costs one write, not one per
 * token; a non-streaming request concatenates the steps into one response.
 *
 * @example
 * ```ts
 * import OpenAI from "openai";
 * import { createServer } from "batchwise";
 * import { chatModel } from "batchwise/chat";
 * import { openAISpec } from "batchwise/openai";
 *
 * const server = await createServer({ api: chatModel({ model: "tiny-random-llama" }), spec: openAISpec() });
 * const client = new OpenAI({ baseURL: `${await server.listen()}/v1`, apiKey: "unused" });
 * const reply = await client.chat.completions.create({ model: "tiny-random-llama", messages: [{ role: "user", content: "Hi" }] });
 * ```
 */
import { randomUUID } from "node:crypto";
import type { RequestContext } from "../api/model-api.js";
import { SERVED_MODEL_STATE, type ChatOutput, type ChatStep, type FinishReason, type TokenUsage } from "../chat/types.js";
import { HttpError, toHttpError } from "../api/errors.js";
import type { Spec, SpecResponse } from "../api/spec.js";
import { LlmMetrics } from "./metrics.js";
import { CHAT_DOCS, COMPLETION_DOCS } from "./openai-schema.js";
import {
  InvalidRequestError,
  parseChatRequest,
  parseCompletionRequest,
  type ChatCompletionRequest,
  type CompletionRequest,
  type OpenAIRequest,
} from "./request.js";

export type { ChatMessage, ChatRole, ChatStep, FinishReason, TokenUsage } from "../chat/types.js";
export { SERVED_MODEL_STATE } from "../chat/types.js";
export {
  InvalidRequestError,
  parseChatRequest,
  parseCompletionRequest,
  UNSUPPORTED_CHAT,
  UNSUPPORTED_COMPLETION,
  type ChatCompletionRequest,
  type CompletionRequest,
  type OpenAIRequest,
} from "./request.js";

export interface OpenAISpecOptions {
  /** Route of the chat endpoint; default "/v1/chat/completions". */
  path?: string;
  /** Route of the completions endpoint; default "/v1/completions"; false: none. */
  completionsPath?: string | false;
}

/** `ctx.state` key holding when the request was parsed (performance.now()), for TTFT. */
const STARTED_STATE = "llmStartedAt";

export function openAISpec(options: OpenAISpecOptions = {}): Spec<OpenAIRequest, ChatOutput> {
  const path = options.path ?? "/v1/chat/completions";
  const completionsPath = options.completionsPath === false ? undefined : (options.completionsPath ?? "/v1/completions");
  let metrics: LlmMetrics | undefined;
  return {
    name: "openai",
    path,
    extraPaths: completionsPath ? [completionsPath] : [],
    streamsPredict: true,
    registerRoutes(app, endpoint) {
      if (endpoint.registry) metrics = new LlmMetrics(endpoint.registry, path);
      app.get("/v1/models", async () => {
        return {
          object: "list",
          data: [{ id: servedModelId(endpoint.info()), object: "model", created: STARTED, owned_by: "batchwise" }],
        };
      });
    },
    parseRequest(body, ctx, route) {
      ctx.state[STARTED_STATE] = performance.now();
      return route !== undefined && route === completionsPath ? parseCompletionRequest(body) : parseChatRequest(body);
    },
    respond(request, outputs, ctx) {
      const steps = metrics ? metrics.observe(outputs, ctx.state[STARTED_STATE] as number) : outputs;
      if (request.kind === "completion") {
        return request.stream ? streamCompletion(request, steps, ctx) : jsonCompletion(request, steps, ctx);
      }
      return request.stream ? streamResponse(request, steps as AsyncIterable<ChatStep>, ctx) : jsonResponse(request, steps as AsyncIterable<ChatStep>, ctx);
    },
    formatError: openAIErrorBody,
    docs: (route) => (route === completionsPath ? COMPLETION_DOCS : CHAT_DOCS),
  };
}

const STARTED = Math.floor(Date.now() / 1000);

/** The model id from an endpoint's /info record (`model` is the API's info object, whose `model` is the id). */
function servedModelId(info: Record<string, unknown>): string {
  const model = info.model as unknown;
  if (typeof model === "string") return model;
  const id = (model as { model?: unknown } | null)?.model;
  return typeof id === "string" ? id : "model";
}

/** OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`. */
export function openAIErrorBody(error: HttpError) {
  return {
    error: {
      message: error.message,
      type: errorType(error.status),
      // InvalidRequestError, or fastify's validation of an API's requestSchema (InvalidBodyError): both name the field.
      param: (error as { param?: string | null }).param ?? null,
      code: error.code,
    },
  };
}

function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 429 || status === 503) return "overloaded_error";
  if (status === 504) return "timeout_error";
  return status < 500 ? "invalid_request_error" : "server_error";
}

async function jsonResponse(
  request: ChatCompletionRequest,
  steps: AsyncIterable<ChatStep>,
  ctx: RequestContext,
): Promise<SpecResponse> {
  let content = "";
  let finishReason: FinishReason | undefined;
  let usage: TokenUsage | undefined;
  for await (const step of steps) {
    content += step.text;
    finishReason = step.finishReason ?? finishReason;
    usage = step.usage ?? usage;
  }
  if (!finishReason || !usage) throw new Error("generation ended without a finish reason");
  return {
    kind: "json",
    body: {
      id: completionId("chatcmpl"),
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: modelOf(request, ctx),
      choices: [{ index: 0, message: { role: "assistant", content }, logprobs: null, finish_reason: finishReason }],
      usage: usageBody(usage),
    },
  };
}

/**
 * The values of `source` in runs: each run is the next value (waited for) and every value already waiting behind it
 * (never waited for). A stream whose client keeps up gets runs of one; one that fell behind (the socket was slow, the
 * worker sent several steps in one message) gets its backlog in one run — one SSE write instead of one per token.
 */
async function* readyRuns<T>(source: AsyncIterable<T>): AsyncGenerator<T[]> {
  const iterator = source[Symbol.asyncIterator]();
  const NOT_READY = Symbol("not ready");
  try {
    let pending: Promise<IteratorResult<T>> | null = iterator.next();
    while (pending) {
      const first = await pending;
      pending = null;
      if (first.done) return;
      const run = [first.value];
      for (;;) {
        const next = iterator.next();
        // A value already buffered upstream (the channel of worker outputs) reaches here through a few async
        // generators: microtasks only. A nextTick runs once the microtasks have drained, so it loses the race to
        // such a value and wins it against one that needs I/O (a later worker message). (Racing an already resolved
        // promise instead would win even against buffered values: each generator layer costs ticks.)
        let ready: IteratorResult<T> | typeof NOT_READY;
        try {
          ready = await Promise.race([next, new Promise<typeof NOT_READY>((resolve) => process.nextTick(resolve, NOT_READY))]);
        } catch (error) {
          yield run; // what came before the failure still goes out
          throw error;
        }
        if (ready === NOT_READY) {
          pending = next;
          break;
        }
        if (ready.done) {
          yield run;
          return;
        }
        run.push(ready.value);
      }
      yield run;
    }
  } finally {
    await iterator.return?.();
  }
}

/**
 * Steps merged per choice: the texts of a choice's steps concatenated in order, its last finish reason and usage kept;
 * choices in the order they first appear.
 */
function mergeSteps(steps: Iterable<ChatStep>): ChatStep[] {
  const byIndex = new Map<number, ChatStep>();
  for (const step of steps) {
    const index = step.index ?? 0;
    const merged = byIndex.get(index);
    if (!merged) {
      byIndex.set(index, { ...step });
      continue;
    }
    merged.text += step.text;
    merged.finishReason = step.finishReason ?? merged.finishReason;
    merged.usage = step.usage ?? merged.usage;
  }
  return [...byIndex.values()];
}

/** A chat stream's steps with everything already waiting merged in (see readyRuns): one step per run. */
async function* coalesced(steps: AsyncIterable<ChatStep>): AsyncGenerator<ChatStep> {
  for await (const run of readyRuns(steps)) yield run.length === 1 ? run[0] : mergeSteps(run)[0];
}

async function streamResponse(
  request: ChatCompletionRequest,
  steps: AsyncIterable<ChatStep>,
  ctx: RequestContext,
): Promise<SpecResponse> {
  const iterator = coalesced(steps);
  // Wait for the first step before committing to a 200: an error before any token still gets its own status.
  const first = await iterator.next();
  const base = { id: completionId("chatcmpl"), object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model: modelOf(request, ctx) };
  // The constant part of every chunk, serialised once: only the delta and finish reason change.
  const head = `data: ${JSON.stringify(base).slice(0, -1)},"choices":[{"index":0,"delta":`;
  const tail = request.includeUsage ? `,"usage":null}\n\n` : `}\n\n`;
  const chunk = (delta: object, finishReason: FinishReason | null) =>
    `${head}${JSON.stringify(delta)},"logprobs":null,"finish_reason":${finishReason ? `"${finishReason}"` : "null"}}]${tail}`;

  async function* body(): AsyncGenerator<string> {
    let usage: TokenUsage | undefined;
    let finishReason: FinishReason | undefined;
    let role = true;
    try {
      for (let next = first; !next.done; next = await iterator.next()) {
        const step = next.value;
        if (step.text || role) {
          // The first chunk carries the role, as OpenAI's does; later ones only the new text.
          yield chunk(role ? { role: "assistant", content: step.text } : { content: step.text }, null);
          role = false;
        }
        finishReason = step.finishReason ?? finishReason;
        usage = step.usage ?? usage;
      }
    } catch (error) {
      // Headers are gone: report in-band, in the shape the openai clients raise as an APIError.
      yield sse(openAIErrorBody(toHttpError(error)));
      return;
    } finally {
      // Ends the generation when the client went away (the consumer stops pulling and returns this generator).
      await iterator.return(undefined);
    }
    let end = chunk({}, finishReason ?? "stop");
    if (request.includeUsage && usage) end += sse({ ...base, choices: [], usage: usageBody(usage) });
    yield end + "data: [DONE]\n\n";
  }
  return { kind: "stream", contentType: "text/event-stream; charset=utf-8", body: body() };
}

/** Per choice of a completions request: its text so far, finish reason and usage. */
interface ChoiceState {
  text: string;
  finishReason?: FinishReason;
  usage?: TokenUsage;
}

const stepsOf = (value: ChatOutput): ChatStep[] => (Array.isArray(value) ? value : [value]);

async function jsonCompletion(request: CompletionRequest, steps: AsyncIterable<ChatOutput>, ctx: RequestContext): Promise<SpecResponse> {
  const choices: ChoiceState[] = request.prompts.map((prompt) => ({ text: request.echo ? prompt : "" }));
  for await (const value of steps) {
    for (const step of stepsOf(value)) {
      const choice = choices[step.index ?? 0];
      choice.text += step.text;
      choice.finishReason = step.finishReason ?? choice.finishReason;
      choice.usage = step.usage ?? choice.usage;
    }
  }
  if (choices.some((c) => !c.finishReason || !c.usage)) throw new Error("generation ended without a finish reason");
  return {
    kind: "json",
    body: {
      id: completionId("cmpl"),
      object: "text_completion",
      created: Math.floor(Date.now() / 1000),
      model: modelOf(request, ctx),
      choices: choices.map((c, index) => ({ text: c.text, index, logprobs: null, finish_reason: c.finishReason })),
      usage: usageBody(totalUsage(choices)),
    },
  };
}

async function streamCompletion(request: CompletionRequest, steps: AsyncIterable<ChatOutput>, ctx: RequestContext): Promise<SpecResponse> {
  // Steps already waiting go out together, merged per choice, as chat's do: one chunk per choice per write.
  const iterator = readyRuns(steps);
  const first = await iterator.next();
  const base = { id: completionId("cmpl"), object: "text_completion", created: Math.floor(Date.now() / 1000), model: modelOf(request, ctx) };
  const chunk = (index: number, text: string, finishReason: FinishReason | null) =>
    sse({ ...base, choices: [{ text, index, logprobs: null, finish_reason: finishReason }], ...(request.includeUsage ? { usage: null } : {}) });

  async function* body(): AsyncGenerator<string> {
    const choices: ChoiceState[] = request.prompts.map(() => ({ text: "" }));
    let out = request.echo ? request.prompts.map((prompt, i) => chunk(i, prompt, null)).join("") : "";
    try {
      for (let next = first; !next.done; next = await iterator.next()) {
        for (const step of mergeSteps(next.value.flatMap(stepsOf))) {
          const index = step.index ?? 0;
          const choice = choices[index];
          choice.usage = step.usage ?? choice.usage;
          choice.finishReason = step.finishReason ?? choice.finishReason;
          if (step.text || step.finishReason) out += chunk(index, step.text, step.finishReason ?? null);
        }
        if (out) yield out;
        out = "";
      }
    } catch (error) {
      yield out + sse(openAIErrorBody(toHttpError(error)));
      return;
    } finally {
      await iterator.return(undefined);
    }
    if (request.includeUsage && choices.every((c) => c.usage)) out += sse({ ...base, choices: [], usage: usageBody(totalUsage(choices)) });
    yield out + "data: [DONE]\n\n";
  }
  return { kind: "stream", contentType: "text/event-stream; charset=utf-8", body: body() };
}

function totalUsage(choices: ChoiceState[]): TokenUsage {
  return choices.reduce(
    (sum, c) => ({ promptTokens: sum.promptTokens + (c.usage?.promptTokens ?? 0), completionTokens: sum.completionTokens + (c.usage?.completionTokens ?? 0) }),
    { promptTokens: 0, completionTokens: 0 },
  );
}

function sse(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

function usageBody(usage: TokenUsage) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

function completionId(prefix: string): string {
  return `${prefix}-${randomUUID().replace(/-/g, "")}`;
}

function modelOf(request: { model: string }, ctx: RequestContext): string {
  const served = ctx.state[SERVED_MODEL_STATE];
  return typeof served === "string" ? served : request.model;
}
