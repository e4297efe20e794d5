/**
 * `batchwise`: serve a model from one file.
 *
 * @example
 * ```ts
 * import { ModelAPI, serve } from "batchwise";
 *
 * export class Doubler extends ModelAPI<{ x: number }, number, number, { y: number }> {
 *   override decodeRequest(request: { x: number }) { return request.x; }
 *   predict(batch: number[]) { return batch.map((x) => 2 * x); }
 *   override encodeResponse(y: number) { return { y }; }
 * }
 * await serve({ api: Doubler, maxBatchSize: 64 });
 * ```
 */
export {
  ModelAPI,
  BadRequestError,
  ContractError,
  END_OF_STREAM,
  type AnyModelAPI,
  type BatchOutputs,
  type EndOfStream,
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
  type ServingDefaults,
  type SetupContext,
  type MetricDeclaration,
} from "./api/model-api.js";
export { createServer, type BatchwiseServer, type ListenOptions, type OptionSources, type ServerOptions } from "./server/server.js";
export { serve } from "./server/serve.js";
export type { EndpointOptions, EndpointLoad } from "./server/endpoint.js";
export { Upload } from "./api/upload.js";
export { HttpError, errorCodes, isUserError, type ErrorCode } from "./api/errors.js";
export { OPTIONS, OptionError, type OptionDeclaration, type OptionScope } from "./server/options.js";
export type { Spec, SpecResponse } from "./api/spec.js";
export { plainSpec } from "./server/plain-spec.js";
export type { Callback, CallbackSource, PredictCallbackContext, ServerCallbackContext, WorkerCallbackContext } from "./server/callbacks.js";
export type { CallbackContext, RequestTimings } from "./server/request-record.js";
export type { LogEntry, Logger } from "./server/user-metrics.js";
export { availableCores, resolveAccelerator, type AcceleratorDecision } from "./runtime/device.js";
export { resolveModel, modelsDir, ModelNotFoundError, type ResolvedModel } from "./runtime/models.js";
export { createSession, settingsFor, ort, type Session, type SessionSettings } from "./runtime/onnx.js";
export { listVariants, openModel, PrecisionUnsupportedError, PRECISIONS, type OpenedModel } from "./runtime/precision.js";
export { convertModel, convertedModelFile, type ConversionMode } from "./runtime/convert.js";
