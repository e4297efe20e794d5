/**
 * A chat LLM on transformers.js, served through the OpenAI spec with real per-token streaming.
 *
 * The main thread tokenizes (decodeRequest loads the tokenizer on first use: it is small and lets an over-long
 * prompt fail with a 400 before it is queued); the worker owns the model and a {@link GenerationEngine} that
 * generates every sequence it is given in one shared batch, one token per step.
 *
 * @example
 * ```ts
 * const server = await createServer({ api: chatModel({ model: "tiny-random-llama" }), spec: openAISpec(), maxBatchSize: 8 });
 * ```
 */
import { fileURLToPath } from "node:url";
import type { PreTrainedTokenizer } from "@huggingface/transformers";
import {
  BadRequestError,
  ModelAPI,
  type Accelerator,
  type ApiSource,
  type Device,
  type PrecisionChoice,
  type PredictContext,
  type RequestContext,
  type SetupContext,
} from "../api.js";
import { SERVED_MODEL_STATE, type ChatCompletionRequest, type ChatMessage, type ChatStep } from "../specs/openai.js";
import { GenerationEngine, type CausalLM, type GenerationRequest } from "./chat-engine.js";
import { DEFAULT_CHAT_MODEL, loadCausalLM, loadTokenizer, resolveModel, type ResolvedModel } from "./chat-model.js";

export interface ChatOptions {
  /** Folder path, id under BATCHWISE_MODELS_DIR, or Hugging Face Hub id. Default {@link DEFAULT_CHAT_MODEL}. */
  model?: string;
  /** Model file variant: fp32, fp16 or int8 (model_quantized.onnx); auto = what the model's config prefers. */
  precision?: PrecisionChoice;
  /** Overrides the server's accelerator for this model. */
  device?: Accelerator;
  /** Completion tokens when the request sets no max_tokens (always clipped to the context window). */
  defaultMaxTokens?: number;
  /** Download hub ids that are not found locally (default true). */
  allowRemote?: boolean;
}

/** Everything the tokenizer-side needs: the model's limits and sampling defaults. */
interface ModelLimits {
  contextLength: number;
  defaultTemperature: number;
  defaultTopP: number;
}

export class ChatAPI extends ModelAPI<ChatCompletionRequest, GenerationRequest, ChatStep, ChatStep> {
  private readonly model: ResolvedModel;
  private tokenizer: Promise<{ tokenizer: PreTrainedTokenizer; limits: ModelLimits }> | null = null;
  private engine: GenerationEngine | null = null;

  constructor(private readonly options: ChatOptions = {}) {
    super();
    this.model = resolveModel(options.model ?? DEFAULT_CHAT_MODEL);
    this.info = { model: this.model.id };
  }

  override async setup(device: Device, _ctx?: SetupContext): Promise<void> {
    const { tokenizer, limits } = await this.loadTokenizer();
    const accelerator = this.options.device ?? device.accelerator;
    const precision = this.options.precision ?? "auto";
    const lm = await loadCausalLM(this.model, {
      precision,
      accelerator,
      threads: device.threads,
      allowRemote: this.options.allowRemote ?? true,
    });
    const config = lm.config as unknown as Record<string, unknown>;
    const eos = [config.eos_token_id, lm.generation_config?.eos_token_id, tokenizer.eos_token_id]
      .flat()
      .filter((id): id is number => typeof id === "number");
    this.engine = new GenerationEngine(lm as unknown as CausalLM, {
      eosTokenIds: new Set(eos),
      padTokenId: typeof config.pad_token_id === "number" ? config.pad_token_id : 0,
      decode: (ids) => tokenizer.decode(ids, { skip_special_tokens: true }),
    });
    this.info = {
      model: this.model.id,
      source: this.model.folder ?? "huggingface.co",
      precision,
      device: accelerator,
      threads: device.threads,
      contextLength: limits.contextLength,
      eosTokenIds: [...new Set(eos)],
      chatTemplate: tokenizer.chat_template ? "from the tokenizer" : "none in the tokenizer: plain 'role: content' lines",
      defaultTemperature: limits.defaultTemperature,
      batching: "continuous: rows join and leave a shared KV cache between decode steps",
    };
  }

