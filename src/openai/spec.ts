/**
 * The OpenAI wire format on top of the batching core: `POST /v1/chat/completions` and `POST /v1/completions` (JSON,
 * or Server-Sent Events with `stream: true`) and `GET /v1/models`, so the official `openai` clients work unchanged.
 * Both POST routes go through the same endpoint: one queue, one batcher, one engine.
 *
 * The API behind it always streams: its predict is an async generator, and what it yields per request and step — a
 * string, a {@link ChatStep}, a whole tool call, or a list of these for several choices — is made into ChatSteps by
 * openai-output.ts, which also counts tokens for an API that does not. Request fields the spec does not implement
 * are refused with a 400 naming them unless the API declares it honours them (`openai: { accepts: [...] }`), and then
 * they reach its decodeRequest. A streaming request turns the steps into SSE chunks as soon as they exist — the steps that are already waiting
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
import type { RequestContext } from "../api/model-api.js";
import { SERVED_MODEL_STATE, type ChatOutput, type FinishReason, type TokenUsage } from "../chat/types.js";
import { toHttpError } from "../api/errors.js";
import type { Spec, SpecResponse } from "../api/spec.js";
import { jsonChat, streamChat } from "./chat-response.js";
import { CHAT_DOCS, COMPLETION_DOCS } from "./schema.js";
import { LlmMetrics } from "./metrics.js";
import { normalizeOutputs } from "./output.js";
import { parseChatRequest, parseCompletionRequest, type CompletionRequest, type OpenAIRequest } from "./request.js";
import { completionId, mergeSteps, openAIErrorBody, readyRuns, sse, stepsOf, totalUsage, usageBody } from "./wire.js";

export type { ChatMessage, ChatRole, ChatStep, FinishReason, MediaPart, TokenUsage, ToolCallDelta } from "../chat/types.js";
export { SERVED_MODEL_STATE } from "../chat/types.js";
export {
  InvalidRequestError,
  MAX_CHOICES,
  parseChatRequest,
  parseCompletionRequest,
  UNSUPPORTED_CHAT,
  UNSUPPORTED_COMPLETION,
  type ChatCompletionRequest,
  type CompletionRequest,
  type OpenAIAccepts,
  type OpenAIRequest,
} from "./request.js";
export { openAIErrorBody } from "./wire.js";
export { estimateTokens } from "./output.js";

export interface OpenAISpecOptions {
  /** Route of the chat endpoint; default "/v1/chat/completions". */
  path?: string;
  /** Route of the completions endpoint; default "/v1/completions"; false: none. */
  completionsPath?: string | false;
  /**
   * Request fields and content parts the API honours, added to what the API itself declares (its `openai.accepts`):
   * see {@link OpenAIDeclaration}.
   */
  accepts?: string[];
}

/**
 * What an API served with this spec declares as its `openai` property: the request fields it honours beyond the
 * spec's own (`n`, `reasoning_effort`, `logprobs`, … any field the spec otherwise refuses), and the content parts it
 * takes (`image_url` as data URLs, `image_url.remote` for http(s) URLs it fetches itself, `input_audio`). Declared
 * fields reach decodeRequest (`request.n`, `request.extra`, `message.parts`); the rest stay a 400 naming them.
 */
export interface OpenAIDeclaration {
  accepts?: readonly string[];
}

/** `ctx.state` key holding when the request was parsed (performance.now()), for TTFT. */
const STARTED_STATE = "llmStartedAt";

