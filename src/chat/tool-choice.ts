/**
 * What a chat request's `tools` and `tool_choice` ask of the chat app, decided on the main thread before the request
 * is queued: which tools the template renders, how generated calls are parsed (chat-tool-calls.ts), and — for
 * `tool_choice` "required" or `{type: "function", function: {name}}` — the constrained decoding that forces a call
 * whose arguments match the function's `parameters` (chat-tool-constraint.ts). What cannot be honoured is a 400.
 */
import { BadRequestError } from "../api/model-api.js";
import type { ToolMode } from "./tool-calls.js";
import { argumentsSchema } from "./tool-constraint.js";
import type { ChatRequest, OutputFormat, ToolSpec } from "./types.js";
import { compileSchema, UnsupportedSchemaError } from "./json-schema/json-schema-constraint.js";

export interface ToolPlan {
  /** Tool definitions for the chat template; undefined: none rendered. */
  tools?: unknown[];
  /** How generated text is turned into tool calls; undefined: it is not (plain text). */
  mode?: ToolMode;
  /** A forced call's constraint. */
  format?: OutputFormat;
}

/** A chat template that renders tool definitions mentions them (Jinja variable `tools`). */
export function usesTools(template: unknown): boolean {
  const text = typeof template === "string" ? template : JSON.stringify(template ?? "");
  return /\btools\b/.test(text);
}

/**
 * `parsesCalls`: the template's tool-call format is one the app parses (a named template such as `hermes`); with a
 * model's own template, tools are rendered but calls stay text, so a forced call cannot be honoured.
 */
export function toolsFor(template: unknown, request: ChatRequest, parsesCalls: boolean): ToolPlan {
  const choice = request.toolChoice;
  const forced = choice === "required" || (typeof choice === "object" && choice !== null);
  if (choice !== undefined && choice !== "auto" && choice !== "none" && !forced) {
    throw new BadRequestError(`tool_choice must be auto, none, required or {type: function, function: {name}} (got ${JSON.stringify(choice)})`, "invalid_request");
  }
  const toolMessages = (request.messages ?? []).some((m) => m.role === "tool" || m.tool_calls);
  if (toolMessages && !usesTools(template)) {
    throw new BadRequestError("This model's chat template does not support tool calls or tool results in 'messages'", "unsupported_parameter");
  }
  const tools = request.tools ?? [];
  if (forced && tools.length === 0) throw new BadRequestError(`tool_choice ${JSON.stringify(choice)} needs 'tools'`, "invalid_request");
  if (tools.length === 0 || choice === "none") return {};
  if (!usesTools(template)) {
    const forcing = forced ? ` and tool_choice ${JSON.stringify(choice)} could not be honoured` : "";
    throw new BadRequestError(`This model's chat template does not support tools: the request's 'tools' would be ignored${forcing}`, "unsupported_parameter");
  }
  if (!forced) return { tools, mode: parsesCalls ? "auto" : undefined };
  if (!parsesCalls) {
    throw new BadRequestError(
      `tool_choice ${JSON.stringify(choice)} is not supported with this model's own chat template: its tool calls are not parsed (serve it with --chat-template hermes)`,
      "unsupported_parameter",
    );
  }
  if (request.format && request.format.type !== "text") {
    throw new BadRequestError("A forced tool_choice and a JSON response_format cannot both be enforced: send one of them", "unsupported_parameter");
  }
  const specs = tools.map(toolSpec);
  const allowed = choice === "required" ? specs : specs.filter((t) => t.name === namedFunction(choice));
  if (allowed.length === 0) {
    throw new BadRequestError(`tool_choice names the function ${JSON.stringify(namedFunction(choice))}, which is not among 'tools'`, "invalid_request");
  }
  return { tools, mode: "forced", format: { type: "tool_call", tools: allowed } };
}

function namedFunction(choice: unknown): unknown {
  return (choice as { function?: { name?: unknown } }).function?.name;
}

/** One `{type: "function", function: {name, parameters}}` definition, its parameters checked against what decoding enforces. */
function toolSpec(tool: unknown, i: number): ToolSpec {
  const fn = (tool as { type?: unknown; function?: { name?: unknown; parameters?: unknown } } | null)?.function;
  if ((tool as { type?: unknown } | null)?.type !== "function" || typeof fn?.name !== "string" || fn.name === "") {
    throw new BadRequestError(`tools[${i}] must be {type: "function", function: {name, parameters}}`, "invalid_request");
  }
  const spec: ToolSpec = { name: fn.name, ...(fn.parameters !== undefined ? { parameters: fn.parameters } : {}) };
  try {
    compileSchema(argumentsSchema(spec));
  } catch (error) {
    if (error instanceof UnsupportedSchemaError) throw new BadRequestError(`tools[${i}].function.parameters: ${error.message}`, "unsupported_schema");
    throw error;
  }
  return spec;
}
