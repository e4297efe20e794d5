/**
 * The classifier on each GPU provider that loads here, at fp32 and fp16: which precision the accuracy guard lets
 * run, its agreement with CPU fp32 on the sample photos, and images/s at batch 64. Part of scripts/device-check.sh.
 * Usage: node scripts/device-classify.mjs [IMAGES_DIR]   (after npm run build)
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { ImageClassifierAPI } from "../dist/classifier/index.js";
import { nvidiaGpuCount, probeProvider } from "../dist/runtime/device.js";

const imagesDir = path.resolve(process.argv[2] ?? path.join("..", "shared", "images"));
const photos = readdirSync(imagesDir).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort();
const classes = 1000;
const top1 = (p, row) => {
  let best = row * classes;
  for (let i = row * classes; i < (row + 1) * classes; i++) if (p[i] > p[best]) best = i;
  return best - row * classes;
};

async function open(accelerator, precision) {
  const api = new ImageClassifierAPI({ precision, labels: "imagenet" });
  await api.setup({ accelerator, index: 0, threads: 1, id: `${accelerator}:0` }, { workerId: 0, maxBatchSize: 64 });
  return api;
}

const cpu = await open("cpu", "fp32");
const inputs = await Promise.all(photos.map((f) => cpu.decodeRequest({ image: readFileSync(path.join(imagesDir, f)).toString("base64") })));
const reference = await cpu.predict(inputs);
console.log(`GPUs: ${nvidiaGpuCount().why}`);
for (const accelerator of ["cuda", "webgpu"]) {
  const probe = await probeProvider(accelerator);
  console.log(`${accelerator}: ${probe.ok ? "loads" : `does not load (${probe.error})`}`);
  if (!probe.ok) continue;
  for (const precision of ["fp32", "fp16", "auto"]) {
    try {
      const api = await open(accelerator, precision);
      const probabilities = await api.predict(inputs);
      let same = 0;
      let maxDiff = 0;
      for (let r = 0; r < photos.length; r++) {
        if (top1(probabilities, r) === top1(reference, r)) same++;
        for (let i = r * classes; i < (r + 1) * classes; i++) maxDiff = Math.max(maxDiff, Math.abs(probabilities[i] - reference[i]));
      }
      const batch = Array.from({ length: 64 }, (_, i) => inputs[i % inputs.length]);
      await api.predict(batch);
      const runs = 10;
      const started = performance.now();
      for (let i = 0; i < runs; i++) await api.predict(batch);
      const perSecond = (runs * 64 * 1000) / (performance.now() - started);
      console.log(
        `  ${precision} → ${api.info.precision}: top-1 ${same}/${photos.length} vs CPU fp32, max |Δp| ${maxDiff.toFixed(4)}, ` +
          `${perSecond.toFixed(0)} images/s at batch 64 (model only)\n    reason: ${api.info.precisionReason}`,
      );
    } catch (error) {
      console.log(`  ${precision}: ${error.message.split("\n")[0]}`);
    }
  }
}
