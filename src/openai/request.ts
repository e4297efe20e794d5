/**
 * Validation of OpenAI chat completions and (legacy) completions bodies into the chat app's {@link ChatRequest}.
 *
 * A field that would change the answer and that this server does not implement is refused with a 400 naming it
 * (OpenAI's `param`), never ignored: see {@link UNSUPPORTED_CHAT} / {@link UNSUPPORTED_COMPLETION}. A field set to
 * its default value (logprobs: false, presence_penalty: 0, …) changes nothing and is accepted. Fields that do not
 * change the answer (user, metadata, store, service_tier, …) are accepted and ignored.
 */
import type { ChatMessage, ChatRequest, OutputFormat } from "../chat/types.js";
import { parseContentParts } from "./content-parts.js";
import { InvalidRequestError, isObject } from "./errors.js";

export { InvalidRequestError, isObject } from "./errors.js";

/**
 * What the API behind the spec declares it honours (`openai: { accepts: [...] }` on the API): request fields of the
 * refused tables below, `n`, and content parts (`image_url`, `image_url.remote`, `input_audio`). A declared field
 * is passed through to decodeRequest (`request.extra`, `request.n`, `message.parts`) instead of refused.
 */
export type OpenAIAccepts = ReadonlySet<string>;
const NOTHING: OpenAIAccepts = new Set();

/** Most choices per prompt a request may ask for (n), for an API that accepts n. */
export const MAX_CHOICES = 16;

/** A validated chat completions request, normalised (text parts joined, `stop` always a list). */
export interface ChatCompletionRequest extends ChatRequest {
  kind?: "chat";
  model: string;
  messages: ChatMessage[];
  stream: boolean;
  includeUsage: boolean;
}

/** A validated completions request: one generation per prompt. */
export interface CompletionRequest extends ChatRequest {
  kind: "completion";
  model: string;
  prompts: string[];
  echo: boolean;
  stream: boolean;
  includeUsage: boolean;
}

export type OpenAIRequest = ChatCompletionRequest | CompletionRequest;

/**
 * Chat fields that change the answer and are not implemented, with the value that means "off" (accepted).
 * `undefined` as the neutral value: any value is refused.
 */
export const UNSUPPORTED_CHAT: Record<string, unknown[]> = {
  logprobs: [false],
  top_logprobs: [0],
  logit_bias: [{}],
  presence_penalty: [0],
  frequency_penalty: [0],
  functions: [],
  function_call: ["none", "auto"],
  audio: [],
  modalities: [["text"]],
  prediction: [],
  web_search_options: [],
  reasoning_effort: [],
  verbosity: [],
};

/** Completions fields that change the answer and are not implemented. */
export const UNSUPPORTED_COMPLETION: Record<string, unknown[]> = {
  logprobs: [0, false],
  logit_bias: [{}],
  presence_penalty: [0],
  frequency_penalty: [0],
  suffix: [""],
  best_of: [1],
};

/** Refuse the table's fields set to a non-neutral value, except those the API accepts: those are returned, as sent. */
function refuseUnsupported(body: Record<string, unknown>, table: Record<string, unknown[]>, accepts: OpenAIAccepts): Record<string, unknown> | undefined {
  let extra: Record<string, unknown> | undefined;
  for (const [field, neutral] of Object.entries(table)) {
    const value = body[field];
    if (value === undefined || value === null) continue;
    if (accepts.has(field)) {
      (extra ??= {})[field] = value;
      continue;
    }
    if (neutral.some((n) => JSON.stringify(n) === JSON.stringify(value))) continue;
    throw new InvalidRequestError(
      `'${field}' is not supported by this server (it would change the answer, so it is refused rather than ignored)`,
      field,
      "unsupported_parameter",
    );
  }
  return extra;
}

/** `n`: 1 unless the API accepts more, then 1 to {@link MAX_CHOICES}. */
function parseN(body: Record<string, unknown>, accepts: OpenAIAccepts): number {
  const n = body.n ?? 1;
  if (n === 1) return 1;
  if (!accepts.has("n")) throw new InvalidRequestError("Only n = 1 is supported by this API (one choice per prompt)", "n");
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1 || n > MAX_CHOICES) {
    throw new InvalidRequestError(`'n' must be an integer from 1 to ${MAX_CHOICES} (got ${JSON.stringify(n)})`, "n");
  }
  return n;
}

const ROLES: ReadonlySet<string> = new Set(["system", "developer", "user", "assistant", "tool"]);

/** Validate a chat completions body. */
export function parseChatRequest(body: unknown, accepts: OpenAIAccepts = NOTHING): ChatCompletionRequest {
  if (!isObject(body)) throw new InvalidRequestError("The request body must be a JSON object");
  const extra = refuseUnsupported(body, UNSUPPORTED_CHAT, accepts);
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new InvalidRequestError("'messages' must be a non-empty array of {role, content}", "messages");
  }
  const maxCompletion = optionalInteger(body, "max_completion_tokens", 1);
  const n = parseN(body, accepts);
  const tools = body.tools;
  if (tools !== undefined && tools !== null && !Array.isArray(tools)) throw new InvalidRequestError("'tools' must be a list", "tools");
  const parallel = body.parallel_tool_calls ?? undefined;
  if (parallel !== undefined && typeof parallel !== "boolean") throw new InvalidRequestError("'parallel_tool_calls' must be a boolean", "parallel_tool_calls");
  const toolChoice = body.tool_choice ?? undefined;
  if (toolChoice !== undefined && !(typeof toolChoice === "string" || isObject(toolChoice))) {
    throw new InvalidRequestError("'tool_choice' must be a string or an object", "tool_choice");
  }
  return {
    kind: "chat",
    ...common(body),
    maxTokens: maxCompletion ?? optionalInteger(body, "max_tokens", 1),
    messages: messages.map((message, i) => parseMessage(message, `messages[${i}]`, accepts)),
    format: parseResponseFormat(body.response_format),
    tools: Array.isArray(tools) && tools.length > 0 ? tools : undefined,
    toolChoice,
    ...(parallel === false ? { parallelToolCalls: false } : {}),
    ...(n > 1 ? { n } : {}),
    ...(extra ? { extra } : {}),
  };
}

