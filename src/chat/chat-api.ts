/**
 * A chat LLM on transformers.js, served through the OpenAI spec with real per-token streaming.
 *
 * The main thread only validates (decodeRequest: output format, tools against the chat template, a prompt's size in
 * characters); the worker owns the tokenizer's real work and the model: predict renders the chat template, tokenizes
 * (refusing a prompt longer than the context window with a 400) and hands the sequences to a
 * {@link GenerationEngine} that generates every sequence it is given in one shared batch, one token per step.
 * Tokenizing where the model lives keeps the main thread — HTTP and the SSE streams of every client — free of it,
 * and makes a request's time to first token the same served or in-process.
 *
 * @example
 * ```ts
 * import { createServer } from "batchwise";
 * import { chatModel } from "batchwise/chat";
 * import { openAISpec } from "batchwise/openai";
 *
 * const server = await createServer({ api: chatModel({ model: "tiny-random-llama" }), spec: openAISpec(), maxBatchSize: 8 });
 * ```
 */
import { fileURLToPath } from "node:url";
import type { PreTrainedTokenizer } from "@huggingface/transformers";
import {
  BadRequestError,
  END_OF_STREAM,
  ModelAPI,
  type Accelerator,
  type EndOfStream,
  type ApiSource,
  type Device,
  type PrecisionChoice,
  type PredictContext,
  type RequestContext,
  type SetupContext,
} from "../api/model-api.js";
import { GenerationEngine, type CausalLM, type GenerationRequest } from "./engine.js";
import { DEFAULT_CHAT_MODEL, loadCausalLM, loadTokenizer, resolveModel, type ResolvedModel } from "./model.js";
import {
  SERVED_MODEL_STATE,
  type ChatMessage,
  type ChatOutput,
  type ChatRequest,
  type ChatStep,
  type OutputFormat,
} from "./types.js";
import { chatTemplateNamed } from "./templates.js";
import { ToolCallParser, type ToolMode } from "./tool-calls.js";
import { toolsFor, usesTools } from "./tool-choice.js";
import { ToolCallConstraint } from "./tool-constraint.js";
import { ConstraintCache, TokenVocabulary } from "./json-schema/constrained-sampler.js";
import { compileSchema, UnsupportedSchemaError } from "./json-schema/json-schema-constraint.js";

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
  /**
   * A named chat template to use instead of the tokenizer's (chat-templates.ts): `hermes` = ChatML with Hermes/Qwen
   * style tool calls, which the app parses into `tool_calls`. Default: the tokenizer's own template.
   */
  chatTemplate?: string;
}

/** Everything the tokenizer-side needs: the model's limits and sampling defaults. */
interface ModelLimits {
  contextLength: number;
  defaultTemperature: number;
  defaultTopP: number;
}

/**
 * One sequence to generate, validated but not yet tokenized: the prompt travels to the worker as text (a few bytes
 * to clone), and is tokenized there ({@link ChatAPI.prepare}).
 */
export interface PromptInput {
  /** A raw prompt (completions) or a conversation (chat, rendered with the model's chat template). */
  prompt: string | ChatMessage[];
  /** Tool definitions for the chat template (checked against it by decodeRequest). */
  tools?: unknown[];
  /** The request's max_tokens; undefined: the API's default. Clipped to the context window once tokenized. */
  maxTokens?: number;
  sampling: GenerationRequest["sampling"];
  stop: string[];
  format?: OutputFormat;
  /** The chat template's Jinja text when it is not the tokenizer's own (ChatOptions.chatTemplate). */
  template?: string;
}

/** One request's generations: a chat or single prompt is one sequence; several prompts are several. */
export type ChatInput = PromptInput | PromptInput[];

/** `ctx.state` key: how this request's generated tool calls are parsed (absent: no tools, plain text). */
const TOOL_MODE_STATE = "chatToolMode";
const TOOL_PARSERS_STATE = "chatToolParsers";

export class ChatAPI extends ModelAPI<ChatRequest, ChatInput, ChatOutput, ChatOutput> {
  /** Honoured beyond the OpenAI spec's own fields: several choices per prompt, decoded as rows of one batch. */
  readonly openai = { accepts: ["n"] as const };
  private readonly model: ResolvedModel;
  /** The chat template chosen by name (ChatOptions.chatTemplate), else undefined: the tokenizer's. */
  private readonly template: string | undefined;
  private tokenizer: Promise<{ tokenizer: PreTrainedTokenizer; limits: ModelLimits }> | null = null;
  private engine: GenerationEngine | null = null;

