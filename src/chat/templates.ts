/**
 * Chat templates a model may be served with instead of its tokenizer's own (`chatTemplate` option, CLI
 * `serve chat --chat-template NAME`), for models whose template lacks something the server can offer.
 *
 * `hermes`: ChatML (`<|im_start|>role … <|im_end|>`, the tiny test model's own format) with tool calls the way
 * Hermes 2 Pro and Qwen 2.5 write them: tool definitions as JSON lines inside `<tools></tools>` in the system turn;
 * an assistant's calls as `<tool_call>{"name": …, "arguments": …}</tool_call>` blocks; tool results as
 * `<tool_response>` blocks in a user turn. The chat app parses generated `<tool_call>` blocks back into
 * `tool_calls` (chat-tool-calls.ts).
 */

export const HERMES_TEMPLATE = `{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}
{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}
{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'assistant' and message.tool_calls %}
{{- '<|im_start|>assistant' }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for call in message.tool_calls %}
{{- '\\n<tool_call>\\n{"name": "' + call.function.name + '", "arguments": ' }}
{%- if call.function.arguments is string %}{{- call.function.arguments }}{%- else %}{{- call.function.arguments | tojson }}{%- endif %}
{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}
{%- else %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}`;

export const CHAT_TEMPLATES: Readonly<Record<string, string>> = { hermes: HERMES_TEMPLATE };

/** The Jinja text of a named template; an unknown name is an error that lists the known ones. */
export function chatTemplateNamed(name: string): string {
  const template = CHAT_TEMPLATES[name];
  if (!template) throw new Error(`Unknown chat template "${name}": known templates are ${Object.keys(CHAT_TEMPLATES).join(", ")}`);
  return template;
}
