import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { Device } from "../src/api/model-api.js";
import { ImageClassifierAPI } from "../src/classifier/image-classifier.js";
import { normalize } from "../src/classifier/image-preprocess.js";
import { compareProbabilities, MAX_PROBABILITY_DIFFERENCE } from "../src/runtime/accuracy-guard.js";
import { contiguous } from "../src/runtime/chunked-run.js";
import { cpuFeatures } from "../src/runtime/cpu-features.js";
import { settingsFor, type Session } from "../src/runtime/onnx.js";
import { openModel } from "../src/runtime/precision.js";
import { quantizeModel } from "../src/runtime/quantize.js";
import { calibrate } from "../src/runtime/quantize-calibrate.js";
import { image, modelsDir } from "./helpers/paths.js";

const cpu: Device = { accelerator: "cpu", index: 0, threads: 1, id: "cpu" };
const names = ["darknet_dog.jpg", "pytorchhub_dog.jpg", "imageio_wikkie.png", "skimage_chelsea.png", "skimage_coffee.png"];
const fp32File = path.join(modelsDir, "mobilenetv2-12", "mobilenetv2-12-fp32.onnx");
const canDot = cpuFeatures().int8DotProduct;

beforeAll(() => {
  // the shared models folder is read-only: a model batchwise quantizes itself goes to a cache dir
  process.env.BATCHWISE_CACHE_DIR = mkdtempSync(path.join(os.tmpdir(), "batchwise-cache-"));
});

async function served(precision: "auto" | "int8", model?: string) {
  const api = new ImageClassifierAPI({ precision, ...(model ? { model } : { labels: "imagenet" }) });
  await api.setup(cpu, { workerId: 0, maxBatchSize: 8 });
  return api;
}

async function top1(api: ImageClassifierAPI): Promise<string[]> {
  const inputs = await Promise.all(names.map((n) => api.decodeRequest({ image: readFileSync(image(n)).toString("base64") })));
  return api.unbatch(await api.predict(inputs)).map((row) => row[0].label);
}

