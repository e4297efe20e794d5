/**
 * The OpenAI chat completions wire format on top of the batching core: `POST /v1/chat/completions` (JSON, or
 * Server-Sent Events with `stream: true`) and `GET /v1/models`, so the official `openai` clients work unchanged.
 *
 * The API behind it always streams: its predict is an async generator and its encodeResponse yields one
 * {@link ChatStep} per generation step. A streaming request turns each step into an SSE chunk as soon as it
 * exists; a non-streaming request concatenates the steps into one `chat.completion`.
 *
 * @example
 * ```ts
 * const server = await createServer({ api: chatModel({ model: "tiny-random-llama" }), spec: openAISpec() });
 * const client = new OpenAI({ baseURL: `${await server.listen()}/v1`, apiKey: "unused" });
 * const reply = await client.chat.completions.create({ model: "tiny-random-llama", messages: [{ role: "user", content: "Hi" }] });
 * ```
 */
import { randomUUID } from "node:crypto";
import type { RequestContext } from "../api.js";
import { HttpError, toHttpError } from "../server/errors.js";
import type { Spec, SpecResponse } from "../server/spec.js";

export type ChatRole = "system" | "user" | "assistant";

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** A validated chat completions request, normalised (text parts joined, `stop` always a list). */
export interface ChatCompletionRequest {
  model: string;
  messages: ChatMessage[];
  /** `max_completion_tokens`, else `max_tokens`; undefined = the API's default. */
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stop: string[];
  seed?: number;
  stream: boolean;
  includeUsage: boolean;
}

export type FinishReason = "stop" | "length";

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

/**
 * What a chat API's encodeResponse yields per generation step for one request: the new text (possibly "" when a
 * token completed no character yet), and on the last step why generation ended and the token counts.
 */
export interface ChatStep {
  text: string;
  finishReason?: FinishReason;
  usage?: TokenUsage;
}

/** `ctx.state` key where the API records the model id it serves (answered as `model`); else the request's. */
export const SERVED_MODEL_STATE = "servedModel";

/** A 400 that names the offending request field, as OpenAI's errors do (`param`). */
export class InvalidRequestError extends HttpError {
  constructor(message: string, readonly param: string | null = null, code = "invalid_request") {
    super(400, code, message);
  }
}

export interface OpenAISpecOptions {
  /** Route of the chat endpoint; default "/v1/chat/completions". */
  path?: string;
}

export function openAISpec(options: OpenAISpecOptions = {}): Spec<ChatCompletionRequest, ChatStep> {
  return {
    name: "openai",
    path: options.path ?? "/v1/chat/completions",
    streamsPredict: true,
    registerRoutes(app, endpoint) {
      app.get("/v1/models", async () => {
        return {
          object: "list",
          data: [{ id: servedModelId(endpoint.info()), object: "model", created: STARTED, owned_by: "batchwise" }],
        };
      });
    },
    parseRequest: (body) => parseChatRequest(body),
    respond: (request, steps, ctx) => (request.stream ? streamResponse(request, steps, ctx) : jsonResponse(request, steps, ctx)),
    formatError: openAIErrorBody,
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
      param: error instanceof InvalidRequestError ? error.param : null,
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
      id: completionId(),
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: modelOf(request, ctx),
      choices: [{ index: 0, message: { role: "assistant", content }, logprobs: null, finish_reason: finishReason }],
      usage: usageBody(usage),
    },
  };
}

async function streamResponse(
  request: ChatCompletionRequest,
  steps: AsyncIterable<ChatStep>,
  ctx: RequestContext,
): Promise<SpecResponse> {
  const iterator = steps[Symbol.asyncIterator]();
  // Wait for the first step before committing to a 200: an error before any token still gets its own status.
  const first = await iterator.next();
  const base = { id: completionId(), object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model: modelOf(request, ctx) };
  const chunk = (delta: object, finishReason: FinishReason | null) =>
    sse({
      ...base,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      ...(request.includeUsage ? { usage: null } : {}),
    });

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
      await iterator.return?.();
    }
    yield chunk({}, finishReason ?? "stop");
    if (request.includeUsage && usage) yield sse({ ...base, choices: [], usage: usageBody(usage) });
    yield "data: [DONE]\n\n";
  }
  return { kind: "stream", contentType: "text/event-stream; charset=utf-8", body: body() };
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

