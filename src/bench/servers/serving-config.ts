import type { Precision, PrecisionChoice } from "../../api/model-api.js";
import { CLASSIFIER_SERVING_DEFAULTS, openClassifierModel } from "../../classifier/image-classifier.js";
import { normalizeInto } from "../../classifier/image-preprocess.js";
import { DEFAULT_CHUNK_SIZE, runChunked } from "../../runtime/chunked-run.js";
import type { Session } from "../../runtime/onnx.js";
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
 * The model the served classifier opens for a precision choice: `auto` picks as its setup does (the CPU's preferred
 * precision among the folder's files, then the accuracy guard), so a raw-model benchmark opens the same file.
 */
export async function servedModel(model: string, choice: PrecisionChoice): Promise<{ precision: Precision; file: string; reason: string }> {
  const device = { accelerator: "cpu" as const, index: 0, threads: 1, id: "cpu" };
  const run = (session: Session, images: Uint8Array[]) => runChunked(session, images, [3, 224, 224], DEFAULT_CHUNK_SIZE, normalizeInto);
  const opened = await openClassifierModel(await resolveModel(model), choice, device, run);
  await opened.session.release();
  return { precision: opened.precision, file: opened.file, reason: opened.reason };
}

/** The concrete precision a choice means for a model on the CPU (see servedModel). */
export async function resolvePrecision(model: string, choice: PrecisionChoice): Promise<Precision> {
  return choice === "auto" ? (await servedModel(model, choice)).precision : choice;
}
