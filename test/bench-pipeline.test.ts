import { describe, expect, it } from "vitest";
import { imageClassifier } from "../src/classifier/image-classifier.js";
import { runBaseline } from "../src/bench/runs/baseline.js";
import { imageBodies, listImages } from "../src/bench/load/load.js";
import { runPipeline } from "../src/bench/runs/pipeline.js";
import { noopApi } from "./fixtures/noop-api.js";
import { imagesDir } from "./helpers/paths.js";

describe("bench pipeline (in-process, the server's WorkerPool)", () => {
  it("pushes every item through decode → worker batches → encode", async () => {
    const report = await runPipeline({ source: noopApi(), requests: [{ x: 1 }, { x: 2 }], batchSize: 8, workers: 2, images: 500 });
    expect(report.failures).toBe(0);
    expect(report.images).toBe(500);
    expect(report.workers).toBe(2);
    expect(report.imagesPerSecond).toBeGreaterThan(0);
  });

  it("classifies the real photos with the real model on 2 workers", async () => {
    const requests = (await imageBodies(await listImages(imagesDir))).map((b) => JSON.parse(b.toString()) as unknown);
    const report = await runPipeline({ source: imageClassifier({ precision: "int8" }), requests, batchSize: 4, workers: 2, images: 20, decodeSamples: 5, warmupImages: 8 });
    expect(report.failures).toBe(0);
    expect(report.imagesPerSecond).toBeGreaterThan(0);
    expect(report.decodeMsPerImage).toBeGreaterThan(0);
    expect(report.threadsPerWorker).toBeGreaterThanOrEqual(1);
  });

  it("rejects a batch size or worker count that is not a positive integer", async () => {
    await expect(runPipeline({ source: noopApi(), requests: [{}], batchSize: 0 })).rejects.toThrow(RangeError);
    await expect(runPipeline({ source: noopApi(), requests: [{}], batchSize: 1, workers: 1.5 })).rejects.toThrow(RangeError);
  });
});

describe("bench baseline", () => {
  it("times the raw model per batch size and reports images/s = batch / median", async () => {
    const report = await runBaseline({ precision: "int8", threads: 1, batchSizes: [1, 4], runs: 3, warmupRuns: 1 });
    // the int8 file the server would serve: the folder's, or batchwise's own quantized one where that failed the guard
    expect(report.model).toMatch(/mobilenetv2-12-int8\.onnx$|mobilenetv2-12-fp32\.qdq-reduced-int8\.[0-9a-f]+\.onnx$/);
    expect(report.results.map((r) => r.batchSize)).toEqual([1, 4]);
    for (const r of report.results) {
      expect(r.runs).toBe(3);
      expect(r.minMs).toBeLessThanOrEqual(r.medianMs);
      expect(r.medianMs).toBeLessThanOrEqual(r.maxMs);
      expect(r.imagesPerSecond).toBeCloseTo((r.batchSize * 1000) / r.medianMs, 6);
    }
  });

  it("names the missing precision variant clearly", async () => {
    await expect(runBaseline({ model: "tiny-random-llama", precision: "int8", batchSizes: [1], runs: 1 })).rejects.toThrow(/No \.onnx model file in .*tiny-random-llama/);
  });
});
