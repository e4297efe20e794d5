/**
 * What an API behind the OpenAI spec may yield, made into {@link ChatStep}s. Any model can sit behind the spec:
 *
 * - a string: the next piece of text (choice 0);
 * - `{ text, index?, finishReason?, usage?, toolCalls? }`: a ChatStep, as the chat app yields;
 * - `{ toolCall: { name, arguments, id? }, index? }`: one whole tool call (`arguments` a JSON string or a value, which
 *   is serialised); the choice then ends with finish_reason "tool_calls" unless the API says otherwise;
 * - a list of any of these: several choices' news in one step.
 *
 * Token counts: an API that reports `usage` on a choice's last step is trusted. For one that never does, the spec
 * counts, the same way for prompt and completion: words and punctuation marks (the regex {@link TOKEN_PATTERN}: a
 * run of letters/digits is one token, every other non-space character one), over the prompt's message texts (or the
 * completions prompt) and over the generated text and tool-call arguments. It is an estimate — a real tokenizer
 * splits long words — that is exact for an API that yields one word per step, and it never reports zero for output
 * that exists. Such an API's choices end with finish_reason "stop" (or "tool_calls") when its stream ends, unless it
 * yielded a finish reason of its own.
 */
import { randomUUID } from "node:crypto";
import type { ChatOutput, ChatStep, FinishReason, TokenUsage } from "../chat/types.js";
import type { OpenAIRequest } from "./request.js";
import { isObject } from "./errors.js";

/** One token of the spec's estimate: a run of letters and digits, or one other non-space character. */
export const TOKEN_PATTERN = /[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;

export function estimateTokens(text: string): number {
  return text.match(TOKEN_PATTERN)?.length ?? 0;
}

/** Per choice: what the spec counts for an API that does not. */
interface Tally {
  text: string;
  calls: number;
  finishReason?: FinishReason;
}

export async function* normalizeOutputs(outputs: AsyncIterable<unknown>, request: OpenAIRequest): AsyncGenerator<ChatOutput> {
  const tallies = new Map<number, Tally>();
  let apiCounts = false;
  for await (const value of outputs) {
    const steps = (Array.isArray(value) ? value : [value]).map((item) => toStep(item, tallies));
    for (const step of steps) {
      if (step.usage) apiCounts = true;
      if (apiCounts) continue;
      const tally = tallies.get(step.index ?? 0)!;
      tally.text += step.toolCalls ? step.text + step.toolCalls.map((d) => d.arguments).join("") : step.text;
      // Held back while it is unknown whether the API counts: the spec's last step carries it with the usage.
      if (step.finishReason && !step.usage && !apiCounts) {
        tally.finishReason = step.finishReason;
        delete step.finishReason;
      }
    }
    yield Array.isArray(value) ? steps : steps[0];
  }
  if (apiCounts) return;
  const choices = choiceCount(request);
  for (let index = 0; index < choices; index++) if (!tallies.has(index)) tallies.set(index, { text: "", calls: 0 });
  const prompt = estimateTokens(promptText(request, 0));
  const last: ChatStep[] = [...tallies].map(([index, tally]) => ({
    text: "",
    index,
    finishReason: tally.finishReason ?? (tally.calls > 0 ? "tool_calls" : "stop"),
    usage: { promptTokens: request.kind === "completion" ? estimateTokens(promptText(request, index)) : prompt, completionTokens: estimateTokens(tally.text) },
  }));
  yield last.length === 1 && request.kind !== "completion" ? last[0] : last;
}

function choiceCount(request: OpenAIRequest): number {
  return request.kind === "completion" ? request.prompts.length * (request.n ?? 1) : (request.n ?? 1);
}

function promptText(request: OpenAIRequest, index: number): string {
  if (request.kind === "completion") return request.prompts[Math.floor(index / (request.n ?? 1))] ?? "";
  return request.messages.map((m) => m.content).join("\n");
}

function toStep(item: unknown, tallies: Map<number, Tally>): ChatStep {
  if (typeof item === "string") return track({ text: item }, tallies);
  if (!isObject(item)) throw new Error(`predict yielded ${describe(item)}; an OpenAI API yields strings, { text, … } steps or { toolCall }`);
  const index = item.index ?? 0;
  if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0) throw new Error(`predict yielded a step with index ${describe(index)}`);
  if (isObject(item.toolCall)) {
    const tally = tallyOf(tallies, index);
    const { name, arguments: args, id } = item.toolCall;
    if (typeof name !== "string" || name === "") throw new Error("predict yielded a toolCall without a function name");
    const text = typeof args === "string" ? args : JSON.stringify(args ?? {});
    const delta = { index: tally.calls++, id: typeof id === "string" ? id : callId(), name, arguments: text };
    return { text: "", index, toolCalls: [delta], ...finishAndUsage(item) };
  }
  if (item.text !== undefined && typeof item.text !== "string") throw new Error(`predict yielded a step whose text is ${describe(item.text)}`);
  // A step as the chat app yields it is used as it is (a fresh object from the worker: no copy per token).
  const step = item as unknown as ChatStep;
  step.text ??= "";
  if (step.toolCalls) tallyOf(tallies, index).calls = Math.max(tallyOf(tallies, index).calls, ...step.toolCalls.map((d) => d.index + 1));
  return track(step, tallies);
}

function track(step: ChatStep, tallies: Map<number, Tally>): ChatStep {
  tallyOf(tallies, step.index ?? 0);
  return step;
}

function tallyOf(tallies: Map<number, Tally>, index: number): Tally {
  let tally = tallies.get(index);
  if (!tally) tallies.set(index, (tally = { text: "", calls: 0 }));
  return tally;
}

function finishAndUsage(item: Record<string, unknown>): { finishReason?: FinishReason; usage?: TokenUsage } {
  return {
    ...(item.finishReason ? { finishReason: item.finishReason as FinishReason } : {}),
    ...(item.usage ? { usage: item.usage as TokenUsage } : {}),
  };
}

/** OpenAI-style tool-call id. */
export function callId(): string {
  return `call_${randomUUID().replace(/-/g, "").slice(0, 24)}`;
}

function describe(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "object" ? "an object of another shape" : typeof value;
}
