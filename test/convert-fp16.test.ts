import { copyFileSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { Device } from "../src/api/model-api.js";
import { ImageClassifierAPI } from "../src/classifier/image-classifier.js";
import { convertedModelFile, convertModel, floatBitsToBfloat16, floatBitsToHalf } from "../src/runtime/convert.js";
import { createSession, ort, settingsFor } from "../src/runtime/onnx.js";
import { decodeModel } from "../src/runtime/onnx-schema.js";
import { image, modelsDir } from "./helpers/paths.js";
import { contiguous } from "../src/runtime/chunked-run.js";
import { normalize } from "../src/classifier/image-preprocess.js";

const cpu: Device = { accelerator: "cpu", index: 0, threads: 2, id: "cpu" };
const dir = path.join(modelsDir, "mobilenetv2-12");
const fp32File = path.join(dir, "mobilenetv2-12-fp32.onnx");
const names = ["darknet_dog.jpg", "pytorchhub_dog.jpg", "imageio_wikkie.png", "skimage_chelsea.png", "skimage_coffee.png"];
let inputs: Float32Array;

async function probabilities(model: string | Uint8Array): Promise<Float32Array> {
  const session = await createSession(model, settingsFor(cpu));
  const out = await session.run({ input: new ort.Tensor("float32", inputs, [names.length, 3, 224, 224]) });
  await session.release();
  const logits = Float32Array.from(out.output.data as Float32Array);
  for (let r = 0; r < names.length; r++) {
    const row = logits.subarray(r * 1000, (r + 1) * 1000);
    const max = Math.max(...row);
    let sum = 0;
    for (let i = 0; i < 1000; i++) sum += row[i] = Math.exp(row[i] - max);
    for (let i = 0; i < 1000; i++) row[i] /= sum;
  }
  return logits;
}

function compare(a: Float32Array, b: Float32Array) {
  let maxDiff = 0;
  let top1Equal = 0;
  for (let r = 0; r < names.length; r++) {
    const rowA = Array.from(a.subarray(r * 1000, (r + 1) * 1000));
    const rowB = Array.from(b.subarray(r * 1000, (r + 1) * 1000));
    if (rowA.indexOf(Math.max(...rowA)) === rowB.indexOf(Math.max(...rowB))) top1Equal++;
    for (let i = 0; i < 1000; i++) maxDiff = Math.max(maxDiff, Math.abs(rowA[i] - rowB[i]));
  }
  return { maxDiff, top1Equal };
}

let reference: Float32Array;

beforeAll(async () => {
  process.env.BATCHWISE_CACHE_DIR = mkdtempSync(path.join(os.tmpdir(), "batchwise-cache-"));
  const api = new ImageClassifierAPI();
  const decoded = await Promise.all(names.map((n) => api.decodeRequest({ image: readFileSync(image(n)).toString("base64") })));
  inputs = contiguous(decoded.map(normalize));
  reference = await probabilities(fp32File);
});

describe("float conversions", () => {
  it("fp16 and bf16 bit patterns round to nearest even", () => {
    const bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];
    expect(floatBitsToHalf(bits(1))).toBe(0x3c00);
    expect(floatBitsToHalf(bits(-2))).toBe(0xc000);
    expect(floatBitsToHalf(bits(65504))).toBe(0x7bff);
    expect(floatBitsToHalf(bits(1e6))).toBe(0x7c00); // overflow → inf
    expect(floatBitsToHalf(bits(5.960464477539063e-8))).toBe(0x0001); // smallest subnormal
    expect(floatBitsToHalf(bits(1 + 2 ** -11))).toBe(0x3c00); // halfway → even
    expect(floatBitsToHalf(bits(1 + 3 * 2 ** -11))).toBe(0x3c02); // halfway → even (up)
    expect(floatBitsToHalf(bits(NaN)) & 0x7e00).toBe(0x7e00);
    expect(floatBitsToBfloat16(bits(1))).toBe(0x3f80);
    expect(floatBitsToBfloat16(bits(1 + 2 ** -8))).toBe(0x3f80); // halfway → even
    expect(floatBitsToBfloat16(bits(1 + 3 * 2 ** -8))).toBe(0x3f82);
    expect(floatBitsToBfloat16(bits(NaN))).toBe(0x7fc0);
  });
});

