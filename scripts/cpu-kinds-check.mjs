/**
 * What precision `auto` serves on this CPU, and whether it answers like fp32 — run natively and under an emulated
 * CPU of the other kind by scripts/test-cpu-kinds.sh (`npm run test:cpu-kinds`). Exits 1 when a check fails.
 * Checks: auto picks int8 exactly where the CPU has int8 dot products; the model it serves keeps fp32's top-1 on
 * every sample photo with max |Δp| ≤ 0.05; an explicit int8 does too (batchwise's own 7-bit model where the
 * folder's file fails); an image's answer is the same alone and in a batch (|Δp| ≤ 1e-4).
 * Usage: node scripts/cpu-kinds-check.mjs [IMAGES_DIR]   (after npm run build)
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { ImageClassifierAPI } from "../dist/classifier/index.js";
import { cpuFeatures, describeCpu } from "../dist/runtime/cpu-features.js";

const imagesDir = path.resolve(process.argv[2] ?? path.join("..", "shared", "images"));
const photos = readdirSync(imagesDir).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort();
const device = { accelerator: "cpu", index: 0, threads: 1, id: "cpu" };
const cpu = cpuFeatures();
const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
};

async function open(precision) {
  const api = new ImageClassifierAPI({ precision, labels: "imagenet" });
  await api.setup(device, { workerId: 0, maxBatchSize: 64 });
  return api;
}

const reference = await open("fp32");
const inputs = await Promise.all(photos.map((f) => reference.decodeRequest({ image: readFileSync(path.join(imagesDir, f)).toString("base64") })));
const classes = 1000;
const top1 = (probabilities, row) => {
  let best = row * classes;
  for (let i = row * classes; i < (row + 1) * classes; i++) if (probabilities[i] > probabilities[best]) best = i;
  return best - row * classes;
};
const fp32 = await reference.predict(inputs);

console.log(`CPU: ${describeCpu(cpu)}`);
for (const precision of ["auto", "int8"]) {
  const api = await open(precision);
  const started = performance.now();
  const probabilities = await api.predict(inputs);
  const ms = performance.now() - started;
  let maxDiff = 0;
  let same = 0;
  for (let r = 0; r < photos.length; r++) {
    if (top1(probabilities, r) === top1(fp32, r)) same++;
    for (let i = r * classes; i < (r + 1) * classes; i++) maxDiff = Math.max(maxDiff, Math.abs(probabilities[i] - fp32[i]));
  }
  console.log(`${precision} → ${api.info.precision} (${api.info.file}): top-1 ${same}/${photos.length} vs fp32, max |Δp| ${maxDiff.toFixed(3)}, ${(ms / photos.length).toFixed(1)} ms/image`);
  console.log(`  reason: ${api.info.precisionReason}`);
  if (precision === "auto") check(api.info.precision === (cpu.int8DotProduct ? "int8" : "fp32"), `auto serves ${cpu.int8DotProduct ? "int8 (int8 dot products)" : "fp32 (no int8 dot products)"}`);
  check(api.info.precisionWarning === undefined, `${precision}: no accuracy warning`);
  check(same === photos.length && maxDiff <= 0.05, `${precision}: top-1 equal to fp32 on every photo and max |Δp| ≤ 0.05`);
  let batchDiff = 0;
  for (const [r, input] of inputs.entries()) {
    const alone = await api.predict([input]);
    for (let i = 0; i < classes; i++) batchDiff = Math.max(batchDiff, Math.abs(alone[i] - probabilities[r * classes + i]));
  }
  check(batchDiff <= 1e-4, `${precision}: the same answer alone and in a batch (max |Δp| ${batchDiff.toExponential(1)} ≤ 1e-4)`);
}
if (failures.length > 0) {
  console.log(`${failures.length} check(s) failed`);
  process.exit(1);
}
