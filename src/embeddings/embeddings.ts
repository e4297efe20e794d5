/**
 * A text-embedding model served through {@link openAIEmbeddingSpec}: any transformers.js model folder (an encoder
 * exported for feature extraction, or a causal LM whose LM head is cut off — see hidden-states.ts), mean-pooled and
 * L2-normalised.
 *
 * decodeRequest (main thread) tokenizes with the model's own tokenizer: the limits (tokens per input, token ids inside
 * the vocabulary, `dimensions` within the model's size) are then 400s before anything is queued, and the usage block
 * counts real tokens. Inputs of many requests share one batch in the worker (every input of every request is one row).
 *
 * @example
 * ```ts
 * const server = await createServer({ api: embeddingModel({ model: "aidreams260K" }), spec: openAIEmbeddingSpec(), maxBatchSize: 32 });
 * ```
 */
import { fileURLToPath } from "node:url";
import type { PreTrainedTokenizer } from "@huggingface/transformers";
import { BadRequestError, ModelAPI, type ApiSource, type Device, type PrecisionChoice, type RequestContext } from "../api.js";
import { loadTokenizer, resolveModel, type ResolvedModel } from "../apps/chat-model.js";
import type { EmbeddingOutput, EmbeddingRequest } from "../openai/embeddings-spec.js";
import { EmbeddingModel, readModelShape, type ModelShape } from "./embedding-model.js";

export interface EmbeddingOptions {
  /** A model folder path, or an id (a folder under BATCHWISE_MODELS_DIR). */
  model: string;
  /** Model file variant: fp32 (onnx/model.onnx), fp16 (model_fp16.onnx) or int8 (model_quantized.onnx). */
  precision?: PrecisionChoice;
  /** Most tokens one input may have; default (and ceiling) the model's context length. */
  maxTokens?: number;
}

/** One request's inputs as token ids, one row each (what crosses to the worker). */
export interface EmbeddingInput {
  rows: Int32Array[];
}

/** `ctx.state` key: the tokens a request's inputs counted (decodeRequest), for encodeResponse's usage. */
const PROMPT_TOKENS_STATE = "embeddingPromptTokens";

export class EmbeddingAPI extends ModelAPI<EmbeddingRequest, EmbeddingInput, Float32Array[], EmbeddingOutput> {
  private readonly model: ResolvedModel & { folder: string };
  private readonly shape: ModelShape;
  private readonly maxTokens: number;
  private tokenizer: Promise<PreTrainedTokenizer> | null = null;
  private embedder: EmbeddingModel | null = null;

  constructor(private readonly options: EmbeddingOptions) {
    super();
    const model = resolveModel(options.model);
    if (!model.folder) {
      throw new Error(`Embedding model "${options.model}" not found: looked for a folder with config.json at ${model.searched.join(" and ")}`);
    }
    this.model = model as ResolvedModel & { folder: string };
    this.shape = readModelShape(model.folder);
    this.maxTokens = Math.min(options.maxTokens ?? this.shape.contextLength, this.shape.contextLength);
    this.info = { model: model.id, dimensions: this.shape.hiddenSize, maxTokens: this.maxTokens };
  }

  override async setup(device: Device): Promise<void> {
    const precision = this.options.precision ?? "auto";
    this.embedder = await EmbeddingModel.open(this.model.folder, precision, device);
    this.info = {
      ...this.info,
      source: this.model.folder,
      precision,
      device: device.accelerator,
      threads: device.threads,
      pooling: "mean of the last hidden state over the input's tokens, L2-normalised",
    };
  }

  override async decodeRequest(request: EmbeddingRequest, ctx: RequestContext): Promise<EmbeddingInput> {
    const { hiddenSize, vocabSize } = this.shape;
    if (request.dimensions !== undefined && request.dimensions > hiddenSize) {
      throw new BadRequestError(`'dimensions' is ${request.dimensions}; this model's embeddings have ${hiddenSize}`, "invalid_request");
    }
    this.tokenizer ??= loadTokenizer(this.model, false);
    const tokenizer = await this.tokenizer;
    const where = (i: number) => (request.input.length > 1 ? `input[${i}]` : "input");
    const rows = request.input.map((item, i) => {
      const ids = typeof item === "string" ? tokenizer.encode(item) : item;
      if (ids.length > this.maxTokens) {
        throw new BadRequestError(`'${where(i)}' is ${ids.length} tokens; at most ${this.maxTokens} per input (maxTokens)`, "context_length_exceeded");
      }
      const outside = ids.find((id) => id >= vocabSize);
      if (outside !== undefined) throw new BadRequestError(`'${where(i)}' has token id ${outside}; this model's vocabulary has ${vocabSize}`, "invalid_request");
      return Int32Array.from(ids);
    });
    ctx.state[PROMPT_TOKENS_STATE] = rows.reduce((sum, row) => sum + row.length, 0);
    return { rows };
  }

  /** Every input of every request is one row; the model runs them together and the vectors go back per request. */
  override async predict(batch: EmbeddingInput[]): Promise<Float32Array[][]> {
    if (!this.embedder) throw new Error("setup() has not run");
    const vectors = await this.embedder.embed(batch.flatMap((input) => input.rows));
    let next = 0;
    return batch.map((input) => vectors.slice(next, (next += input.rows.length)));
  }

  override encodeResponse(output: Float32Array[], ctx: RequestContext): EmbeddingOutput {
    return { embeddings: output, promptTokens: ctx.state[PROMPT_TOKENS_STATE] as number };
  }
}

/** The API as workers load it: `createServer({ api: embeddingModel({ model }), spec: openAIEmbeddingSpec() })`. */
export function embeddingModel(options: EmbeddingOptions): ApiSource<EmbeddingOptions> {
  return { module: fileURLToPath(import.meta.url), export: "EmbeddingAPI", options };
}

/** How `batchwise serve embeddings` serves: requests batched for 10 ms at most, one worker with every core. */
export const EMBEDDING_SERVING_DEFAULTS = {
  maxBatchSize: 32,
  batchTimeout: 0.01,
  workers: 1,
  /** Embedding a text twice gives the same vector: a request whose worker died may be retried. */
  idempotent: true,
};
