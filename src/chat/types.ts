/**
 * What the chat app and its generation engine speak, independent of any wire format. The OpenAI spec
 * (src/specs/openai.ts) translates its JSON into these types and back; the engine never sees OpenAI's shapes.
 */

export type ChatRole = "system" | "user" | "assistant" | "tool";

export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** Assistant messages that called tools, and tool results, as the chat template expects them. */
  tool_calls?: unknown[];
  tool_call_id?: string;
  name?: string;
  /**
   * Non-text content parts (images, audio), in order, for an API that declares it takes them (see
   * src/specs/openai-content-parts.ts); `content` holds the text parts joined.
   */
  parts?: MediaPart[];
}

/**
 * An image or audio content part, decoded: a data URL's (or input_audio's base64) bytes and media type, as an
 * `Upload` (server/upload.ts); or, only for an API that declares it fetches them, the http(s) URL to fetch.
 */
export type MediaPart =
  | { type: "image_url"; upload: { data: Buffer; contentType: string }; detail?: string }
  | { type: "image_url"; url: string; detail?: string }
  | { type: "input_audio"; upload: { data: Buffer; contentType: string }; format: string };

/**
 * Output restricted by constrained decoding: any JSON object, or a value matching a JSON Schema (the supported
 * subset is checked by `compileSchema` in json-schema-constraint.ts).
 */
export type OutputFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; schema: unknown }
  /** A forced tool call: one of these functions' names, then arguments matching its parameters (chat-tool-constraint.ts). */
  | { type: "tool_call"; tools: ToolSpec[] };

/** A function the model may call: its name and the JSON Schema of its arguments. */
export interface ToolSpec {
  name: string;
  parameters?: unknown;
}

/** One request to the chat app: a conversation (chat) or raw prompts (completions). */
export interface ChatRequest {
  /** The conversation, rendered with the model's chat template. */
  messages?: ChatMessage[];
  /** Raw prompts, tokenized as they are (completions): one generation each, as choices 0, 1, … of one request. */
  prompts?: string[];
  /** Undefined = the API's default. */
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stop: string[];
  seed?: number;
  format?: OutputFormat;
  /** Tool definitions passed to the chat template (only when the template uses them). */
  tools?: unknown[];
  toolChoice?: unknown;
  /** `parallel_tool_calls: false`: at most one tool call per answer. */
  parallelToolCalls?: boolean;
  /** Choices per prompt (OpenAI's `n`), for an API that declares it; absent = 1. */
  n?: number;
  /** Fields the API declared it honours (`openai.accepts`) that the spec does not interpret, passed as sent. */
  extra?: Record<string, unknown>;
}

export type FinishReason = "stop" | "length" | "tool_calls";

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

/**
 * What the chat API yields per generation step for one request: the new text (possibly "" when a token completed
 * no character yet), and on the last step why generation ended and the token counts.
 */
export interface ChatStep {
  text: string;
  /** Which choice (prompt) of a multi-prompt request this step belongs to; absent = 0. */
  index?: number;
  /**
   * Tool-call fragments, OpenAI's streaming shape: a call's first fragment has its id and name, later ones only more
   * of its `arguments` text; `index` numbers the calls of one choice.
   */
  toolCalls?: ToolCallDelta[];
  finishReason?: FinishReason;
  usage?: TokenUsage;
}

export interface ToolCallDelta {
  index: number;
  id?: string;
  name?: string;
  arguments: string;
}

/** Per request and step, the API yields one step, or (for a request with several prompts) the steps that have news. */
export type ChatOutput = ChatStep | ChatStep[];

/** `ctx.state` key where the API records the model id it serves (answered as `model`); else the request's. */
export const SERVED_MODEL_STATE = "servedModel";
