/**
 * Chat completion responses from the API's steps: one JSON body (texts concatenated, tool-call fragments assembled
 * into `message.tool_calls`), or SSE chunks as steps arrive (`delta.content`, `delta.tool_calls` in OpenAI's
 * chunking: a call's first fragment carries id, type and function name, later ones more of `function.arguments`).
 * Several choices (`n`) are steps with an `index`; each chunk names its choice.
 */
import type { RequestContext } from "../api/model-api.js";
import type { ChatOutput, ChatStep, FinishReason, ToolCallDelta, TokenUsage } from "../chat/types.js";
import { toHttpError } from "../api/errors.js";
import type { SpecResponse } from "../api/spec.js";
import type { ChatCompletionRequest } from "./request.js";
import { completionId, mergeSteps, openAIErrorBody, readyRuns, sse, stepsOf, totalUsage, usageBody } from "./wire.js";

/** One choice as it accumulates. */
interface ChoiceState {
  content: string;
  calls: { id: string; name: string; arguments: string }[];
  finishReason?: FinishReason;
  usage?: TokenUsage;
  /** Streaming: the role was sent (the first chunk of a choice carries it, as OpenAI's does). */
  started: boolean;
}

const newChoice = (): ChoiceState => ({ content: "", calls: [], started: false });

function addCalls(choice: ChoiceState, deltas: ToolCallDelta[]): void {
  for (const delta of deltas) {
    const call = (choice.calls[delta.index] ??= { id: delta.id ?? "", name: delta.name ?? "", arguments: "" });
    call.arguments += delta.arguments;
  }
}

export async function jsonChat(request: ChatCompletionRequest, steps: AsyncIterable<ChatOutput>, model: string): Promise<SpecResponse> {
  const choices = Array.from({ length: request.n ?? 1 }, newChoice);
  for await (const value of steps) {
    for (const step of stepsOf(value)) {
      const choice = (choices[step.index ?? 0] ??= newChoice());
      choice.content += step.text;
      if (step.toolCalls) addCalls(choice, step.toolCalls);
      choice.finishReason = step.finishReason ?? choice.finishReason;
      choice.usage = step.usage ?? choice.usage;
    }
  }
  if (choices.some((c) => !c.finishReason || !c.usage)) throw new Error("generation ended without a finish reason");
  return {
    kind: "json",
    body: {
      id: completionId("chatcmpl"),
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model,
      choices: choices.map((c, index) => ({ index, message: message(c), logprobs: null, finish_reason: c.finishReason })),
      usage: usageBody(totalUsage(choices.map((c) => c.usage), choices.length)),
    },
  };
}

function message(choice: ChoiceState) {
  if (choice.calls.length === 0) return { role: "assistant", content: choice.content };
  return {
    role: "assistant",
    content: choice.content || null,
    tool_calls: choice.calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } })),
  };
}

/** The opening entries of `delta.tool_calls`: id, type and name, arguments still "". */
const openingDeltas = (deltas: ToolCallDelta[]) =>
  deltas.map((d) => ({ index: d.index, id: d.id, type: "function", function: { name: d.name, arguments: "" } }));

export async function streamChat(request: ChatCompletionRequest, steps: AsyncIterable<ChatOutput>, model: string): Promise<SpecResponse> {
  // Steps already waiting go out together, merged per choice: one chunk per choice per write.
  const iterator = readyRuns(steps);
  // Wait for the first step before committing to a 200: an error before any token still gets its own status.
  const first = await iterator.next();
  const base = { id: completionId("chatcmpl"), object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model };
  // The constant part of every chunk, serialised once: only the choice changes.
  const head = `data: ${JSON.stringify(base).slice(0, -1)},"choices":[{"index":`;
  const tail = request.includeUsage ? `}],"usage":null}\n\n` : `}]}\n\n`;
  const chunk = (index: number, delta: object, finishReason: FinishReason | null) =>
    `${head}${index},"delta":${JSON.stringify(delta)},"logprobs":null,"finish_reason":${finishReason ? `"${finishReason}"` : "null"}${tail}`;
  const choices = Array.from({ length: request.n ?? 1 }, newChoice);

  async function* body(): AsyncGenerator<string> {
    try {
      for (let next = first; !next.done; next = await iterator.next()) {
        let out = "";
        const run = next.value;
        // A client that keeps up gets runs of one step: no merging to do.
        for (const step of run.length === 1 && !Array.isArray(run[0]) ? (run as ChatStep[]) : mergeSteps(run.flatMap(stepsOf))) {
          const index = step.index ?? 0;
          const choice = (choices[index] ??= newChoice());
          choice.finishReason = step.finishReason ?? choice.finishReason;
          choice.usage = step.usage ?? choice.usage;
          if (!step.text && !step.toolCalls && choice.started) continue;
          let delta: Record<string, unknown> = choice.started ? {} : { role: "assistant" };
          if (step.text || !step.toolCalls) delta.content = step.text;
          else if (!choice.started) delta.content = null;
          choice.started = true;
          // OpenAI's chunking: a call opens with its id, type and name (arguments ""), its arguments follow.
          const opening = (step.toolCalls ?? []).filter((d) => d.id !== undefined || d.name !== undefined);
          if (opening.length > 0) {
            out += chunk(index, { ...delta, tool_calls: openingDeltas(opening) }, null);
            delta = {};
          }
          const args = (step.toolCalls ?? []).filter((d) => d.arguments !== "");
          if (args.length > 0) delta.tool_calls = args.map((d) => ({ index: d.index, function: { arguments: d.arguments } }));
          if (Object.keys(delta).length > 0) out += chunk(index, delta, null);
        }
        if (out) yield out;
      }
    } catch (error) {
      // Headers are gone: report in-band, in the shape the openai clients raise as an APIError.
      yield sse(openAIErrorBody(toHttpError(error)));
      return;
    } finally {
      // Ends the generation when the client went away (the consumer stops pulling and returns this generator).
      await iterator.return(undefined);
    }
    let end = choices.map((c, index) => chunk(index, {}, c.finishReason ?? "stop")).join("");
    if (request.includeUsage && choices.every((c) => c.usage)) {
      end += sse({ ...base, choices: [], usage: usageBody(totalUsage(choices.map((c) => c.usage), choices.length)) });
    }
    yield end + "data: [DONE]\n\n";
  }
  return { kind: "stream", contentType: "text/event-stream; charset=utf-8", body: body() };
}
