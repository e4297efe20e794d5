/** `batchwise/chat`: a causal language model served through transformers.js, with continuous batching. */
export { ChatAPI, chatModel, CHAT_SERVING_DEFAULTS, type ChatOptions } from "./chat-api.js";
export { CHAT_TEMPLATES } from "./templates.js";
