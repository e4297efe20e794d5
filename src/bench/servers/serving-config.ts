import type { Precision, PrecisionChoice } from "../../api.js";
import { CLASSIFIER_SERVING_DEFAULTS } from "../../apps/image-classifier.js";
import { availableCores } from "../../runtime/device.js";
import { resolveModel } from "../../runtime/models.js";
import { listVariants, pickAutoPrecision, PRECISIONS } from "../../runtime/precision.js";

/**
 * What `npm start` serves by default, read from the classifier's serving defaults (the values `serve classifier`
 * falls back to) and the server's thread rule. Every benchmark that compares with the served classifier starts from
 * this, so `bench pipeline` and `bench baseline` without flags measure the server the reader just started.
 */
export interface ClassifierServingConfig {
  maxBatchSize: number;
  batchTimeout: number;
  /** As the server is told it (`auto` = the fastest precision the CPU provider runs). */
  precision: PrecisionChoice;
  workers: number;
  /** Intra-op threads per worker: the server gives each worker cores ÷ workers (at least 1). */
  threadsPerWorker: number;
}

export function classifierServingConfig(cores = availableCores()): ClassifierServingConfig {
  const workers = CLASSIFIER_SERVING_DEFAULTS.workers(cores);
  return {
    maxBatchSize: CLASSIFIER_SERVING_DEFAULTS.maxBatchSize,
    batchTimeout: CLASSIFIER_SERVING_DEFAULTS.batchTimeout,
    precision: CLASSIFIER_SERVING_DEFAULTS.precision,
    workers,
    threadsPerWorker: Math.max(1, Math.floor(cores / workers)),
  };
}

/**
 * The concrete precision a choice means for a model on the CPU: `auto` picks as the classifier's setup does (the
 * provider's preferred precision among the folder's files), so a raw-model benchmark opens the same file.
 */
export async function resolvePrecision(model: string, choice: PrecisionChoice): Promise<Precision> {
  if (choice !== "auto") return choice;
  const resolved = await resolveModel(model);
  if (resolved.file) {
    // one explicit file: the precision its name carries, else fp32 (as openModel reads it)
    return (/[-_.](fp32|fp16|bf16|int8)\.onnx$/.exec(resolved.file)?.[1] as Precision | undefined) ?? "fp32";
  }
  const variants = listVariants(resolved.dir);
  // fp16/bf16 can be converted from fp32 at load, but the CPU never prefers them: only files that exist count.
  return pickAutoPrecision("cpu", PRECISIONS.filter((p) => variants[p]));
}