function completionId(): string {
  return `chatcmpl-${randomUUID().replace(/-/g, "")}`;
}

function modelOf(request: ChatCompletionRequest, ctx: RequestContext): string {
  const served = ctx.state[SERVED_MODEL_STATE];
  return typeof served === "string" ? served : request.model;
}

const ROLES: ReadonlySet<string> = new Set(["system", "developer", "user", "assistant"]);

/** Validate a chat completions body. Unknown fields are ignored, as OpenAI-compatible servers commonly do. */
export function parseChatRequest(body: unknown): ChatCompletionRequest {
  if (!isObject(body)) throw new InvalidRequestError("The request body must be a JSON object");
  const model = body.model ?? "";
  if (typeof model !== "string") throw new InvalidRequestError("'model' must be a string", "model");

  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new InvalidRequestError("'messages' must be a non-empty array of {role, content}", "messages");
  }
  const parsedMessages = messages.map((message, i) => parseMessage(message, `messages[${i}]`));

  const maxCompletion = optionalInteger(body, "max_completion_tokens", 1);
  const maxTokens = maxCompletion ?? optionalInteger(body, "max_tokens", 1);
  const temperature = optionalNumber(body, "temperature", 0, 2);
  const topP = optionalNumber(body, "top_p", 0, 1);
  if (topP === 0) throw new InvalidRequestError("'top_p' must be greater than 0", "top_p");
  const seed = optionalInteger(body, "seed", Number.MIN_SAFE_INTEGER);

  const n = body.n ?? 1;
  if (n !== 1) throw new InvalidRequestError("Only n = 1 is supported (one choice per request)", "n");

  const stream = body.stream ?? false;
  if (typeof stream !== "boolean") throw new InvalidRequestError("'stream' must be a boolean", "stream");
  const streamOptions = body.stream_options ?? null;
  if (streamOptions !== null && (!isObject(streamOptions) || !stream)) {
    throw new InvalidRequestError("'stream_options' must be an object and is only allowed with stream: true", "stream_options");
  }
  const includeUsage = streamOptions?.include_usage ?? false;
  if (typeof includeUsage !== "boolean") {
    throw new InvalidRequestError("'stream_options.include_usage' must be a boolean", "stream_options.include_usage");
  }

  return {
    model,
    messages: parsedMessages,
    maxTokens,
    temperature,
    topP,
    stop: parseStop(body.stop),
    seed,
    stream,
    includeUsage,
  };
}

function parseMessage(message: unknown, param: string): ChatMessage {
  if (!isObject(message)) throw new InvalidRequestError(`'${param}' must be an object with role and content`, param);
  const role = message.role;
  if (typeof role !== "string" || !ROLES.has(role)) {
    throw new InvalidRequestError(
      `'${param}.role' must be one of system, developer, user, assistant (got ${JSON.stringify(role)})`,
      `${param}.role`,
    );
  }
  return { role: role === "developer" ? "system" : (role as ChatRole), content: parseContent(message.content, `${param}.content`) };
}

function parseContent(content: unknown, param: string): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part, i) => {
        if (!isObject(part) || part.type !== "text" || typeof part.text !== "string") {
          throw new InvalidRequestError(`'${param}[${i}]' must be a text part {type: "text", text}; only text is supported`, `${param}[${i}]`);
        }
        return part.text;
      })
      .join("");
  }
  throw new InvalidRequestError(`'${param}' must be a string or an array of text parts`, param);
}

function parseStop(stop: unknown): string[] {
  if (stop === undefined || stop === null) return [];
  const list = typeof stop === "string" ? [stop] : stop;
  if (!Array.isArray(list) || list.length > 4 || !list.every((s) => typeof s === "string" && s.length > 0)) {
    throw new InvalidRequestError("'stop' must be a non-empty string or a list of up to 4 non-empty strings", "stop");
  }
  return list as string[];
}

function optionalInteger(body: Record<string, unknown>, field: string, min: number): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidRequestError(`'${field}' must be an integer${min > 0 ? ` >= ${min}` : ""} (got ${JSON.stringify(value)})`, field);
  }
  return value;
}

function optionalNumber(body: Record<string, unknown>, field: string, min: number, max: number): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidRequestError(`'${field}' must be a number between ${min} and ${max} (got ${JSON.stringify(value)})`, field);
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
