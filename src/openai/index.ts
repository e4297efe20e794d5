/** `batchwise/openai`: the OpenAI-compatible wire format (/v1/chat/completions, /v1/completions, /v1/models). */
export { openAISpec, openAIErrorBody, estimateTokens, type OpenAIDeclaration, type OpenAISpecOptions } from "../specs/openai.js";
export type { ChatMessage, ChatRole, ChatStep, FinishReason, MediaPart, TokenUsage, ToolCallDelta, OpenAIAccepts } from "../specs/openai.js";
export { InvalidRequestError, UNSUPPORTED_CHAT, UNSUPPORTED_COMPLETION, type ChatCompletionRequest, type CompletionRequest } from "../specs/openai.js";
