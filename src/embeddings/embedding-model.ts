/**
 * Text → one unit vector, for a batch of token-id rows: the model's hidden states (see hidden-states.ts), mean-pooled
 * over each row's real tokens and L2-normalised.
 *
 * Rows of different lengths share a run: they are right-padded and masked. A causal model never lets a token see the
 * padding after it, and an encoder's attention mask gives pads zero weight, so a text's vector does not depend on what
 * it was batched with (tested: cosine 1 within 1e-5 alone and in mixed batches). Rows are sorted by length and run in
 * chunks of at most {@link TOKENS_PER_RUN} padded tokens, so a short text next to a long one costs little padding and
 * a large batch never allocates one huge tensor.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Device, PrecisionChoice } from "../api/model-api.js";
import { createSession, ort, settingsFor, type Session } from "../runtime/onnx.js";
import { exposeHiddenStates, HIDDEN_STATE_OUTPUT } from "./hidden-states.js";

/** Padded tokens (rows × longest row) per onnxruntime run. */
export const TOKENS_PER_RUN = 4096;

/** What the model's config.json says about its shapes, read on both threads (the main thread validates with it). */
export interface ModelShape {
  hiddenSize: number;
  /** Longest input the model's positions allow. */
  contextLength: number;
  vocabSize: number;
  padTokenId: number;
  /** For a causal LM's empty KV-cache inputs. */
  kvHeads: number;
  headDim: number;
}

export function readModelShape(folder: string): ModelShape {
  const config = JSON.parse(readFileSync(path.join(folder, "config.json"), "utf8")) as Record<string, unknown>;
  const number = (key: string, fallback?: number): number => {
    const value = config[key];
    if (typeof value === "number" && Number.isFinite(value)) return value;
    if (fallback !== undefined) return fallback;
    throw new Error(`config.json of ${path.basename(folder)} has no numeric '${key}'`);
  };
  const hiddenSize = ["hidden_size", "d_model", "dim"].map((k) => config[k]).find((v): v is number => typeof v === "number");
  if (hiddenSize === undefined) throw new Error(`config.json of ${path.basename(folder)} has no 'hidden_size'`);
  const heads = number("num_attention_heads", 1);
  return {
    hiddenSize,
    contextLength: number("max_position_embeddings", 512),
    vocabSize: number("vocab_size"),
    padTokenId: number("pad_token_id", 0),
    kvHeads: number("num_key_value_heads", heads),
    headDim: number("head_dim", Math.floor(hiddenSize / heads)),
  };
}

/** The ONNX file of a transformers.js model folder for a precision (its file-naming convention). */
export function onnxFile(folder: string, precision: PrecisionChoice): string {
  const names: Record<PrecisionChoice, string> = {
    auto: "model.onnx",
    fp32: "model.onnx",
    fp16: "model_fp16.onnx",
    int8: "model_quantized.onnx",
    bf16: "model_bf16.onnx",
  };
  const file = path.join(folder, "onnx", names[precision]);
  if (!existsSync(file)) throw new Error(`No ${precision} variant of ${path.basename(folder)}: ${path.join("onnx", names[precision])} is missing`);
  return file;
}

export class EmbeddingModel {
  private constructor(
    private readonly session: Session,
    readonly shape: ModelShape,
  ) {}

  static async open(folder: string, precision: PrecisionChoice, device: Device): Promise<EmbeddingModel> {
    const bytes = exposeHiddenStates(readFileSync(onnxFile(folder, precision)));
    return new EmbeddingModel(await createSession(bytes, settingsFor(device)), readModelShape(folder));
  }

  /** One unit vector per row of token ids, in order. */
  async embed(rows: readonly ArrayLike<number>[]): Promise<Float32Array[]> {
    const order = rows.map((_, i) => i).sort((a, b) => rows[a].length - rows[b].length);
    const out: Float32Array[] = new Array(rows.length);
    for (let start = 0; start < order.length; ) {
      // Longest row last: the chunk grows while its padded size (rows × that row's length) fits the budget.
      let end = start + 1;
      while (end < order.length && (end + 1 - start) * rows[order[end]].length <= TOKENS_PER_RUN) end++;
      const chunk = order.slice(start, end);
      const vectors = await this.run(chunk.map((i) => rows[i]));
      chunk.forEach((row, k) => (out[row] = vectors[k]));
      start = end;
    }
    return out;
  }

  private async run(rows: ArrayLike<number>[]): Promise<Float32Array[]> {
    const batch = rows.length;
    const length = Math.max(...rows.map((r) => r.length));
    const ids = new BigInt64Array(batch * length).fill(BigInt(this.shape.padTokenId));
    const mask = new BigInt64Array(batch * length);
    const positions = new BigInt64Array(batch * length);
    rows.forEach((row, b) => {
      for (let t = 0; t < length; t++) {
        if (t < row.length) {
          ids[b * length + t] = BigInt(row[t]);
          mask[b * length + t] = 1n;
        }
        positions[b * length + t] = BigInt(t);
      }
    });
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of this.session.inputNames) feeds[name] = this.feed(name, { ids, mask, positions }, batch, length);
    const result = await this.session.run(feeds, [HIDDEN_STATE_OUTPUT]);
    const hidden = result[HIDDEN_STATE_OUTPUT].data as Float32Array;
    return rows.map((row, b) => meanPooled(hidden, b, row.length, length, this.shape.hiddenSize));
  }

  private feed(name: string, data: { ids: BigInt64Array; mask: BigInt64Array; positions: BigInt64Array }, batch: number, length: number) {
    const dims = [batch, length];
    if (name === "input_ids") return new ort.Tensor("int64", data.ids, dims);
    if (name === "attention_mask") return new ort.Tensor("int64", data.mask, dims);
    if (name === "position_ids") return new ort.Tensor("int64", data.positions, dims);
    if (name === "token_type_ids") return new ort.Tensor("int64", new BigInt64Array(batch * length), dims);
    // A generation export's KV cache: empty, so the whole text is the "prompt".
    if (name.startsWith("past_key_values.")) {
      return new ort.Tensor("float32", new Float32Array(0), [batch, this.shape.kvHeads, 0, this.shape.headDim]);
    }
    throw new Error(`The model has an input '${name}' that an embedding run cannot fill`);
  }
}

/** The mean of row `b`'s first `count` token vectors, scaled to unit length. */
export function meanPooled(hidden: Float32Array, b: number, count: number, length: number, size: number): Float32Array {
  const sum = new Float64Array(size);
  for (let t = 0; t < count; t++) {
    const offset = (b * length + t) * size;
    for (let h = 0; h < size; h++) sum[h] += hidden[offset + h];
  }
  let norm = 0;
  for (let h = 0; h < size; h++) norm += sum[h] * sum[h];
  norm = Math.sqrt(norm) || 1;
  return Float32Array.from(sum, (x) => x / norm);
}
