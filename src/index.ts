/** The public surface of batchwise. */
export * from "./api.js";
export { createServer, serve, type BatchwiseServer, type ServerOptions, type ListenOptions } from "./server/server.js";
export type { EndpointOptions } from "./server/endpoint.js";
export { HttpError, errors } from "./server/errors.js";
export { plainSpec, type Spec, type SpecResponse } from "./server/spec.js";
export { openAISpec, type ChatCompletionRequest, type ChatMessage, type ChatStep, type OpenAISpecOptions } from "./specs/openai.js";
export { availableCores, resolveAccelerator, type AcceleratorDecision } from "./runtime/device.js";
export { resolveModel, modelsDir, ModelNotFoundError } from "./runtime/models.js";
export { listVariants, PrecisionUnsupportedError, PRECISIONS } from "./runtime/precision.js";
export { convertModel, convertedModelFile, type ConversionMode } from "./runtime/convert.js";
export { ImageClassifierAPI, imageClassifier, type ImageClassifierOptions } from "./apps/image-classifier.js";
export { ChatAPI, chatModel, type ChatOptions } from "./apps/chat.js";
