import { readFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { Device } from "../src/api/model-api.js";
import { ImageClassifierAPI } from "../src/classifier/image-classifier.js";
import { softmaxRows } from "../src/classifier/labels.js";
import { createSession, ort, settingsFor } from "../src/runtime/onnx.js";
import { DataType, decodeModel } from "../src/runtime/onnx-schema.js";
import { activationParams, quantizeModel, QuantizationError } from "../src/runtime/quantize.js";
import { calibrate } from "../src/runtime/quantize-calibrate.js";
import { image, modelsDir } from "./helpers/paths.js";
import { cpuFeatures } from "../src/runtime/cpu-features.js";
import { contiguous } from "../src/runtime/chunked-run.js";
import { normalize } from "../src/classifier/image-preprocess.js";

const cpu: Device = { accelerator: "cpu", index: 0, threads: 1, id: "cpu" };
const fp32File = path.join(modelsDir, "mobilenetv2-12", "mobilenetv2-12-fp32.onnx");
const names = ["darknet_dog.jpg", "pytorchhub_dog.jpg", "imageio_wikkie.png", "skimage_chelsea.png", "skimage_coffee.png"];
let inputs: Float32Array;
let fp32: Uint8Array;

async function probabilities(model: Uint8Array): Promise<Float32Array> {
  const session = await createSession(model, settingsFor(cpu));
  const out = await session.run({ input: new ort.Tensor("float32", inputs, [names.length, 3, 224, 224]) });
  await session.release();
  return softmaxRows(out.output.data as Float32Array, 1000);
}

const argmax = (row: Float32Array) => row.indexOf(Math.max(...row));

beforeAll(async () => {
  // the photos preprocessed exactly as the served classifier does it
  const api = new ImageClassifierAPI();
  const decoded = await Promise.all(names.map((n) => api.decodeRequest({ image: readFileSync(image(n)).toString("base64") })));
  inputs = contiguous(decoded.map(normalize));
  fp32 = readFileSync(fp32File);
});

describe("QDQ int8 quantization", () => {
  const compareWithFp32 = async (quantized: Uint8Array) => {
    const reference = await probabilities(fp32);
    const int8 = await probabilities(quantized);
    let maxDiff = 0;
    const top1Same: boolean[] = [];
    for (let r = 0; r < names.length; r++) {
      const a = reference.subarray(r * 1000, (r + 1) * 1000);
      const b = int8.subarray(r * 1000, (r + 1) * 1000);
      top1Same.push(argmax(b) === argmax(a));
      for (let i = 0; i < 1000; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    }
    return { top1Same, maxDiff };
  };

  it("quantizes MobileNetV2 from fp32 with 7-bit weights: top-1 equal to fp32 on every photo and |Δp| ≤ 0.05, on any x86-64 CPU", async () => {
    const ranges = await calibrate(fp32, [{ data: inputs, dims: [names.length, 3, 224, 224] }]);
    const quantized = quantizeModel(fp32, ranges, { reduceRange: true });
    const graph = decodeModel(quantized).graph!;
    const convs = graph.node!.filter((n) => n.opType === "Conv");
    const int8Weights = new Map(graph.initializer!.filter((t) => t.dataType === DataType.INT8 && (t.dims ?? []).length === 4).map((t) => [t.name, t]));
    // every Conv reads a dequantized int8 weight, and the file is about a quarter of the fp32 one
    expect(convs).toHaveLength(52);
    for (const conv of convs) expect(int8Weights.has(`${conv.input![1]}__int8`)).toBe(true);
    expect(graph.initializer!.some((t) => t.dataType === DataType.FLOAT && (t.dims ?? []).length === 4)).toBe(false);
    expect(quantized.length).toBeLessThan(fp32.length * 0.3);
    // 7-bit weights where the kernels may pair products into 16-bit sums; depthwise convolutions keep 8 bits
    for (const conv of convs) {
      const weight = int8Weights.get(`${conv.input![1]}__int8`)!;
      const values = new Int8Array(weight.rawData!.buffer, weight.rawData!.byteOffset, weight.rawData!.byteLength);
      const depthwise = Number((weight.dims ?? [])[1]) === 1 && (conv.attribute ?? []).some((a) => a.name === "group" && Number(a.i) > 1);
      const largest = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(largest, conv.name!).toBeLessThanOrEqual(depthwise ? 127 : 63);
    }
    const { top1Same, maxDiff } = await compareWithFp32(quantized);
    expect(top1Same).toEqual(names.map(() => true));
    expect(maxDiff).toBeGreaterThan(0);
    expect(maxDiff).toBeLessThanOrEqual(0.05);
  });

  it("with full 8-bit weights: close to fp32 where the CPU has int8 dot products, refused by the accuracy guard where it has not", async () => {
    const quantized = quantizeModel(fp32, await calibrate(fp32, [{ data: inputs, dims: [names.length, 3, 224, 224] }]));
    const { top1Same, maxDiff } = await compareWithFp32(quantized);
    if (cpuFeatures().int8DotProduct) {
      // VNNI/AMX accumulate in 32 bits: the only error is the quantization's own
      expect(top1Same).toEqual(names.map(() => true));
      expect(maxDiff).toBeLessThan(0.1);
    } else {
      // AVX2's u8·s8 pairs saturate 16-bit sums (measured under qemu -cpu Haswell: max |Δp| 0.31)
      expect(maxDiff).toBeGreaterThan(0.05);
    }
  });

  it("calibration records every activation the quantizer needs, and a missing one is an error", async () => {
    const ranges = await calibrate(fp32, [{ data: inputs.subarray(0, 3 * 224 * 224), dims: [1, 3, 224, 224] }]);
    expect(ranges.get("input")!.min).toBeLessThan(0);
    ranges.delete("input");
    expect(() => quantizeModel(fp32, ranges)).toThrow(QuantizationError);
    expect(() => quantizeModel(fp32, ranges)).toThrow(/No calibrated range for tensor input/);
  });

  it("represents zero exactly and keeps the whole range", () => {
    const { scale, zeroPoint } = activationParams({ min: -1, max: 3 });
    expect(zeroPoint).toBe(64);
    expect((0 - zeroPoint) * scale).toBeCloseTo(-1, 1);
    expect((255 - zeroPoint) * scale).toBeCloseTo(3, 1);
    // a range that does not reach 0 is widened to it (ReLU outputs, padding)
    expect(activationParams({ min: 0.5, max: 2 }).zeroPoint).toBe(0);
    expect(activationParams({ min: -4, max: -1 }).zeroPoint).toBe(255);
    expect(() => activationParams({ min: -Infinity, max: 1 })).toThrow(QuantizationError);
  });
});
