/**
 * Generated tool calls, parsed out of a choice's text as it streams (main thread, in the chat app's encodeResponse):
 *
 * - `auto` (tools offered, the model decides): text outside `<tool_call>…</tool_call>` blocks is content; text that
 *   could still be the start of `<tool_call>` is held back until it is not; a block whose JSON is `{"name", "arguments"}`
 *   becomes a tool call, anything else inside stays text (a model's mistake is shown, not dropped).
 * - `forced` (tool_choice "required" or a named function): the constrained decoder (chat-tool-constraint.ts) writes
 *   `"NAME"{arguments}` and nothing else: the call opens as soon as the name's closing quote is generated, and its
 *   arguments stream as they are generated, fragment by fragment.
 *
 * A parsed block goes out as one {@link ToolCallDelta} (id, name, the whole arguments); the OpenAI spec splits a delta
 * that opens a call into OpenAI's chunks (id, type and name first, then arguments). A choice that called a tool and
 * then stopped ends with finish_reason "tool_calls".
 */
import { randomUUID } from "node:crypto";
import type { ChatStep, ToolCallDelta } from "./types.js";

export type ToolMode = "auto" | "forced";

const OPEN = "<tool_call>";
const CLOSE = "</tool_call>";

export class ToolCallParser {
  private buffer = "";
  private inCall = false;
  private calls = 0;
  /** Forced mode: no argument text has been sent yet (whitespace before the arguments is dropped). */
  private awaitingArguments = true;

  /** `maxCalls`: 1 for `parallel_tool_calls: false` — blocks after the first call stay text. */
  constructor(private readonly mode: ToolMode, private readonly maxCalls = Infinity) {}

  push(step: ChatStep): ChatStep {
    this.buffer += step.text;
    const deltas: ToolCallDelta[] = [];
    let text = "";
    if (this.mode === "forced") {
      this.forced(deltas);
      // Cut short before the name was complete: what there is stays text.
      if (step.finishReason && this.calls === 0) text = this.buffer;
    } else {
      text = this.scan(deltas);
      if (step.finishReason) {
        text += (this.inCall ? OPEN : "") + this.buffer;
        this.buffer = "";
        this.inCall = false;
      }
    }
    const out: ChatStep = { ...step, text };
    if (deltas.length > 0) out.toolCalls = deltas;
    if (step.finishReason === "stop" && this.calls > 0) out.finishReason = "tool_calls";
    return out;
  }

  /** The forced call: opened once its name is complete, then every new piece of the buffer is more arguments. */
  private forced(deltas: ToolCallDelta[]): void {
    if (this.calls === 0) {
      const name = /^\s*("(?:[^"\\]|\\.)*")/.exec(this.buffer);
      if (!name) return;
      deltas.push(this.delta(JSON.parse(name[1]) as string, ""));
      this.buffer = this.buffer.slice(name[0].length);
    }
    // Whitespace before the arguments' `{` is dropped; inside them it is JSON's own.
    const args = this.awaitingArguments ? this.buffer.trimStart() : this.buffer;
    this.buffer = "";
    if (!args) return;
    this.awaitingArguments = false;
    if (deltas.length > 0) deltas[0].arguments = args;
    else deltas.push({ index: 0, arguments: args });
  }

  /** Consume complete blocks and safe text from the buffer; return the text to release. */
  private scan(deltas: ToolCallDelta[]): string {
    let text = "";
    for (;;) {
      if (!this.inCall) {
        const at = this.buffer.indexOf(OPEN);
        if (at < 0) {
          const keep = heldBack(this.buffer);
          text += this.buffer.slice(0, this.buffer.length - keep);
          this.buffer = this.buffer.slice(this.buffer.length - keep);
          return text;
        }
        text += this.buffer.slice(0, at);
        this.buffer = this.buffer.slice(at + OPEN.length);
        this.inCall = true;
      }
      const end = this.buffer.indexOf(CLOSE);
      if (end < 0) return text;
      const body = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + CLOSE.length);
      this.inCall = false;
      const call = this.calls < this.maxCalls ? blockCall(body) : null;
      if (call) deltas.push(this.delta(call.name, call.arguments));
      else text += OPEN + body + CLOSE;
    }
  }

  private delta(name: string, args: string): ToolCallDelta {
    return { index: this.calls++, id: `call_${randomUUID().replace(/-/g, "").slice(0, 24)}`, name, arguments: args };
  }
}

/** Length of the longest tail of `text` that is a proper prefix of `<tool_call>`. */
function heldBack(text: string): number {
  for (let n = Math.min(text.length, OPEN.length - 1); n > 0; n--) if (OPEN.startsWith(text.slice(text.length - n))) return n;
  return 0;
}

/** A `<tool_call>` block's JSON: `{"name": string, "arguments": object | JSON string}`. */
function blockCall(body: string): { name: string; arguments: string } | null {
  try {
    const value = JSON.parse(body) as { name?: unknown; arguments?: unknown };
    if (typeof value?.name !== "string" || value.name === "") return null;
    const args = value.arguments ?? {};
    return { name: value.name, arguments: typeof args === "string" ? args : JSON.stringify(args) };
  } catch {
    return null;
  }
}
