/**
 * A text-embedding model served through {@link openAIEmbeddingSpec}: any transformers.js model folder (an encoder
 * exported for feature extraction, or a causal LM whose LM head is cut off — see hidden-states.ts), mean-pooled and
 * L2-normalised.
 *
 * The main thread only validates what costs nothing (`dimensions` against the model's size, token-id inputs against
 * the vocabulary and `maxTokens`, a text's length in characters against what `maxTokens` tokens can hold). The worker
 * owns the tokenizer and the model: tokenizing a request of 2048 texts is real CPU time, and on the main thread it
 * would stall every other client's I/O (the chat app tokenizes in its worker for the same reason). A text that turns
 * out longer than `maxTokens` is a 400 from there: the batch is re-run item by item, so only its own request fails.
 * Inputs of many requests share one batch: every input of every request is one row.
 *
 * @example
 * ```ts
 * const server = await createServer({ api: embeddingModel({ model: "aidreams260K" }), spec: openAIEmbeddingSpec(), maxBatchSize: 32 });
 * ```
 */
import { fileURLToPath } from "node:url";
import type { PreTrainedTokenizer } from "@huggingface/transformers";
import { BadRequestError, ModelAPI, type ApiSource, type Device, type PrecisionChoice } from "../api/model-api.js";
import { loadTokenizer, resolveModel, type ResolvedModel } from "../chat/model.js";
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

/** One request's inputs as they cross to the worker: texts, or token ids already checked. */
export interface EmbeddingInput {
  items: (string | Int32Array)[];
}

/** What the worker answers per request: a unit vector per input, and the tokens it read. */
export interface EmbeddingVectors {
  vectors: Float32Array[];
  promptTokens: number;
}

/** More characters than any tokenizer packs into one token on real text (the chat app's bound). */
const MAX_CHARACTERS_PER_TOKEN = 32;

export class EmbeddingAPI extends ModelAPI<EmbeddingRequest, EmbeddingInput, EmbeddingVectors, EmbeddingOutput> {
  private readonly model: ResolvedModel & { folder: string };
  private readonly shape: ModelShape;
  private readonly maxTokens: number;
  private tokenizer: PreTrainedTokenizer | null = null;
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
    this.tokenizer = await loadTokenizer(this.model, false);
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

  override decodeRequest(request: EmbeddingRequest): EmbeddingInput {
    const { hiddenSize, vocabSize } = this.shape;
    if (request.dimensions !== undefined && request.dimensions > hiddenSize) {
      throw new BadRequestError(`'dimensions' is ${request.dimensions}; this model's embeddings have ${hiddenSize}`, "invalid_request");
    }
    const items = request.input.map((item, i) => {
      const where = request.input.length > 1 ? `input[${i}]` : "input";
      if (typeof item === "string") {
        if (item.length > this.maxTokens * MAX_CHARACTERS_PER_TOKEN) {
          throw new BadRequestError(`'${where}' is ${item.length} characters; at most ${this.maxTokens} tokens per input (maxTokens)`, "context_length_exceeded");
        }
        return item;
      }
      this.checkLength(item.length, where);
      const outside = item.find((id) => id >= vocabSize);
      if (outside !== undefined) throw new BadRequestError(`'${where}' has token id ${outside}; this model's vocabulary has ${vocabSize}`, "invalid_request");
      return Int32Array.from(item);
    });
    return { items };
  }

  /** Every input of every request is one row; the model runs them together and the vectors go back per request. */
  override async predict(batch: EmbeddingInput[]): Promise<EmbeddingVectors[]> {
    if (!this.embedder || !this.tokenizer) throw new Error("setup() has not run");
    const tokenizer = this.tokenizer;
    const rows = batch.map((input) =>
      input.items.map((item, i) => {
        if (typeof item !== "string") return item;
        const ids = tokenizer.encode(item);
        this.checkLength(ids.length, input.items.length > 1 ? `input[${i}]` : "input");
        return ids;
      }),
    );
    const vectors = await this.embedder.embed(rows.flat());
    let next = 0;
    return rows.map((request) => ({
      vectors: vectors.slice(next, (next += request.length)),
      promptTokens: request.reduce((sum, row) => sum + row.length, 0),
    }));
  }

  override encodeResponse(output: EmbeddingVectors): EmbeddingOutput {
    return { embeddings: output.vectors, promptTokens: output.promptTokens };
  }

  private checkLength(tokens: number, where: string): void {
    if (tokens > this.maxTokens) {
      throw new BadRequestError(`'${where}' is ${tokens} tokens; at most ${this.maxTokens} per input (maxTokens)`, "context_length_exceeded");
    }
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
