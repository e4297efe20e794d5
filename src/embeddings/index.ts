/** `batchwise/embeddings`: text embeddings (mean-pooled hidden states of a transformers.js model) behind /v1/embeddings. */
export { EmbeddingAPI, embeddingModel, EMBEDDING_SERVING_DEFAULTS, type EmbeddingOptions, type EmbeddingInput, type EmbeddingVectors } from "./embeddings.js";
export { EmbeddingModel, meanPooled, readModelShape, TOKENS_PER_RUN, type ModelShape } from "./embedding-model.js";
export { exposeHiddenStates, HIDDEN_STATE_OUTPUT, NoHiddenStateError } from "./hidden-states.js";
export {
  openAIEmbeddingSpec,
  parseEmbeddingRequest,
  type EmbeddingOutput,
  type EmbeddingRequest,
  type OpenAIEmbeddingSpecOptions,
} from "../openai/embeddings-spec.js";