  override async decodeRequest(request: ChatCompletionRequest, ctx: RequestContext): Promise<GenerationRequest> {
    const { tokenizer, limits } = await this.loadTokenizer();
    ctx.state[SERVED_MODEL_STATE] = this.model.id;
    // Tokenizing runs on the main thread: a prompt that cannot fit is refused by its length before it costs that.
    const characters = request.messages.reduce((sum, message) => sum + message.content.length, 0);
    const maxCharacters = limits.contextLength * MAX_CHARACTERS_PER_TOKEN;
    if (characters > maxCharacters) {
      throw new BadRequestError(
        `The messages are ${characters} characters; this model's context window is ${limits.contextLength} tokens, at most ${maxCharacters} characters`,
        "context_length_exceeded",
      );
    }
    const promptIds = encodeChat(tokenizer, request.messages);
    const room = limits.contextLength - promptIds.length;
    if (room <= 0) {
      throw new BadRequestError(
        `The prompt is ${promptIds.length} tokens; this model's context window is ${limits.contextLength} tokens`,
        "context_length_exceeded",
      );
    }
    return {
      promptIds,
      maxTokens: Math.min(request.maxTokens ?? this.options.defaultMaxTokens ?? 256, room),
      sampling: {
        temperature: request.temperature ?? limits.defaultTemperature,
        topP: request.topP ?? limits.defaultTopP,
        seed: request.seed,
      },
      stop: request.stop,
    };
  }

  override predict(batch: GenerationRequest[], ctx: PredictContext): AsyncIterable<(ChatStep | undefined)[]> {
    if (!this.engine) throw new Error("ChatAPI.predict called before setup");
    return this.engine.generate(batch, ctx.signals);
  }

  override encodeResponse(output: ChatStep): ChatStep {
    return output;
  }

  /** Tokenizer and model limits, loaded once per thread (config.json is tiny; the weights are not touched). */
  private loadTokenizer() {
    this.tokenizer ??= loadTokenizer(this.model, this.options.allowRemote ?? true).then((tokenizer) => ({
      tokenizer,
      limits: limitsOf(tokenizer),
    }));
    // A failed load is retried by the next request rather than cached forever.
    this.tokenizer.catch(() => (this.tokenizer = null));
    return this.tokenizer;
  }
}

/** More characters than any tokenizer packs into one token on real text: a longer prompt cannot fit the window. */
const MAX_CHARACTERS_PER_TOKEN = 32;

/** The prompt as token ids: the model's chat template, or plain "role: content" lines when it has none. */
export function encodeChat(tokenizer: PreTrainedTokenizer, messages: ChatMessage[]): number[] {
  const text = tokenizer.chat_template
    ? (tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true }) as string)
    : messages.map((m) => `${m.role}: ${m.content}\n`).join("") + "assistant:";
  // Templates write their own special tokens (e.g. BOS); without one, the tokenizer's defaults add them.
  return tokenizer.encode(text, { add_special_tokens: !tokenizer.chat_template });
}

function limitsOf(tokenizer: PreTrainedTokenizer): ModelLimits {
  const maxLength = tokenizer.model_max_length;
  return {
    // Tokenizers without a limit report a huge sentinel (1e30); 2048 is a safe window for small chat models.
    contextLength: Number.isFinite(maxLength) && maxLength > 0 && maxLength < 1e9 ? maxLength : 2048,
    // Deterministic unless the request asks for sampling, as the local models' generation_config (do_sample false).
    defaultTemperature: 0,
    defaultTopP: 1,
  };
}

/**
 * How `batchwise serve chat` serves (and `bench llm` measures) the chat model: up to 8 prompts per batch, and up to 4
 * batches in one worker at once — the engine lets a new batch's sequences join the running decode loop at its next
 * step, so a request arriving mid-generation starts at once instead of waiting for the others to finish (bench llm,
 * tiny-random-llama, c=4: TTFT p50 37.6 ms with one batch per worker).
 */
export const CHAT_SERVING_DEFAULTS = { maxBatchSize: 8, batchTimeout: 0.01, workers: 1, maxBatchesPerWorker: 4 };

/** An ApiSource for the chat API, for createServer / the CLI (`batchwise serve chat --model ID`). */
export function chatModel(options: ChatOptions = {}): ApiSource<ChatOptions> {
  return { module: fileURLToPath(import.meta.url), export: "ChatAPI", options };
}
