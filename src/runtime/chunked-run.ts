/**
 * Run one large batch through a session as consecutive sub-batches ("chunks") of a few items.
 *
 * Why: at batch 64 a MobileNet's activations (64 × 112 × 112 × 96 bytes for one int8 expansion layer, four times
 * that in fp32) are far larger than the CPU caches, so every layer streams them through memory, and onnxruntime's
 * arena grows to hold them. Sub-batches of 8 keep each layer's tensors near the cache and the arena small. Measured
 * on this 2-core Zen 5 (one intra-op thread, CPU time per image, interleaved, scripts/bench-model.ts --chunk):
 * int8 MobileNetV2 4.33 → 3.79 ms (fp32 8.56 → 6.81 ms); resident memory after a 64-image batch, per session,
 * 378 → 185 MiB. The items are independent (no batch-wide op such as batch-norm in training mode), so the result is
 * the same as one run. This is a CPU measure: a GPU wants the whole batch in one run.
 */
import { ort, type Session } from "./onnx.js";

/** Sub-batch size used when the caller does not choose one (see the module comment for the measurements). */
export const DEFAULT_CHUNK_SIZE = 8;

/**
 * Feed `data` ([count, ...itemDims], float32) to the session's first input in chunks of `chunkSize` items and
 * concatenate the first output along the batch axis. `Infinity` runs the whole batch at once (GPUs want that).
 * @example
 * ```ts
 * const logits = await runChunked(session, pixels, 64, [3, 224, 224]);
 * ```
 */
export async function runChunked(
  session: Session,
  data: Float32Array,
  count: number,
  itemDims: readonly number[],
  chunkSize = DEFAULT_CHUNK_SIZE,
): Promise<Float32Array> {
  if (!(chunkSize >= 1) || (!Number.isInteger(chunkSize) && chunkSize !== Infinity)) {
    throw new Error(`chunkSize must be a positive integer or Infinity, got ${chunkSize}`);
  }
  const itemValues = itemDims.reduce((a, b) => a * b, 1);
  if (data.length !== count * itemValues) throw new Error(`Expected ${count} × ${itemValues} values, got ${data.length}`);
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];
  let result: Float32Array | undefined;
  let perItem = 0;
  for (let start = 0; start < count; start += chunkSize) {
    const n = Math.min(chunkSize, count - start);
    const input = new ort.Tensor("float32", data.subarray(start * itemValues, (start + n) * itemValues), [n, ...itemDims]);
    const outputs = await session.run({ [inputName]: input });
    const output = outputs[outputName].data as Float32Array;
    if (n === count) return output;
    perItem ||= output.length / n;
    result ??= new Float32Array(count * perItem);
    result.set(output, start * perItem);
  }
  return result ?? new Float32Array(0);
}