/** Validate a completions body (`prompt`: a string or a non-empty list of strings). */
export function parseCompletionRequest(body: unknown, accepts: OpenAIAccepts = NOTHING): CompletionRequest {
  if (!isObject(body)) throw new InvalidRequestError("The request body must be a JSON object");
  const extra = refuseUnsupported(body, UNSUPPORTED_COMPLETION, accepts);
  const prompt = body.prompt;
  const prompts = typeof prompt === "string" ? [prompt] : prompt;
  if (!Array.isArray(prompts) || prompts.length === 0 || !prompts.every((p) => typeof p === "string")) {
    throw new InvalidRequestError("'prompt' must be a string or a non-empty list of strings (token-id prompts are not supported)", "prompt");
  }
  if (prompts.length > 16) throw new InvalidRequestError("'prompt' may hold at most 16 prompts", "prompt");
  const n = parseN(body, accepts);
  if (prompts.length * n > 16) throw new InvalidRequestError("'prompt' × 'n' may be at most 16 choices", "n");
  const echo = body.echo ?? false;
  if (typeof echo !== "boolean") throw new InvalidRequestError("'echo' must be a boolean", "echo");
  return {
    kind: "completion",
    ...common(body),
    // The completions API's default is 16 tokens.
    maxTokens: optionalInteger(body, "max_tokens", 1) ?? 16,
    prompts: prompts as string[],
    echo,
    ...(n > 1 ? { n } : {}),
    ...(extra ? { extra } : {}),
  };
}

/** Fields both endpoints share. */
function common(body: Record<string, unknown>) {
  const model = body.model ?? "";
  if (typeof model !== "string") throw new InvalidRequestError("'model' must be a string", "model");
  const temperature = optionalNumber(body, "temperature", 0, 2);
  const topP = optionalNumber(body, "top_p", 0, 1);
  if (topP === 0) throw new InvalidRequestError("'top_p' must be greater than 0", "top_p");
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
    temperature,
    topP,
    stop: parseStop(body.stop),
    seed: optionalInteger(body, "seed", Number.MIN_SAFE_INTEGER),
    stream,
    includeUsage,
  };
}

/** `response_format`: text, json_object, or json_schema {name, schema, strict}. */
function parseResponseFormat(value: unknown): OutputFormat | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw new InvalidRequestError("'response_format' must be an object", "response_format");
  switch (value.type) {
    case "text":
      return undefined;
    case "json_object":
      return { type: "json_object" };
    case "json_schema": {
      const spec = value.json_schema;
      if (!isObject(spec) || !isObject(spec.schema)) {
        throw new InvalidRequestError("'response_format.json_schema' must be an object with a 'schema' object", "response_format.json_schema");
      }
      if (spec.strict !== undefined && spec.strict !== null && typeof spec.strict !== "boolean") {
        throw new InvalidRequestError("'response_format.json_schema.strict' must be a boolean", "response_format.json_schema.strict");
      }
      // Strict or not, the output is constrained to the schema: decoding cannot do "mostly".
      return { type: "json_schema", schema: spec.schema };
    }
    default:
      throw new InvalidRequestError(
        `'response_format.type' must be one of text, json_object, json_schema (got ${JSON.stringify(value.type)})`,
        "response_format.type",
      );
  }
}

function parseMessage(message: unknown, param: string, accepts: OpenAIAccepts): ChatMessage {
  if (!isObject(message)) throw new InvalidRequestError(`'${param}' must be an object with role and content`, param);
  const role = message.role;
  if (typeof role !== "string" || !ROLES.has(role)) {
    throw new InvalidRequestError(
      `'${param}.role' must be one of system, developer, user, assistant, tool (got ${JSON.stringify(role)})`,
      `${param}.role`,
    );
  }
  const toolCalls = message.tool_calls;
  if (role === "tool" && typeof message.tool_call_id !== "string") {
    throw new InvalidRequestError(`'${param}.tool_call_id' must be a string: a tool message answers a tool call`, `${param}.tool_call_id`);
  }
  const { text: content, parts } =
    (message.content === null || message.content === undefined) && role === "assistant" && Array.isArray(toolCalls)
      ? { text: "", parts: [] }
      : parseContent(message.content, `${param}.content`, accepts);
  const parsed: ChatMessage = { role: role === "developer" ? "system" : (role as ChatMessage["role"]), content };
  if (parts.length > 0) parsed.parts = parts;
  if (Array.isArray(toolCalls)) parsed.tool_calls = toolCalls;
  if (typeof message.tool_call_id === "string") parsed.tool_call_id = message.tool_call_id;
  if (typeof message.name === "string") parsed.name = message.name;
  return parsed;
}

function parseContent(content: unknown, param: string, accepts: OpenAIAccepts) {
  if (typeof content === "string") return { text: content, parts: [] };
  if (Array.isArray(content)) return parseContentParts(content, param, accepts);
  throw new InvalidRequestError(`'${param}' must be a string or an array of content parts`, param);
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
