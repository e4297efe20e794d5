import type { AnyModelAPI, PredictContext } from "../api/model-api.js";
import type { PredictCallbackContext, PredictHooks } from "./callbacks.js";
import { runBatch, runStream, type BatchOutcome, type StreamEmit } from "./run-batch.js";

/** Who runs a batch, for the predict-side callbacks' context. */
export interface PredictSite {
  endpoint: string;
  workerId: number;
  hooks: PredictHooks;
}

/**
 * One batch where the model lives (a worker, or the main thread): onBeforePredict, batch → predict → unbatch (or the
 * stream), onAfterPredict, and how long predict took, measured here so that the worker hop does not count. The
 * callback context is made only when a callback asks for it.
 */
export async function runPredict(
  api: AnyModelAPI,
  inputs: unknown[],
  ctx: PredictContext,
  site: PredictSite,
  stream: boolean,
  emit: StreamEmit,
  requestIds: string[] | undefined,
): Promise<BatchOutcome> {
  const { onBeforePredict, onAfterPredict } = site.hooks;
  let context: PredictCallbackContext | undefined;
  if (onBeforePredict || onAfterPredict) {
    context = { endpoint: site.endpoint, workerId: site.workerId, device: ctx.device, requestIds: requestIds ?? [], batchSize: inputs.length, timings: {} };
    const before = onBeforePredict?.(context);
    if (before) await before;
  }
  const started = performance.now();
  const outcome = stream ? await runStream(api, inputs, ctx, emit) : await runBatch(api, inputs, ctx);
  const ms = performance.now() - started;
  outcome.predict = { start: performance.timeOrigin + started, ms };
  if (context && onAfterPredict) {
    context.timings.predict = ms;
    const after = onAfterPredict(context);
    if (after) await after;
  }
  return outcome;
}
