import { ContractError, isAsyncIterable, type ModelAPI, type PredictContext } from "../api.js";
import { brandUserError, clean, errors, isUserError, toHttpError, type HttpError } from "./errors.js";

/**
 * Why one input failed, in a form that crosses threads: a message (the model failed: 500), or the status and code of
 * an error about the input itself (a BadRequestError thrown where the model lives, e.g. a prompt too long for the
 * context window once tokenized there: the 4xx it asked for).
 */
export type ItemError = string | { message: string; code: string; status: number };

/** What a batch produced: one output or one error per input, in input order. */
export interface BatchOutcome {
  outputs: unknown[];
  errors: (ItemError | undefined)[];
  /** When predict began (epoch ms, comparable across threads) and how long it ran, measured where it ran. */
  predict?: { start: number; ms: number };
}

/** The HTTP error a failed input answers with. */
export function itemFailure(error: ItemError): HttpError {
  if (typeof error === "string") return errors.predictFailed(error);
  const rebuilt = Object.assign(new Error(error.message), { code: error.code, status: error.status });
  brandUserError(rebuilt);
  return toHttpError(rebuilt);
}

function itemError(error: unknown): ItemError {
  if (!isUserError(error)) return messageOf(error);
  const status = typeof error.status === "number" ? error.status : 400;
  return { message: clean(error.message), code: typeof error.code === "string" ? error.code : "bad_request", status };
}

/**
 * batch → predict → unbatch for a non-streaming API. When a batch fails, each item is re-run alone so that one
 * poisoned input fails only its own request.
 */
export async function runBatch(api: ModelAPI, inputs: unknown[], ctx: PredictContext): Promise<BatchOutcome> {
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

async function predictOnce(api: ModelAPI, inputs: unknown[], ctx: PredictContext): Promise<unknown[]> {
  const result = api.predict(api.batch(inputs), ctx);
  if (isAsyncIterable(result)) {
    throw new ContractError("predict() is an async generator but the endpoint is not streaming; set stream: true");
  }
  return checkedUnbatch(api, await result, inputs.length);
}

/**
 * batch → predict (async generator) → unbatch for each step of a streaming API. `emit` receives one array per
 * step with an entry per input (`undefined` where that input has nothing this step). A failure before the first
 * step is isolated like in runBatch; a failure mid-stream ends every stream of the batch with that error.
 */
export async function runStream(
  api: ModelAPI,
  inputs: unknown[],
  ctx: PredictContext,
  emit: (outputs: unknown[], indexes: number[]) => void,
): Promise<BatchOutcome> {
  const indexes = inputs.map((_, i) => i);
  let emitted = false;
  try {
    await streamOnce(api, inputs, ctx, (outputs) => {
      emitted = true;
      emit(outputs, indexes);
    });
    return { outputs: [], errors: [] };
  } catch (error) {
    if (emitted || inputs.length === 1 || error instanceof ContractError) {
      return { outputs: [], errors: inputs.map(() => itemError(error)) };
    }
    const outcome: BatchOutcome = { outputs: [], errors: [] };
    for (let i = 0; i < inputs.length; i++) {
      try {
        await streamOnce(api, [inputs[i]], { ...ctx, signals: [ctx.signals[i]] }, (outputs) => emit(outputs, [i]));
      } catch (failure) {
        outcome.errors[i] = itemError(failure);
      }
    }
    return outcome;
  }
}

async function streamOnce(api: ModelAPI, inputs: unknown[], ctx: PredictContext, emit: (outputs: unknown[]) => void) {
  const result = api.predict(api.batch(inputs), ctx);
  if (!isAsyncIterable(result)) {
    emit(checkedUnbatch(api, await result, inputs.length));
    return;
  }
  for await (const step of result) emit(checkedUnbatch(api, step, inputs.length));
}

function checkedUnbatch(api: ModelAPI, output: unknown, expected: number): unknown[] {
  const outputs = api.unbatch(output);
  if (!Array.isArray(outputs) || outputs.length !== expected) {
    throw new ContractError(
      `unbatch() returned ${Array.isArray(outputs) ? outputs.length : typeof outputs} outputs for a batch of ${expected}`,
    );
  }
  return outputs;
}

export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message.split("\n")[0];
  return String(error);
}
