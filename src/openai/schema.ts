import type { RouteDocs } from "../api/spec.js";

/**
 * What /openapi.json says about the OpenAI routes: the fields this server reads, in OpenAI's names. Documentation:
 * the spec's own parser (openai-request.ts) validates a body, and refuses the fields it cannot honour by name.
 */
const sampling = {
  model: { type: "string", description: "The served model's id (GET /v1/models)" },
  stream: { type: "boolean", default: false, description: "Answer as Server-Sent Events, ending with data: [DONE]" },
  stream_options: { type: ["object", "null"], properties: { include_usage: { type: "boolean" } } },
  max_tokens: { type: ["integer", "null"], minimum: 1 },
  temperature: { type: ["number", "null"], minimum: 0, maximum: 2 },
  top_p: { type: ["number", "null"], exclusiveMinimum: 0, maximum: 1 },
  stop: { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }, { type: "null" }] },
  seed: { type: ["integer", "null"] },
  n: { type: ["integer", "null"], const: 1, description: "Only 1" },
};

const usage = {
  type: "object",
  properties: { prompt_tokens: { type: "integer" }, completion_tokens: { type: "integer" }, total_tokens: { type: "integer" } },
};

const SSE = { type: "string", description: "`data: <chunk JSON>` events, the last one `data: [DONE]`" };

export const OPENAI_ERROR_SCHEMA = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["message", "type", "code"],
      properties: {
        message: { type: "string" },
        type: { type: "string", examples: ["invalid_request_error"] },
        param: { type: ["string", "null"], description: "The request field at fault" },
        code: { type: "string" },
      },
    },
  },
};

export const CHAT_DOCS: RouteDocs = {
  summary: "Chat completions (OpenAI wire format)",
  request: {
    type: "object",
    required: ["messages"],
    properties: {
      ...sampling,
      messages: {
        type: "array",
        minItems: 1,
        items: {
          type: "object",
          required: ["role"],
          properties: {
            role: { enum: ["system", "developer", "user", "assistant", "tool"] },
            content: { anyOf: [{ type: "string" }, { type: "array", items: { type: "object" } }, { type: "null" }] },
            tool_calls: { type: "array", items: { type: "object" } },
            tool_call_id: { type: "string" },
          },
        },
      },
      max_completion_tokens: { type: ["integer", "null"], minimum: 1 },
      response_format: {
        type: ["object", "null"],
        properties: { type: { enum: ["text", "json_object", "json_schema"] }, json_schema: { type: "object" } },
        description: "json_object and json_schema are enforced by constrained decoding",
      },
      tools: { type: ["array", "null"], items: { type: "object" } },
      tool_choice: { anyOf: [{ type: "string" }, { type: "object" }, { type: "null" }] },
    },
  },
  responses: {
    "application/json": {
      type: "object",
      properties: {
        id: { type: "string" },
        object: { const: "chat.completion" },
        created: { type: "integer" },
        model: { type: "string" },
        choices: {
          type: "array",
          items: {
            type: "object",
            properties: { index: { type: "integer" }, message: { type: "object" }, finish_reason: { type: "string" } },
          },
        },
        usage,
      },
    },
    "text/event-stream": SSE,
  },
  error: OPENAI_ERROR_SCHEMA,
};

export const COMPLETION_DOCS: RouteDocs = {
  summary: "Completions (legacy OpenAI wire format)",
  request: {
    type: "object",
    required: ["prompt"],
    properties: {
      ...sampling,
      prompt: { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" }, minItems: 1, maxItems: 16 }] },
      echo: { type: "boolean", default: false },
    },
  },
  responses: {
    "application/json": {
      type: "object",
      properties: {
        id: { type: "string" },
        object: { const: "text_completion" },
        choices: { type: "array", items: { type: "object", properties: { index: { type: "integer" }, text: { type: "string" }, finish_reason: { type: "string" } } } },
        usage,
      },
    },
    "text/event-stream": SSE,
  },
  error: OPENAI_ERROR_SCHEMA,
};