describe("accuracy guard", () => {
  it("compares top-1 and the largest probability difference", () => {
    const ref = Float32Array.from([0.7, 0.2, 0.1, 0.1, 0.1, 0.8]);
    expect(compareProbabilities(ref, ref, 3, "2 rows").ok).toBe(true);
    const shifted = compareProbabilities(ref, Float32Array.from([0.64, 0.26, 0.1, 0.1, 0.1, 0.8]), 3, "2 rows");
    expect(shifted).toMatchObject({ ok: false, sameTop1: 2 });
    expect(shifted.summary).toBe(`top-1 2/2, max |Δp| 0.060 > ${MAX_PROBABILITY_DIFFERENCE} vs fp32 on 2 rows`);
    expect(compareProbabilities(ref, Float32Array.from([0.3, 0.69, 0.01, 0.1, 0.1, 0.8]), 3, "2 rows").sameTop1).toBe(1);
  });

  it("auto serves int8 only where the CPU has int8 dot products, and then one that answers like fp32", async () => {
    const [auto, reference] = [await served("auto"), new ImageClassifierAPI({ precision: "fp32", labels: "imagenet" })];
    await reference.setup(cpu, { workerId: 0, maxBatchSize: 8 });
    expect(auto.info.precision).toBe(canDot ? "int8" : "fp32");
    expect(auto.info.precisionReason).toMatch(canDot ? /dot-product instructions.*accuracy check|passed|quantized/ : /no int8 dot-product instructions/);
    expect(await top1(auto)).toEqual(await top1(reference));
  }, 60_000);

  it("an explicit int8 runs on any CPU, as the folder's file or batchwise's own quantized model, whichever answers like fp32", async () => {
    const api = await served("int8");
    expect(api.info.precision).toBe("int8");
    expect(api.info.precisionWarning).toBeUndefined();
    expect(api.info.precisionReason).toMatch(/accuracy check/);
    const reference = new ImageClassifierAPI({ precision: "fp32", labels: "imagenet" });
    await reference.setup(cpu, { workerId: 0, maxBatchSize: 8 });
    expect(await top1(api)).toEqual(await top1(reference));
  }, 60_000);

  /** A model folder with the fp32 file and an int8 file whose activation ranges are a twentieth of the real ones. */
  async function brokenFolder(withPhotos: boolean): Promise<string> {
    const dir = mkdtempSync(path.join(os.tmpdir(), "batchwise-broken-"));
    copyFileSync(fp32File, path.join(dir, "net-fp32.onnx"));
    const fp32 = readFileSync(fp32File);
    const api = new ImageClassifierAPI();
    const photos = await Promise.all(names.map((n) => api.decodeRequest({ image: readFileSync(image(n)).toString("base64") })));
    const ranges = await calibrate(fp32, [{ data: contiguous(photos.map(normalize)), dims: [names.length, 3, 224, 224] }]);
    for (const [name, r] of ranges) ranges.set(name, { min: r.min / 20, max: r.max / 20 });
    writeFileSync(path.join(dir, "net-int8.onnx"), quantizeModel(fp32, ranges));
    if (withPhotos) {
      mkdirSync(path.join(dir, "calibration"));
      for (const n of names) copyFileSync(image(n), path.join(dir, "calibration", n));
    }
    return dir;
  }

  it("an int8 file that answers differently is replaced by batchwise's own int8 model, checked on the folder's photos", async () => {
    const dir = await brokenFolder(true);
    const auto = await served("auto", dir);
    expect(auto.info.precision).toBe(canDot ? "int8" : "fp32");
    if (canDot) expect(auto.info.precisionReason).toMatch(/net-int8.onnx failed the accuracy check \(.*5 photos in calibration\/\), so batchwise quantized net-fp32.onnx itself/);
    else expect(auto.info.precisionReason).toMatch(/no int8 dot-product/);
    const explicit = await served("int8", dir);
    expect(explicit.info).toMatchObject({ precision: "int8", precisionWarning: undefined });
    expect(explicit.info.file).toMatch(/^net-fp32\.qdq-reduced-int8\.[0-9a-f]+\.onnx$/);
  }, 90_000);

  it("without sample photos nothing is checked, and the reason says so", async () => {
    const auto = await served("auto", await brokenFolder(false));
    expect(auto.info.precision).toBe(canDot ? "int8" : "fp32");
    if (canDot) expect(auto.info.precisionReason).toMatch(/not checked against fp32: no sample photos/);
  }, 60_000);

  it("a reduced precision that fails the check and cannot be rebuilt: auto serves fp32, an explicit one runs with a warning", async () => {
    // a guard under which every model but the first one it sees (fp32, the reference) answers differently
    const dir = path.join(modelsDir, "mobilenetv2-12");
    const guardFor = () => {
      let reference: Session | undefined;
      return {
        classes: 2,
        inputs: "2 rows",
        probabilities: async (session: Session) => {
          reference ??= session;
          return Float32Array.from(session === reference ? [0.9, 0.1, 0.2, 0.8] : [0.1, 0.9, 0.8, 0.2]);
        },
      };
    };
    const open = (precision: "auto" | "int8" | "fp16") =>
      openModel({ dir, precision, settings: settingsFor(cpu), check: async () => {}, guard: guardFor() });
    const requested = await open("fp16");
    expect(requested.precision).toBe("fp16");
    expect(requested.warning).toMatch(/--precision fp16 runs as requested, but .* failed the accuracy check \(top-1 0\/2/);
    await requested.session.release();
    const auto = await open("auto");
    expect(auto.precision).toBe("fp32");
    if (canDot) expect(auto.reason).toMatch(/^fp32: mobilenetv2-12-int8.onnx failed the accuracy check/);
    await auto.session.release();
  }, 60_000);
});
