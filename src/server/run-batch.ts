import { ContractError, END_OF_STREAM, isAsyncIterable, type AnyModelAPI, type PredictContext } from "../api/model-api.js";
import { brandUserError, clean, HttpError, isUserError, toHttpError } from "../api/errors.js";
import { errorDetail, withDetail, type ErrorDetail } from "./failure-log.js";

/**
 * Why one input failed, in a form that crosses threads: the error's class, message and stack (the model failed: a
 * 500 whose details go to the server's log, not the client), or the status and code of an error about the input
 * itself (a BadRequestError thrown where the model lives, e.g. a prompt too long for the context window once
 * tokenized there: the 4xx it asked for).
 */
export type ItemError = { failed: ErrorDetail } | { message: string; code: string; status: number };

/**
 * What a streaming run reports for one step: an output per input (`undefined` where that input has nothing this
 * step), and the inputs whose streams ended at this step (their predict yielded {@link END_OF_STREAM}).
 */
export type StreamEmit = (outputs: unknown[], indexes: number[], ended: number[]) => void;

/** What a batch produced: one output or one error per input, in input order. */
export interface BatchOutcome {
  outputs: unknown[];
  errors: (ItemError | undefined)[];
  /** When predict began (epoch ms, comparable across threads) and how long it ran, measured where it ran. */
  predict?: { start: number; ms: number };
}

/** The HTTP error a failed input answers with. */
export function itemFailure(error: ItemError): HttpError {
  if ("failed" in error) return withDetail(new HttpError("predict_failed"), error.failed);
  const rebuilt = Object.assign(new Error(error.message), { code: error.code, status: error.status });
  brandUserError(rebuilt);
  return toHttpError(rebuilt);
}

export function itemError(error: unknown): ItemError {
  if (!isUserError(error)) return { failed: errorDetail(error) };
  const status = typeof error.status === "number" ? error.status : 400;
  return { message: clean(error.message), code: typeof error.code === "string" ? error.code : "bad_request", status };
}

/**
 * batch → predict → unbatch for a non-streaming API. When a batch fails, each item is re-run alone so that one
 * poisoned input fails only its own request.
 */
export async function runBatch(api: AnyModelAPI, inputs: unknown[], ctx: PredictContext): Promise<BatchOutcome> {
  try {
    return { outputs: await predictOnce(api, inputs, ctx), errors: [] };
  } catch (error) {
    if (inputs.length === 1 || error instanceof ContractError) {
      return { outputs: [], errors: inputs.map(() => itemError(error)) };
    }
    const outcome: BatchOutcome = { outputs: [], errors: [] };
    for (let i = 0; i < inputs.length; i++) {
      try {
        const [output] = await predictOnce(api, [inputs[i]], { ...ctx, signals: [ctx.signals[i]] });
        outcome.outputs[i] = output;
      } catch (failure) {
        outcome.errors[i] = itemError(failure);
      }
    }
    return outcome;
  }
}

async function predictOnce(api: AnyModelAPI, inputs: unknown[], ctx: PredictContext): Promise<unknown[]> {
  const result = api.predict(api.batch(inputs), ctx);
  if (isAsyncIterable(result)) {
    throw new ContractError("predict() is an async generator but the endpoint is not streaming; set stream: true");
  }
  return checkedUnbatch(api, await result, inputs.length);
}

/**
 * batch → predict (async generator) → unbatch for each step of a streaming API. `emit` receives one array per
 * step with an entry per input (`undefined` where that input has nothing this step), and the inputs that ended at
 * this step: an item whose entry is END_OF_STREAM has its response closed at once while the others go on. A failure
 * before the first step is isolated like in runBatch; a failure mid-stream ends every stream of the batch still open
 * with that error.
 */
export async function runStream(api: AnyModelAPI, inputs: unknown[], ctx: PredictContext, emit: StreamEmit): Promise<BatchOutcome> {
  const indexes = inputs.map((_, i) => i);
  let emitted = false;
  try {
    await streamOnce(api, inputs, ctx, (outputs, ended) => {
      emitted = true;
      emit(outputs, indexes, ended);
    });
    return { outputs: [], errors: [] };
  } catch (error) {
    if (emitted || inputs.length === 1 || error instanceof ContractError) {
      return { outputs: [], errors: inputs.map(() => itemError(error)) };
    }
    const outcome: BatchOutcome = { outputs: [], errors: [] };
    for (let i = 0; i < inputs.length; i++) {
      try {
        await streamOnce(api, [inputs[i]], { ...ctx, signals: [ctx.signals[i]] }, (outputs, ended) =>
          emit(outputs, [i], ended.length ? [i] : []));
      } catch (failure) {
        outcome.errors[i] = itemError(failure);
      }
    }
    return outcome;
  }
}

async function streamOnce(
  api: AnyModelAPI,
  inputs: unknown[],
  ctx: PredictContext,
  emit: (outputs: unknown[], ended: number[]) => void,
) {
  const result = api.predict(api.batch(inputs), ctx);
  if (!isAsyncIterable(result)) {
    emit(checkedUnbatch(api, await result, inputs.length), []);
    return;
  }
  for await (const step of result) {
    const outputs = checkedUnbatch(api, step, inputs.length);
    const ended: number[] = [];
    for (let k = 0; k < outputs.length; k++) {
      if (outputs[k] !== END_OF_STREAM) continue;
      outputs[k] = undefined; // a symbol cannot cross to the main thread; the index in `ended` does
      ended.push(k);
    }
    emit(outputs, ended);
  }
}

function checkedUnbatch(api: AnyModelAPI, output: unknown, expected: number): unknown[] {
  const outputs = api.unbatch(output);
  if (!Array.isArray(outputs) || outputs.length !== expected) {
    throw new ContractError(
      `unbatch() returned ${Array.isArray(outputs) ? outputs.length : typeof outputs} outputs for a batch of ${expected}`,
    );
  }
  return outputs;
}