  constructor(private readonly options: ChatOptions = {}) {
    super();
    this.model = resolveModel(options.model ?? DEFAULT_CHAT_MODEL);
    this.template = options.chatTemplate ? chatTemplateNamed(options.chatTemplate) : undefined;
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
    const decode = (ids: number[]) => tokenizer.decode(ids, { skip_special_tokens: true });
    // Token texts for constrained decoding, computed on the first request that asks for a format (≈ 30 µs a token).
    let constraints: ConstraintCache | null = null;
    const vocabSize = typeof config.vocab_size === "number" ? config.vocab_size : vocabularySize(tokenizer);
    this.engine = new GenerationEngine(lm as unknown as CausalLM, {
      eosTokenIds: new Set(eos),
      padTokenId: typeof config.pad_token_id === "number" ? config.pad_token_id : 0,
      decode,
      constrain: (format) => {
        if (!format || format.type === "text") return undefined;
        constraints ??= new ConstraintCache(
          TokenVocabulary.fromDecode(vocabSize, decode, anchorToken(tokenizer), [...tokenizer.all_special_ids, ...eos]),
          [...new Set(eos)],
        );
        return format.type === "tool_call" ? new ToolCallConstraint(constraints, format.tools) : constraints.decoderFor(format);
      },
    });
    this.info = {
      model: this.model.id,
      source: this.model.folder ?? "huggingface.co",
      precision,
      device: accelerator,
      threads: device.threads,
      contextLength: limits.contextLength,
      eosTokenIds: [...new Set(eos)],
      chatTemplate: this.options.chatTemplate ?? (tokenizer.chat_template ? "from the tokenizer" : "none in the tokenizer: plain 'role: content' lines"),
      defaultTemperature: limits.defaultTemperature,
      batching: "continuous: rows join and leave a shared KV cache between decode steps",
      tools: !usesTools(this.templateOf(tokenizer))
        ? "not supported by this model's chat template"
        : this.template
          ? "rendered by the template; generated <tool_call> blocks parsed into tool_calls; required/named tool_choice by constrained decoding"
          : "passed to the chat template",
      structuredOutput: "json_object and json_schema by constrained decoding",
    };
  }

  /**
   * Validation only (this runs on the main thread, beside every client's stream): the tokenizer is loaded for what
   * its files say (chat template, context window), never run. Tokens are counted where the model lives.
   */
  override async decodeRequest(request: ChatRequest, ctx: RequestContext): Promise<ChatInput> {
    const { tokenizer, limits } = await this.loadTokenizer();
    ctx.state[SERVED_MODEL_STATE] = this.model.id;
    checkFormat(request.format);
    const n = request.n ?? 1;
    if (request.prompts) return request.prompts.flatMap((prompt) => this.choices(this.sequence(request, prompt, limits), n));
    const tools = toolsFor(this.templateOf(tokenizer), request, this.template !== undefined);
    if (tools.mode) ctx.state[TOOL_MODE_STATE] = { mode: tools.mode, maxCalls: request.parallelToolCalls === false ? 1 : Infinity };
    const sequence = this.sequence(request, request.messages ?? [], limits, tools.tools);
    if (tools.format) sequence.format = tools.format;
    if (this.template) sequence.template = this.template;
    return n === 1 ? sequence : this.choices(sequence, n);
  }

  /**
   * n choices of one prompt: n rows of the batch (the engine computes the shared prompt's prefill once). A seeded
   * request seeds choice i with seed + i, so its choices differ and each is reproducible.
   */
  private choices(sequence: PromptInput, n: number): PromptInput[] {
    const seed = sequence.sampling.seed;
    return Array.from({ length: n }, (_, i) => ({ ...sequence, sampling: { ...sequence.sampling, seed: seed === undefined ? undefined : seed + i } }));
  }

  /** The Jinja text of the chat template in use, if any. */
  private templateOf(tokenizer: PreTrainedTokenizer): string | undefined {
    return this.template ?? (tokenizer.chat_template as string | undefined);
  }

