/**
 * Run one large batch through a session as consecutive sub-batches ("chunks") of a few items.
 *
 * Why: at batch 64 a MobileNet's activations (64 × 112 × 112 × 96 bytes for one int8 expansion layer, four times
 * that in fp32) are far larger than the CPU caches, so every layer streams them through memory, and onnxruntime's
 * arena grows to hold them. Sub-batches of 8 keep each layer's tensors near the cache and the arena small: less CPU
 * time per image and a far smaller arena on the CPUs measured (docs/performance.md, "Sub-batches on the CPU"). The
 * items are independent (no batch-wide op such as batch-norm in training mode), so the result is
 * the same as one run. This is a CPU measure: a GPU wants the whole batch in one run.
 */
import { ort, type Session } from "./onnx.js";

/** Sub-batch size used when the caller does not choose one (see the module comment for the measurements). */
export const DEFAULT_CHUNK_SIZE = 8;

/**
 * One reusable input buffer per session, filled a chunk at a time. A fresh array per batch (64 images × 588 KiB =
 * 37 MiB, over glibc's largest mmap threshold, so mapped and unmapped every time) made every batch fault its pages
 * in again: on a virtual machine where a page fault costs microseconds, that was a large share of each image's time.
 */
const scratchBySession = new WeakMap<Session, Float32Array>();

/**
 * Feed a batch to the session's first input in chunks of `chunkSize` items and concatenate the first output along
 * the batch axis. The batch is either one array of count × item values, or one array per item (what a server's
 * batch() gets: the items are copied a chunk at a time into a buffer the session keeps, never into one batch-sized
 * array). Items that are not yet the model's floats (e.g. 8-bit pixels) come with `fill`, which writes one item's
 * values into its slot. `Infinity` runs the whole batch at once (GPUs want that).
 * @example
 * ```ts
 * const logits = await runChunked(session, [pixelsA, pixelsB], [3, 224, 224]);
 * const fromBytes = await runChunked(session, [levelsA, levelsB], [3, 224, 224], 8, normalizeInto);
 * ```
 */
export async function runChunked<Item extends ArrayLike<number> = Float32Array>(
  session: Session,
  batch: Float32Array | readonly Item[],
  itemDims: readonly number[],
  chunkSize = DEFAULT_CHUNK_SIZE,
  fill: (item: Item, into: Float32Array) => void = copyInto,
): Promise<Float32Array> {
  if (!(chunkSize >= 1) || (!Number.isInteger(chunkSize) && chunkSize !== Infinity)) {
    throw new Error(`chunkSize must be a positive integer or Infinity, got ${chunkSize}`);
  }
  const itemValues = itemDims.reduce((a, b) => a * b, 1);
  const items = ArrayBuffer.isView(batch) ? null : (batch as readonly Item[]);
  const count = items ? items.length : batch.length / itemValues;
  if (!Number.isInteger(count)) throw new Error(`Expected a multiple of ${itemValues} values, got ${batch.length}`);
  const wrongItem = items?.findIndex((item) => item.length !== itemValues) ?? -1;
  if (wrongItem >= 0) throw new Error(`Expected ${itemValues} values per item, got ${items![wrongItem].length} for item ${wrongItem}`);
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];
  let result: Float32Array | undefined;
  let perItem = 0;
  for (let start = 0; start < count; start += chunkSize) {
    const n = Math.min(chunkSize, count - start);
    const data = items ? chunkData(session, items, start, n, itemValues, fill) : (batch as Float32Array).subarray(start * itemValues, (start + n) * itemValues);
    const outputs = await session.run({ [inputName]: new ort.Tensor("float32", data, [n, ...itemDims]) });
    const output = outputs[outputName].data as Float32Array;
    if (n === count) return output;
    perItem ||= output.length / n;
    result ??= new Float32Array(count * perItem);
    result.set(output, start * perItem);
  }
  return result ?? new Float32Array(0);
}

function copyInto(item: ArrayLike<number>, into: Float32Array): void {
  into.set(item);
}

/** Items start … start + n as one contiguous array: a lone float item itself, else the session's scratch, filled. */
function chunkData<Item extends ArrayLike<number>>(
  session: Session,
  items: readonly Item[],
  start: number,
  n: number,
  itemValues: number,
  fill: (item: Item, into: Float32Array) => void,
): Float32Array {
  if (n === 1 && fill === copyInto && items[start] instanceof Float32Array) return items[start] as unknown as Float32Array;
  let scratch = scratchBySession.get(session);
  if (!scratch || scratch.length < n * itemValues) {
    scratch = new Float32Array(n * itemValues);
    scratchBySession.set(session, scratch);
  }
  for (let i = 0; i < n; i++) fill(items[start + i], scratch.subarray(i * itemValues, (i + 1) * itemValues));
  return scratch.subarray(0, n * itemValues);
}

/** Items as one contiguous array (a model input of batch N takes them so), in order. */
export function contiguous(items: readonly Float32Array[]): Float32Array {
  const data = new Float32Array(items.reduce((sum, item) => sum + item.length, 0));
  let offset = 0;
  for (const item of items) {
    data.set(item, offset);
    offset += item.length;
  }
  return data;
}
