import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Device } from "../src/api/model-api.js";
import { ImageClassifierAPI } from "../src/classifier/image-classifier.js";
import { normalize, normalizeInto } from "../src/classifier/image-preprocess.js";
import { contiguous, runChunked } from "../src/runtime/chunked-run.js";
import { createSession, settingsFor, type Session } from "../src/runtime/onnx.js";
import { preferredPrecisions } from "../src/runtime/precision.js";
import { image, modelsDir } from "./helpers/paths.js";

const cpu: Device = { accelerator: "cpu", index: 0, threads: 1, id: "cpu" };
/** Float sums in another order (another batch size, another chunk) may differ in the last bits, no more. */
const BATCH_TOLERANCE = 1e-4;
const names = ["darknet_dog.jpg", "pytorchhub_dog.jpg", "imageio_wikkie.png", "skimage_chelsea.png", "skimage_coffee.png"];
const dims = [3, 224, 224];
let inputs: Float32Array;
let images: Uint8Array[];
const sessions: Session[] = [];

beforeAll(async () => {
  const api = new ImageClassifierAPI();
  const decoded = await Promise.all(names.map((n) => api.decodeRequest({ image: readFileSync(image(n)).toString("base64") })));
  images = decoded;
  inputs = contiguous(decoded.map(normalize));
});
afterAll(async () => {
  for (const s of sessions) await s.release();
});

describe("runChunked", () => {
  // fp32 kernels give the same answer on every x86-64 CPU; which int8 model runs is the server's choice, checked below
  for (const precision of ["fp32"]) {
    it(`gives the same logits in sub-batches as in one run (${precision}, uneven last chunk)`, async () => {
      const session = await createSession(path.join(modelsDir, "mobilenetv2-12", `mobilenetv2-12-${precision}.onnx`), settingsFor(cpu));
      sessions.push(session);
      const whole = Float32Array.from(await runChunked(session, inputs, dims, Infinity));
      const chunked = await runChunked(session, inputs, dims, 2);
      expect(whole).toHaveLength(names.length * 1000);
      expect(chunked).toHaveLength(names.length * 1000);
      let maxDiff = 0;
      for (let i = 0; i < whole.length; i++) maxDiff = Math.max(maxDiff, Math.abs(whole[i] - chunked[i]));
      expect(maxDiff).toBeLessThan(1e-3);
      // row 4 (coffee) came from the last, single-item chunk: its top class is still espresso (967)
      const row = Array.from(chunked.subarray(4000, 5000));
      expect(row.indexOf(Math.max(...row))).toBe(967);
      // One array of 8-bit levels per image (the classifier's batch): normalised a chunk at a time into the session's
      // reused buffer. Run twice in different orders, so a buffer left over from the last call cannot pass for this
      // one's input.
      const reversed = await runChunked(session, [...images].reverse(), dims, 2, normalizeInto);
      const listed = await runChunked(session, images, dims, 2, normalizeInto);
      expect(Array.from(listed)).toEqual(Array.from(chunked));
      expect(Array.from(reversed.subarray(0, 1000))).toEqual(Array.from(chunked.subarray(4000, 5000)));
    });
  }

  // An answer must not depend on which other requests shared its batch: for each precision `auto` can pick on this
  // CPU (int8 only with int8 dot products), through the model the classifier really opens (accuracy guard included).
  for (const precision of preferredPrecisions("cpu")) {
    it(`serves the same probabilities to an image alone and in any batch (${precision}, |Δp| ≤ ${BATCH_TOLERANCE})`, async () => {
      const api = new ImageClassifierAPI({ precision, labels: "imagenet" });
      await api.setup(cpu, { workerId: 0, maxBatchSize: 64 });
      expect(api.info.precision).toBe(precision);
      const together = await api.predict(images);
      const reversed = await api.predict([...images].reverse());
      // a batch of 11 runs as chunks of 8 + 3: each photo lands in another chunk position than alone or in the 5
      const padded = await api.predict([...images, ...images, images[0]]);
      let maxDiff = 0;
      for (const [i, one] of images.entries()) {
        const alone = await api.predict([one]);
        for (const [batch, row] of [[together, i], [reversed, images.length - 1 - i], [padded, i + images.length]] as const) {
          for (let k = 0; k < 1000; k++) maxDiff = Math.max(maxDiff, Math.abs(batch[row * 1000 + k] - alone[k]));
        }
      }
      expect(maxDiff).toBeLessThanOrEqual(BATCH_TOLERANCE);
    }, 60_000);
  }

  it("refuses a chunk size that is not a positive integer, and data that does not match the count", async () => {
    const session = sessions[0];
    await expect(runChunked(session, inputs, dims, 0)).rejects.toThrow(/chunkSize/);
    await expect(runChunked(session, inputs, dims, 2.5)).rejects.toThrow(/chunkSize/);
    await expect(runChunked(session, inputs.subarray(1), dims, 2)).rejects.toThrow(/multiple of 150528/);
    await expect(runChunked(session, [inputs.subarray(0, 150528), inputs.subarray(1)], dims, 2)).rejects.toThrow(/for item 1/);
  });
});
