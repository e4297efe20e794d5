/**
 * Preprocessing cost per image (base64 → normalised NCHW float32), one image at a time on one libvips thread,
 * interleaved so the three pipelines see the same machine load:
 *   defaults   sharp with its defaults (ICC colour transform, metadata parsed) — what a first version does
 *   reference  the straight pipeline: full decode, ICC ignored like PIL, linear resize, centre crop
 *   fast       src/classifier/image-preprocess.ts
 *   native     the native JPEG path's call alone (native/jpeg_preprocess.c: decode at a DCT scale, resample, normalise),
 *              on the raw bytes — the figure issue 14's "preprocessing ≤ 2.5 ms" is about; its instruction count per
 *              image: valgrind --tool=callgrind native/fuzz/replay (see that file)
 * Then, with the real model (fp32 and int8, BATCHWISE_MODELS_DIR or ../shared/models): top-1 and the largest
 * probability difference between fast and reference preprocessing on every photo of the images folder, and the
 * single-image latency decode + predict.
 * Usage: npx tsx scripts/bench-preprocess.ts [IMAGE] [--runs N]
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { ImageClassifierAPI, type ImageInput } from "../src/classifier/image-classifier.js";
import { IMAGE_VALUES, hwcToChw, normalize, preprocessBase64, referencePreprocess, resizePlan } from "../src/classifier/image-preprocess.js";
import { nativeJpeg } from "../src/classifier/jpeg-native.js";

const args = process.argv.slice(2);
const runsFlag = args.indexOf("--runs");
const runs = runsFlag >= 0 ? Number(args[runsFlag + 1]) : 300;
const file = args.find((a, i) => !a.startsWith("--") && args[i - 1] !== "--runs") ?? path.resolve("..", "shared", "images", "darknet_dog.jpg");
const base64 = readFileSync(file).toString("base64");

sharp.concurrency(1); // one core per image: throughput comes from several images in flight, not from this number

async function sharpDefaults(b64: string): Promise<Float32Array> {
  const bytes = Buffer.from(b64, "base64");
  const { width, height } = await sharp(bytes).metadata();
  const plan = resizePlan(width!, height!);
  const { data, info } = await sharp(bytes)
    .resize(plan.width, plan.height, { kernel: "linear", fit: "fill" })
    .extract({ left: plan.left, top: plan.top, width: 224, height: 224 })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return normalize(hwcToChw(data, info.channels));
}

const pipelines: Record<string, (b64: string) => Promise<Float32Array>> = {
  defaults: sharpDefaults,
  reference: (b64) => referencePreprocess(Buffer.from(b64, "base64")),
  fast: (b64) => preprocessBase64(b64),
};
const raw = readFileSync(file);
if (nativeJpeg && raw[0] === 0xff && raw[1] === 0xd8) {
  const { width, height } = await sharp(raw).metadata();
  const p = resizePlan(width!, height!);
  const plan = new Float64Array([p.width, p.height, p.left, p.top, 224]);
  const out = new Uint8Array(IMAGE_VALUES);
  pipelines.native = async () => (await nativeJpeg!.preprocess(raw, out, plan), normalize(out));
}

const times: Record<string, number[]> = Object.fromEntries(Object.keys(pipelines).map((k) => [k, []]));
for (let i = 0; i < 20; i++) for (const run of Object.values(pipelines)) await run(base64); // warm-up
for (let i = 0; i < runs; i++) {
  for (const [name, run] of Object.entries(pipelines)) {
    const start = performance.now();
    await run(base64);
    times[name].push(performance.now() - start);
  }
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
console.log(`${path.basename(file)}: ms per image over ${runs} interleaved runs, one image at a time, sharp.concurrency(1)`);
console.log("pipeline    median    p10     p90");
for (const [name, values] of Object.entries(times)) {
  const sorted = values.slice().sort((a, b) => a - b);
  console.log(
    `${name.padEnd(10)} ${quantile(sorted, 0.5).toFixed(2).padStart(7)} ${quantile(sorted, 0.1).toFixed(2).padStart(7)} ${quantile(sorted, 0.9).toFixed(2).padStart(7)}`,
  );
}

process.env.BATCHWISE_MODELS_DIR ??= path.resolve("..", "shared", "models");
const imagesDir = path.dirname(file);
const photos = readdirSync(imagesDir).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort();
const device = { accelerator: "cpu" as const, index: 0, threads: 1, id: "cpu" };
for (const precision of ["fp32", "int8"] as const) {
  const api = new ImageClassifierAPI({ precision, labels: "imagenet", topK: 1000 });
  await api.setup(device, { workerId: 0, maxBatchSize: 1 });
  const probabilities = async (input: ImageInput) => api.predict(api.batch([input]));
  let maxDiff = 0;
  const top1: string[] = [];
  for (const photo of photos) {
    const bytes = readFileSync(path.join(imagesDir, photo));
    const fast = await probabilities(await preprocessBase64(bytes.toString("base64")));
    const reference = await probabilities(await referencePreprocess(bytes));
    const argmax = (p: Float32Array) => p.indexOf(Math.max(...p));
    top1.push(`${photo} ${argmax(fast) === argmax(reference) ? "same" : "DIFFERENT"} (${api.unbatch(fast)[0][0].label})`);
    for (let i = 0; i < fast.length; i++) maxDiff = Math.max(maxDiff, Math.abs(fast[i] - reference[i]));
  }
  const latency: number[] = [];
  for (let i = 0; i < 20 + runs / 3; i++) {
    const start = performance.now();
    api.unbatch(await probabilities(await api.decodeRequest({ image: base64 })));
    if (i >= 20) latency.push(performance.now() - start);
  }
  latency.sort((a, b) => a - b);
  console.log(`\n${precision}, 1 intra-op thread: fast vs reference preprocessing, top-1 per photo: ${top1.join("; ")}`);
  console.log(`${precision}: max |probability difference| fast vs reference over ${photos.length} photos: ${maxDiff.toExponential(2)}`);
  console.log(`${precision}: single-image latency decode + predict (${path.basename(file)}): median ${quantile(latency, 0.5).toFixed(2)} ms, p90 ${quantile(latency, 0.9).toFixed(2)} ms`);
}
