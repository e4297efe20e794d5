import { createHash } from "node:crypto";
import { derivedModelFile } from "./model-cache.js";
import { calibrate, type CalibrationBatch } from "./quantize-calibrate.js";
import { QUANTIZER_VERSION, quantizeModel, type QuantizeOptions } from "./quantize.js";

/**
 * The int8 model batchwise's quantizer builds from an fp32 file, calibrated on `batches`; built once, then cached
 * (model-cache.ts). What precision `auto` falls back to when a folder's own int8 file fails the accuracy guard.
 */
export async function quantizedModelFile(fp32File: string, batches: readonly CalibrationBatch[], options: QuantizeOptions = {}): Promise<string> {
  const inputs = createHash("sha256");
  for (const batch of batches) inputs.update(new Uint8Array(batch.data.buffer, batch.data.byteOffset, batch.data.byteLength)).update(batch.dims.join("x"));
  const recipe = `qdq${options.reduceRange ? "-reduced" : ""}\0v${QUANTIZER_VERSION}\0${inputs.digest("hex")}`;
  const suffix = options.reduceRange ? "qdq-reduced-int8" : "qdq-int8";
  return derivedModelFile(fp32File, suffix, recipe, async (bytes) => quantizeModel(bytes, await calibrate(bytes, batches), options));
}