describe("fp32 → fp16/bf16 conversion of MobileNetV2", () => {
  it("fp16 compute: float32 I/O kept, all weights fp16, top-1 equal to fp32 on all 5 photos, same as the ready fp16 file", async () => {
    const converted = convertModel(readFileSync(fp32File), "fp16", "compute");
    const graph = decodeModel(converted).graph!;
    expect(graph.input![0].type!.tensorType!.elemType).toBe(1);
    expect(graph.output![0].type!.tensorType!.elemType).toBe(1);
    expect(graph.initializer!.filter((t) => t.dataType === 1)).toHaveLength(0);
    const ours = await probabilities(converted);
    const vsFp32 = compare(ours, reference);
    expect(vsFp32.top1Equal).toBe(5);
    expect(vsFp32.maxDiff).toBeLessThan(0.01);
    const ready = await probabilities(path.join(dir, "mobilenetv2-12-fp16.onnx"));
    expect(compare(ours, ready).maxDiff).toBeLessThan(1e-3);
    console.log(`fp16 compute vs fp32: max |Δp| ${vsFp32.maxDiff.toExponential(2)}; vs ready fp16 file ${compare(ours, ready).maxDiff.toExponential(2)}`);
  });

  it("fp16 and bf16 weights mode run on the CPU at half the file size, top-1 equal", async () => {
    for (const target of ["fp16", "bf16"] as const) {
      const converted = convertModel(readFileSync(fp32File), target, "weights");
      expect(converted.length).toBeLessThan(statSync(fp32File).size * 0.55);
      const result = compare(await probabilities(converted), reference);
      expect(result.top1Equal).toBe(5);
      expect(result.maxDiff).toBeLessThan(target === "fp16" ? 0.01 : 0.05);
      console.log(`${target} weights vs fp32: max |Δp| ${result.maxDiff.toExponential(2)}, ${converted.length} bytes`);
    }
  });

  it("bf16 compute converts to opset 22 and fails on the CPU exactly like the ready bf16 file", async () => {
    const converted = convertModel(readFileSync(fp32File), "bf16", "compute");
    const model = decodeModel(converted);
    expect(Number(model.opsetImport![0].version)).toBe(22);
    const ours = await createSession(converted, settingsFor(cpu)).then(() => "ran", (e: Error) => e.message);
    const ready = await createSession(path.join(dir, "mobilenetv2-12-bf16.onnx"), settingsFor(cpu)).then(() => "ran", (e: Error) => e.message);
    expect(ours).toMatch(/Could not find an implementation for Conv\(22\)/);
    expect(ready).toMatch(/Could not find an implementation for Conv\(22\)/);
  });

  it("caches conversions by content hash, next to the model when writable", async () => {
    const writable = mkdtempSync(path.join(os.tmpdir(), "batchwise-model-"));
    const source = path.join(writable, "net-fp32.onnx");
    copyFileSync(fp32File, source);
    const first = await convertedModelFile(source, "fp16", "weights");
    expect(path.dirname(first)).toBe(writable);
    expect(path.basename(first)).toMatch(/^net-fp32\.fp16-weights\.[0-9a-f]{16}\.onnx$/);
    const mtime = statSync(first).mtimeMs;
    expect(await convertedModelFile(source, "fp16", "weights")).toBe(first);
    expect(statSync(first).mtimeMs).toBe(mtime);
    // read-only shared folder → the cache dir
    const cached = await convertedModelFile(fp32File, "fp16", "weights");
    expect(path.dirname(cached)).toBe(process.env.BATCHWISE_CACHE_DIR);
    expect(readdirSync(writable).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("the classifier converts a missing fp16 file at setup (weights mode on the CPU)", async () => {
    const folder = mkdtempSync(path.join(os.tmpdir(), "batchwise-model-"));
    copyFileSync(fp32File, path.join(folder, "mobilenetv2-12-fp32.onnx"));
    copyFileSync(path.join(dir, "imagenet_classes.txt"), path.join(folder, "imagenet_classes.txt"));
    const api = new ImageClassifierAPI({ model: folder, precision: "fp16", labels: "imagenet" });
    await api.setup(cpu, { workerId: 0, maxBatchSize: 1 });
    expect(api.info.precision).toBe("fp16");
    expect(String(api.info.file)).toMatch(/fp16-weights\.[0-9a-f]{16}\.onnx$/);
    const input = await api.decodeRequest({ image: readFileSync(image("darknet_dog.jpg")).toString("base64") });
    expect(api.unbatch(await api.predict(api.batch([input])))[0][0].label).toBe("malamute");
  });
});
