/**
 * Quantize an fp32 image model to int8 (QDQ, per-channel int8 weights, uint8 activations) with activation ranges
 * calibrated on sample photos preprocessed exactly as the classifier serves them (src/runtime/quantize.ts).
 * Writes nothing into the models folder: the output goes to data/cache/ (gitignored) unless a path is given; serve
 * it with `npm start -- --model <file>`. Top-1 and max |Δp| against the fp32 model are printed for every photo.
 * `--reduce-range` writes 7-bit weights, which x86 CPUs without VNNI (AVX2 only) compute without overflow.
 * Usage: npx tsx scripts/quantize-model.ts [FP32_ONNX] [OUT_ONNX] [--images DIR] [--reduce-range]
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ImageClassifierAPI } from "../src/classifier/image-classifier.js";
import { softmaxRows } from "../src/classifier/labels.js";
import { modelsDir } from "../src/runtime/models.js";
import { createSession, ort } from "../src/runtime/onnx.js";
import { quantizeModel } from "../src/runtime/quantize.js";
import { calibrate } from "../src/runtime/quantize-calibrate.js";
import { contiguous } from "../src/runtime/chunked-run.js";
import { normalize } from "../src/classifier/image-preprocess.js";

const args = process.argv.slice(2);
const imagesFlag = args.indexOf("--images");
const imagesDir = path.resolve(imagesFlag >= 0 ? args[imagesFlag + 1] : path.join("..", "shared", "images"));
const reduceRange = args.includes("--reduce-range");
const positional = args.filter((a, i) => !a.startsWith("--") && args[i - 1] !== "--images");
const source = positional[0] ?? path.join(modelsDir(), "mobilenetv2-12", "mobilenetv2-12-fp32.onnx");
const out = positional[1] ?? path.join("data", "cache", `${path.basename(source, ".onnx").replace(/-fp32$/, "")}-qdq${reduceRange ? "-reduced" : ""}-int8.onnx`);

const photos = readdirSync(imagesDir).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort();
if (photos.length === 0) throw new Error(`No photos to calibrate on in ${imagesDir}`);
const api = new ImageClassifierAPI();
const decoded = await Promise.all(photos.map((f) => api.decodeRequest({ image: readFileSync(path.join(imagesDir, f)).toString("base64") })));
const data = contiguous(decoded.map(normalize));
const dims = [photos.length, 3, 224, 224];

const fp32 = readFileSync(source);
const started = performance.now();
const quantized = quantizeModel(fp32, await calibrate(fp32, [{ data, dims }]), { reduceRange });
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, quantized);
console.log(`${out}: ${(quantized.length / 2 ** 20).toFixed(2)} MiB, quantized in ${((performance.now() - started) / 1000).toFixed(1)} s, calibrated on ${photos.length} photos`);

const probabilities = async (model: Uint8Array) => {
  const session = await createSession(model, { threads: 1, accelerator: "cpu" });
  const result = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", data, dims) });
  await session.release();
  return softmaxRows(result[session.outputNames[0]].data as Float32Array, 1000);
};
const [reference, int8] = [await probabilities(fp32), await probabilities(quantized)];
let maxDiff = 0;
for (const [r, photo] of photos.entries()) {
  const a = Array.from(reference.subarray(r * 1000, (r + 1) * 1000));
  const b = Array.from(int8.subarray(r * 1000, (r + 1) * 1000));
  for (let i = 0; i < 1000; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
  const [ta, tb] = [a.indexOf(Math.max(...a)), b.indexOf(Math.max(...b))];
  console.log(`${photo.padEnd(24)} top-1 fp32 ${ta} int8 ${tb}${ta === tb ? "" : "  DIFFERENT"}`);
}
console.log(`max |Δp| vs fp32: ${maxDiff.toFixed(4)}`);
