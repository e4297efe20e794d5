/**
 * Model time per image: onnxruntime-node, batch 64, ONE intra-op thread without spinning (what each `npm start`
 * worker runs), warmed, variants interleaved round by round so they see the same machine load.
 * The batch is the sample photos (../shared/images) preprocessed and repeated to 64.
 * Usage: npx tsx scripts/bench-model.ts [--rounds N] [--batch N] [--threads N] NAME=FILE[:opt=value,...] ...
 *   options: level=disabled|basic|extended|layout|all, arena=0|1, pattern=0|1,
 *            chunk=N (run the batch as sub-batches of N, as the classifier does on the CPU: runtime/chunked-run.ts)
 * Example: npx tsx scripts/bench-model.ts stock=data/models/mobilenetv2-12/mobilenetv2-12-int8.onnx \
 *            qdq=data/cache/mobilenetv2-12-int8-qdq.onnx
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import ort from "onnxruntime-node";
import { IMAGE_VALUES, referencePreprocess } from "../src/classifier/image-preprocess.js";
import { runChunked } from "../src/runtime/chunked-run.js";

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const rounds = flag("rounds", 7);
const batchSize = flag("batch", 64);
const threads = flag("threads", 1);
const variants = args.filter((a, i) => a.includes("=") && !args[i - 1]?.startsWith("--"));

const imagesDir = path.resolve(process.env.BATCHWISE_IMAGES_DIR ?? path.join("..", "shared", "images"));
const photos = readdirSync(imagesDir).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort();
const tensors = await Promise.all(photos.map((f) => referencePreprocess(readFileSync(path.join(imagesDir, f)))));
const data = new Float32Array(batchSize * IMAGE_VALUES);
for (let i = 0; i < batchSize; i++) data.set(tensors[i % tensors.length], i * IMAGE_VALUES);

interface Variant { name: string; session: ort.InferenceSession; chunk: number; times: number[]; cpu: number[] }
const sessions: Variant[] = [];
for (const spec of variants) {
  const [name, rest] = [spec.slice(0, spec.indexOf("=")), spec.slice(spec.indexOf("=") + 1)];
  const [file, opts = ""] = rest.split(":");
  const o = Object.fromEntries(opts.split(",").filter(Boolean).map((kv) => kv.split("=")));
  const session = await ort.InferenceSession.create(file, {
    executionProviders: ["cpu"],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: (o.level ?? "all") as ort.InferenceSession.SessionOptions["graphOptimizationLevel"],
    enableCpuMemArena: o.arena !== "0",
    enableMemPattern: o.pattern !== "0",
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  });
  sessions.push({ name, session, chunk: o.chunk ? Number(o.chunk) : Infinity, times: [], cpu: [] });
}
// Wall time and this process's CPU time: on a shared machine the wall time includes waiting for a core, while with
// one intra-op thread the whole run executes on the calling thread, so its CPU time is the model's own cost.
const run = async (s: Variant) => {
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  await runChunked(s.session, data, [3, 224, 224], s.chunk);
  const wall = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  s.times.push(wall);
  s.cpu.push((cpu.user + cpu.system) / 1000);
};
for (const s of sessions) for (let i = 0; i < 2; i++) await run(s); // warm-up
for (const s of sessions) (s.times = []), (s.cpu = []);
for (let r = 0; r < rounds; r++) for (const s of sessions) await run(s);
const summary = (values: number[]) => {
  const per = values.map((t) => t / batchSize).sort((a, b) => a - b);
  return `${per[Math.floor(per.length / 2)].toFixed(2)} [${per[0].toFixed(2)}–${per[per.length - 1].toFixed(2)}]`;
};
console.log(`batch ${batchSize}, ${threads} thread(s), ${rounds} rounds interleaved; ms per image, median [min–max]`);
console.log(`${"variant".padEnd(16)} ${"wall".padEnd(20)} cpu`);
for (const s of sessions) console.log(`${s.name.padEnd(16)} ${summary(s.times).padEnd(20)} ${summary(s.cpu)}`);