  /** One sequence to generate, or a 400 when its prompt is too long to fit the context window whatever it tokenizes to. */
  private sequence(request: ChatRequest, prompt: string | ChatMessage[], limits: ModelLimits, tools?: unknown[]): PromptInput {
    // A prompt that cannot fit is refused by its length, before it is queued or tokenized.
    const characters = typeof prompt === "string" ? prompt.length : prompt.reduce((sum, message) => sum + message.content.length, 0);
    const maxCharacters = limits.contextLength * MAX_CHARACTERS_PER_TOKEN;
    if (characters > maxCharacters) {
      throw new BadRequestError(
        `The ${typeof prompt === "string" ? "prompt is" : "messages are"} ${characters} characters; this model's context window is ${limits.contextLength} tokens, at most ${maxCharacters} characters`,
        "context_length_exceeded",
      );
    }
    return {
      prompt,
      ...(tools ? { tools } : {}),
      maxTokens: request.maxTokens,
      sampling: {
        temperature: request.temperature ?? limits.defaultTemperature,
        topP: request.topP ?? limits.defaultTopP,
        seed: request.seed,
      },
      stop: request.stop,
      format: request.format?.type === "text" ? undefined : request.format,
    };
  }

  /**
   * Tokenize one sequence where the model lives (after setup): its prompt ids, and max_tokens clipped to what fits;
   * a 400 when the prompt alone fills the context window.
   */
  async prepare(input: PromptInput): Promise<GenerationRequest> {
    const { tokenizer, limits } = await this.loadTokenizer();
    const promptIds =
      typeof input.prompt === "string"
        ? tokenizer.encode(input.prompt, { add_special_tokens: true })
        : encodeChat(tokenizer, input.prompt, input.tools, input.template);
    const room = limits.contextLength - promptIds.length;
    if (room <= 0) {
      throw new BadRequestError(
        `The prompt is ${promptIds.length} tokens; this model's context window is ${limits.contextLength} tokens`,
        "context_length_exceeded",
      );
    }
    const { prompt: _prompt, tools: _tools, template: _template, ...rest } = input;
    return { ...rest, promptIds, maxTokens: Math.min(input.maxTokens ?? this.options.defaultMaxTokens ?? 256, room) };
  }

  /**
   * Every sequence of the batch in one engine call; a request with several prompts gets, per step, the steps of
   * its prompts that have news (each with its choice index).
   */
  override async *predict(batch: ChatInput[], ctx: PredictContext): AsyncIterable<(ChatOutput | undefined | EndOfStream)[]> {
    if (!this.engine) throw new Error("ChatAPI.predict called before setup");
    const inputs: PromptInput[] = [];
    const signals: AbortSignal[] = [];
    const owner: { item: number; choice: number }[] = [];
    batch.forEach((input, item) => {
      (Array.isArray(input) ? input : [input]).forEach((sequence, choice) => {
        inputs.push(sequence);
        signals.push(ctx.signals[item]);
        owner.push({ item, choice });
      });
    });
    // Every prompt of the batch is tokenized before any generates: one too long fails this call before any output,
    // and the server then runs the batch's other requests alone (one bad input fails only its own request).
    const sequences = await Promise.all(inputs.map((input) => this.prepare(input)));
    // A request whose sequences have all finished ends its stream now, not when the batch's longest one does.
    const left = batch.map((input) => (Array.isArray(input) ? input.length : 1));
    const ended = (step: (ChatStep | undefined)[]) => {
      const done = new Set<number>();
      step.forEach((s, j) => s?.finishReason && --left[owner[j].item] === 0 && done.add(owner[j].item));
      return done.size ? batch.map((_, item) => (done.has(item) ? END_OF_STREAM : undefined)) : undefined;
    };
    if (owner.length === batch.length && batch.every((input) => !Array.isArray(input))) {
      for await (const step of this.engine.generate(sequences, signals)) {
        yield step;
        const end = ended(step);
        if (end) yield end;
      }
      return;
    }
    for await (const step of this.engine.generate(sequences, signals)) {
      const out: (ChatOutput | undefined)[] = batch.map(() => undefined);
      step.forEach((s, j) => {
        if (!s) return;
        const { item, choice } = owner[j];
        if (!Array.isArray(batch[item])) out[item] = s;
        else ((out[item] ??= []) as ChatStep[]).push({ ...s, index: choice });
      });
      yield out;
      const end = ended(step);
      if (end) yield end;
    }
  }

