/**
 * Pieces of the OpenAI wire format both response builders (chat: openai-chat-response.ts, completions: openai.ts)
 * share: error bodies, usage, ids, SSE framing, and the merging of steps that are already waiting into one write.
 */
import { randomUUID } from "node:crypto";
import type { ChatOutput, ChatStep, ToolCallDelta, TokenUsage } from "../chat/types.js";
import type { HttpError } from "../api/errors.js";
import { InvalidRequestError } from "./errors.js";

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

/**
 * The values of `source` in runs: each run is the next value (waited for) and every value already waiting behind it
 * (never waited for). A stream whose client keeps up gets runs of one; one that fell behind (the socket was slow, the
 * worker sent several steps in one message) gets its backlog in one run — one SSE write instead of one per token.
 */
export async function* readyRuns<T>(source: AsyncIterable<T>): AsyncGenerator<T[]> {
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

export const stepsOf = (value: ChatOutput): ChatStep[] => (Array.isArray(value) ? value : [value]);

/**
 * Steps merged per choice: the texts of a choice's steps concatenated in order, tool-call fragments of the same call
 * joined, its last finish reason and usage kept; choices in the order they first appear.
 */
export function mergeSteps(steps: Iterable<ChatStep>): ChatStep[] {
  const byIndex = new Map<number, ChatStep>();
  for (const step of steps) {
    const index = step.index ?? 0;
    const merged = byIndex.get(index);
    if (!merged) {
      byIndex.set(index, { ...step, ...(step.toolCalls ? { toolCalls: step.toolCalls.map((d) => ({ ...d })) } : {}) });
      continue;
    }
    merged.text += step.text;
    if (step.toolCalls) merged.toolCalls = mergeToolDeltas(merged.toolCalls ?? [], step.toolCalls);
    merged.finishReason = step.finishReason ?? merged.finishReason;
    merged.usage = step.usage ?? merged.usage;
  }
  return [...byIndex.values()];
}

/** Fragments of the same call (same index) joined: the first one's id and name, every fragment's arguments. */
function mergeToolDeltas(into: ToolCallDelta[], more: ToolCallDelta[]): ToolCallDelta[] {
  for (const delta of more) {
    const same = into.find((d) => d.index === delta.index);
    if (same) {
      same.arguments += delta.arguments;
      same.id ??= delta.id;
      same.name ??= delta.name;
    } else into.push({ ...delta });
  }
  return into;
}

/**
 * The usage of a request from its choices' usages: completion tokens of every choice; prompt tokens once per prompt
 * (choice i belongs to prompt ⌊i / n⌋: its n choices share one prompt).
 */
export function totalUsage(usages: (TokenUsage | undefined)[], n: number): TokenUsage {
  return usages.reduce<TokenUsage>(
    (sum, u, i) => ({
      promptTokens: sum.promptTokens + (i % n === 0 ? (u?.promptTokens ?? 0) : 0),
      completionTokens: sum.completionTokens + (u?.completionTokens ?? 0),
    }),
    { promptTokens: 0, completionTokens: 0 },
  );
}

export function sse(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

export function usageBody(usage: TokenUsage) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

export function completionId(prefix: string): string {
  return `${prefix}-${randomUUID().replace(/-/g, "")}`;
}