export function openAISpec(options: OpenAISpecOptions = {}): Spec<OpenAIRequest, ChatOutput> {
  const path = options.path ?? "/v1/chat/completions";
  const completionsPath = options.completionsPath === false ? undefined : (options.completionsPath ?? "/v1/completions");
  let metrics: LlmMetrics | undefined;
  let accepts = new Set(options.accepts ?? []);
  return {
    name: "openai",
    path,
    extraPaths: completionsPath ? [completionsPath] : [],
    streamsPredict: true,
    registerRoutes(app, endpoint) {
      if (endpoint.registry) metrics = new LlmMetrics(endpoint.registry, path);
      const declared = (endpoint.api as { openai?: OpenAIDeclaration } | undefined)?.openai?.accepts ?? [];
      accepts = new Set([...accepts, ...declared]);
      app.get("/v1/models", async () => {
        return {
          object: "list",
          data: [{ id: servedModelId(endpoint.info()), object: "model", created: STARTED, owned_by: "batchwise" }],
        };
      });
    },
    parseRequest(body, ctx, route) {
      ctx.state[STARTED_STATE] = performance.now();
      return route !== undefined && route === completionsPath ? parseCompletionRequest(body, accepts) : parseChatRequest(body, accepts);
    },
    respond(request, outputs, ctx) {
      const normalized = normalizeOutputs(outputs, request);
      const steps = metrics ? metrics.observe(normalized, ctx.state[STARTED_STATE] as number) : normalized;
      const model = modelOf(request, ctx);
      if (request.kind === "completion") {
        return request.stream ? streamCompletion(request, steps, model) : jsonCompletion(request, steps, model);
      }
      return request.stream ? streamChat(request, steps, model) : jsonChat(request, steps, model);
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

/** Per choice of a completions request: its text so far, finish reason and usage. */
interface ChoiceState {
  text: string;
  finishReason?: FinishReason;
  usage?: TokenUsage;
}

/** The prompt of choice i: a request's prompts each have n choices, in order. */
const promptOf = (request: CompletionRequest, index: number) => request.prompts[Math.floor(index / (request.n ?? 1))];
const choiceCount = (request: CompletionRequest) => request.prompts.length * (request.n ?? 1);

async function jsonCompletion(request: CompletionRequest, steps: AsyncIterable<ChatOutput>, model: string): Promise<SpecResponse> {
  const choices: ChoiceState[] = Array.from({ length: choiceCount(request) }, (_, i) => ({ text: request.echo ? promptOf(request, i) : "" }));
  for await (const value of steps) {
    for (const step of stepsOf(value)) {
      const choice = choices[step.index ?? 0];
      if (!choice) throw new Error(`predict yielded a step for choice ${step.index}; the request has ${choices.length}`);
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
      model,
      choices: choices.map((c, index) => ({ text: c.text, index, logprobs: null, finish_reason: c.finishReason })),
      usage: usageBody(totalUsage(choices.map((c) => c.usage), request.n ?? 1)),
    },
  };
}

async function streamCompletion(request: CompletionRequest, steps: AsyncIterable<ChatOutput>, model: string): Promise<SpecResponse> {
  // Steps already waiting go out together, merged per choice, as chat's do: one chunk per choice per write.
  const iterator = readyRuns(steps);
  const first = await iterator.next();
  const base = { id: completionId("cmpl"), object: "text_completion", created: Math.floor(Date.now() / 1000), model };
  const chunk = (index: number, text: string, finishReason: FinishReason | null) =>
    sse({ ...base, choices: [{ text, index, logprobs: null, finish_reason: finishReason }], ...(request.includeUsage ? { usage: null } : {}) });

  async function* body(): AsyncGenerator<string> {
    const choices: ChoiceState[] = Array.from({ length: choiceCount(request) }, () => ({ text: "" }));
    let out = request.echo ? choices.map((_, i) => chunk(i, promptOf(request, i), null)).join("") : "";
    try {
      for (let next = first; !next.done; next = await iterator.next()) {
        for (const step of mergeSteps(next.value.flatMap(stepsOf))) {
          const index = step.index ?? 0;
          const choice = choices[index];
          if (!choice) throw new Error(`predict yielded a step for choice ${index}; the request has ${choices.length}`);
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
    if (request.includeUsage && choices.every((c) => c.usage)) {
      out += sse({ ...base, choices: [], usage: usageBody(totalUsage(choices.map((c) => c.usage), request.n ?? 1)) });
    }
    yield out + "data: [DONE]\n\n";
  }
  return { kind: "stream", contentType: "text/event-stream; charset=utf-8", body: body() };
}

function modelOf(request: { model: string }, ctx: RequestContext): string {
  const served = ctx.state[SERVED_MODEL_STATE];
  return typeof served === "string" ? served : request.model;
}
