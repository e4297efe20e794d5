/**
 * `batchwise`: serve a model from one file.
 *
 * @example
 * ```ts
 * import { ModelAPI, serve } from "batchwise";
 * export class Doubler extends ModelAPI<{ x: number }, number, number, { y: number }> {
 *   predict(batch: number[]) { return batch.map((x) => 2 * x); }
 * }
 * await serve({ api: Doubler, maxBatchSize: 64 });
 * ```
 */
export {
  ModelAPI,
  BadRequestError,
  ContractError,
  type Accelerator,
  type AcceleratorChoice,
  type ApiConstructor,
  type ApiSource,
  type Device,
  type Precision,
  type PrecisionChoice,
  type PredictContext,
  type PredictResult,
  type RequestContext,
  type SetupContext,
  type MetricDeclaration,
} from "./api.js";
export { createServer, type BatchwiseServer, type ListenOptions, type ServerOptions } from "./server/server.js";
export { serve } from "./server/serve.js";
export type { EndpointOptions, EndpointLoad } from "./server/endpoint.js";
export { Upload } from "./server/upload.js";
export { HttpError, errorCodes, isUserError, type ErrorCode } from "./server/errors.js";
export { OPTIONS, OptionError, type OptionDeclaration, type OptionScope } from "./server/options.js";
export type { Spec, SpecResponse } from "./server/spec.js";
export { plainSpec } from "./specs/plain.js";
export type { Callback, CallbackSource, PredictCallbackContext, ServerCallbackContext, WorkerCallbackContext } from "./server/callbacks.js";
export type { CallbackContext, RequestTimings } from "./server/request-record.js";
export type { LogEntry, Logger } from "./server/user-metrics.js";
export { availableCores, resolveAccelerator, type AcceleratorDecision } from "./runtime/device.js";
export { resolveModel, modelsDir, ModelNotFoundError, type ResolvedModel } from "./runtime/models.js";
export { createSession, settingsFor, ort, type Session, type SessionSettings } from "./runtime/onnx.js";
export { listVariants, openModel, PrecisionUnsupportedError, PRECISIONS, type OpenedModel } from "./runtime/precision.js";
export { convertModel, convertedModelFile, type ConversionMode } from "./runtime/convert.js";
