/** `batchwise/openai`: the OpenAI-compatible wire format (/v1/chat/completions, /v1/completions, /v1/models). */
export { openAISpec, openAIErrorBody, estimateTokens, type OpenAIDeclaration, type OpenAISpecOptions } from "./spec.js";
export type { ChatMessage, ChatRole, ChatStep, FinishReason, MediaPart, TokenUsage, ToolCallDelta, OpenAIAccepts } from "./spec.js";
export { InvalidRequestError, UNSUPPORTED_CHAT, UNSUPPORTED_COMPLETION, type ChatCompletionRequest, type CompletionRequest } from "./spec.js";
export { openAIEmbeddingSpec, parseEmbeddingRequest, type EmbeddingOutput, type EmbeddingRequest, type OpenAIEmbeddingSpecOptions } from "./embeddings-spec.js";
