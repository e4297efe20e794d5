import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { Device } from "../src/api/model-api.js";
import { ImageClassifierAPI } from "../src/classifier/image-classifier.js";
import { settingsFor, ort, type Session } from "../src/runtime/onnx.js";
import { listVariants, openModel, pickAutoPrecision, PrecisionUnsupportedError } from "../src/runtime/precision.js";
import { modelsDir } from "./helpers/paths.js";
import { parseCpuInfo } from "../src/runtime/cpu-features.js";
import { readFileSync } from "node:fs";

const cpuSample = (name: string, arch = "x64") => parseCpuInfo(readFileSync(path.join("test/fixtures/cpuinfo", `${name}.txt`), "utf8"), arch, 2);

const cpu: Device = { accelerator: "cpu", index: 0, threads: 2, id: "cpu" };
const dir = path.join(modelsDir, "mobilenetv2-12");
const check = async (session: Session) => {
  await session.run({ input: new ort.Tensor("float32", new Float32Array(3 * 224 * 224), [1, 3, 224, 224]) });
};

beforeAll(() => {
  // the shared models folder is read-only: conversions go to a cache dir
  process.env.BATCHWISE_CACHE_DIR = mkdtempSync(path.join(os.tmpdir(), "batchwise-cache-"));
});

describe("precision variants", () => {
  it("finds <id>-<precision>.onnx files", () => {
    const variants = listVariants(dir);
    expect(Object.keys(variants).sort()).toEqual(["bf16", "fp16", "fp32", "int8"]);
    expect(path.basename(variants.int8!)).toBe("mobilenetv2-12-int8.onnx");
  });

  it("a folder with only model.onnx is fp32", () => {
    expect(listVariants(path.join(modelsDir, "mobilenetv2-12-int8-hf", "onnx"))).toEqual({
      fp32: path.join(modelsDir, "mobilenetv2-12-int8-hf", "onnx", "model.onnx"),
    });
  });

  it("auto picks int8 only on CPUs with int8 dot products, fp16 on GPUs, and says why", () => {
    const all = ["fp32", "fp16", "bf16", "int8"] as const;
    for (const [name, arch, expected] of [
      ["amd-epyc-zen2", "x64", "fp32"],
      ["amd-epyc-zen5", "x64", "int8"],
      ["intel-icelake", "x64", "int8"],
      ["intel-sapphire-rapids", "x64", "int8"],
      ["aws-graviton1", "arm64", "fp32"],
      ["aws-graviton3", "arm64", "int8"],
    ] as const) {
      const decision = pickAutoPrecision("cpu", all, cpuSample(name, arch));
      expect(decision.precision, name).toBe(expected);
      expect(decision.reason, name).toMatch(expected === "int8" ? /has int8 dot-product instructions/ : /no int8 dot-product instructions/);
    }
    expect(pickAutoPrecision("cpu", ["fp32", "fp16"], cpuSample("amd-epyc-zen5")).precision).toBe("fp32");
    expect(pickAutoPrecision("cuda", ["fp32", "fp16", "int8"]).precision).toBe("fp16");
    expect(pickAutoPrecision("webgpu", ["fp32", "int8"]).precision).toBe("fp32");
  });

  it("bf16 on the CPU fails setup fast, naming provider, precision, missing kernel and what runs", async () => {
    const api = new ImageClassifierAPI({ precision: "bf16" });
    const error = await api.setup(cpu, { workerId: 0, maxBatchSize: 1 }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(PrecisionUnsupportedError);
    const message = (error as Error).message;
    expect(message).toMatch(/Precision bf16 cannot run on CPUExecutionProvider/);
    expect(message).toMatch(/Could not find an implementation for Conv\(22\)/);
    expect(message).toMatch(/This machine can run: fp32, fp16, int8/);
  });

  it("an explicit .onnx file and a missing int8 variant", async () => {
    const single = await openModel({ dir, file: path.join(dir, "mobilenetv2-12-fp32.onnx"), precision: "auto", settings: settingsFor(cpu), check });
    expect(single.precision).toBe("fp32");
    await single.session.release();
    const hf = path.join(modelsDir, "mobilenetv2-12-int8-hf", "onnx");
    await expect(openModel({ dir: hf, precision: "int8", settings: settingsFor(cpu), check })).rejects.toThrow(/No int8 model .*quantized/);
  });
});