  /** A request with tools: generated `<tool_call>` blocks (or a forced call) become tool calls, per choice. */
  override encodeResponse(output: ChatOutput, ctx: RequestContext): ChatOutput {
    const tools = ctx.state[TOOL_MODE_STATE] as { mode: ToolMode; maxCalls: number } | undefined;
    if (!tools) return output;
    const parsers = (ctx.state[TOOL_PARSERS_STATE] ??= new Map()) as Map<number, ToolCallParser>;
    const parse = (step: ChatStep) => {
      const index = step.index ?? 0;
      let parser = parsers.get(index);
      if (!parser) parsers.set(index, (parser = new ToolCallParser(tools.mode, tools.maxCalls)));
      return parser.push(step);
    };
    return Array.isArray(output) ? output.map(parse) : parse(output);
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
export function encodeChat(tokenizer: PreTrainedTokenizer, messages: ChatMessage[], tools?: unknown[], template?: string): number[] {
  const chatTemplate = template ?? tokenizer.chat_template;
  const text = chatTemplate
    ? (tokenizer.apply_chat_template(messages as never, {
        tokenize: false,
        add_generation_prompt: true,
        ...(tools ? { tools: tools as never } : {}),
        ...(template ? { chat_template: template } : {}),
      }) as string)
    : messages.map((m) => `${m.role}: ${m.content}\n`).join("") + "assistant:";
  // Templates write their own special tokens (e.g. BOS); without one, the tokenizer's defaults add them.
  return tokenizer.encode(text, { add_special_tokens: !chatTemplate });
}

/** A schema with keywords constrained decoding cannot enforce is refused before it is queued. */
function checkFormat(format: OutputFormat | undefined): void {
  if (format?.type !== "json_schema") return;
  try {
    compileSchema(format.schema);
  } catch (error) {
    if (error instanceof UnsupportedSchemaError) throw new BadRequestError(error.message, "unsupported_schema");
    throw error;
  }
}

/** A token whose decoded text is plain ASCII, decoded before each token to learn its text inside a sequence. */
function anchorToken(tokenizer: PreTrainedTokenizer): number {
  const ids = tokenizer.encode("a", { add_special_tokens: false });
  return ids[ids.length - 1];
}

function vocabularySize(tokenizer: PreTrainedTokenizer): number {
  const vocab = tokenizer.get_vocab() as Map<string, number> | Record<string, number>;
  const ids = vocab instanceof Map ? [...vocab.values()] : Object.values(vocab);
  return Math.max(...ids) + 1;
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
 * How `batchwise serve chat` serves (and `bench llm` measures) the chat model: up to 8 prompts per batch, and up to 8
 * batches in one worker at once — the engine lets a new batch's sequences join the running decode loop at its next
 * step, so a request arriving mid-generation starts at once instead of waiting for the others to finish (bench llm's
 * time to first token, docs/performance.md). The batcher dispatches to such a worker without waiting batchTimeout,
 * so requests usually arrive one per batch: 8 batches let 8 clients generate together (with 4, clients 5–8 queued
 * until one finished), and at most 64 sequences share a decode step.
 */
export const CHAT_SERVING_DEFAULTS = {
  maxBatchSize: 8,
  batchTimeout: 0.01,
  workers: 1,
  maxBatchesPerWorker: 8,
  /** A whole context window of text is a few hundred kB; larger bodies are refused before they are parsed. */
  maxPayloadSize: 1024 * 1024,
};

/** An ApiSource for the chat API, for createServer / the CLI (`batchwise serve chat --model ID`); carries {@link CHAT_SERVING_DEFAULTS}. */
export function chatModel(options: ChatOptions = {}): ApiSource<ChatOptions> {
  const d = CHAT_SERVING_DEFAULTS;
  const servingDefaults = { maxBatchSize: d.maxBatchSize, batchTimeout: d.batchTimeout, workersPerDevice: d.workers, maxBatchesPerWorker: d.maxBatchesPerWorker, maxPayloadSize: d.maxPayloadSize };
  return { module: fileURLToPath(import.meta.url), export: "ChatAPI", options, servingDefaults };
}
