import path from "node:path";
import * as ort from "onnxruntime-node";
import type { Precision } from "../api.js";
import { msSince, summarize } from "./stats.js";

/**
 * The model's raw throughput: onnxruntime on random input, no HTTP, no image decoding, no batching queue. This is the
 * ceiling every served number is compared with; the gap between the two is what the serving stack costs.
 */

export interface BaselineOptions {
  /** An .onnx file. Default: `<BATCHWISE_MODELS_DIR>/mobilenetv2-12/mobilenetv2-12-<precision>.onnx`. */
  modelPath?: string;
  precision?: Precision;
  /** Intra-op threads (a served worker gets cores / workers). Default: all available cores. */
  threads?: number;
  batchSizes?: number[];
  /** Untimed runs per batch size first: the first runs allocate arenas and pick kernels. */
  warmupRuns?: number;
  /** Timed runs per batch size. */
  runs?: number;
  /** Called after each batch size, for progress output. */
  onResult?: (result: BaselineResult) => void;
}

export interface BaselineResult {
  batchSize: number;
  runs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** Interquartile range of run times: how stable the measurement was. */
  iqrMs: number;
  /** batchSize / median run time. */
  imagesPerSecond: number;
}

export interface BaselineReport {
  model: string;
  precision: Precision;
  threads: number;
  results: BaselineResult[];
}

export const DEFAULT_BATCH_SIZES = [1, 8, 32, 64];

/** Where the seed's ImageNet MobileNetV2 lives for a precision, under BATCHWISE_MODELS_DIR (default data/models). */
export function mobilenetPath(precision: Precision): string {
  const modelsDir = process.env.BATCHWISE_MODELS_DIR ?? path.join("data", "models");
  return path.resolve(modelsDir, "mobilenetv2-12", `mobilenetv2-12-${precision}.onnx`);
}

export async function runBaseline(options: BaselineOptions = {}): Promise<BaselineReport> {
  const precision = options.precision ?? "fp32";
  const modelPath = options.modelPath ?? mobilenetPath(precision);
  const threads = options.threads ?? defaultThreads();
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    // Same as a served worker: no spin-waiting, so this number is comparable with the served one on shared cores.
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  });
  try {
    const [inputName] = session.inputNames;
    const [outputName] = session.outputNames;
    const results: BaselineResult[] = [];
    for (const batchSize of options.batchSizes ?? DEFAULT_BATCH_SIZES) {
      const input = randomImages(batchSize);
      const runOnce = async () => {
        const outputs = await session.run({ [inputName]: input });
        outputs[outputName].dispose();
      };
      for (let i = 0; i < (options.warmupRuns ?? 3); i++) await runOnce();
      const times: number[] = [];
      for (let i = 0; i < (options.runs ?? 10); i++) {
        const start = process.hrtime.bigint();
        await runOnce();
        times.push(msSince(start));
      }
      input.dispose();
      const s = summarize(times);
      const result = {
        batchSize,
        runs: s.count,
        medianMs: s.p50,
        minMs: s.min,
        maxMs: s.max,
        iqrMs: s.iqr,
        imagesPerSecond: (batchSize * 1000) / s.p50,
      };
      results.push(result);
      options.onResult?.(result);
    }
    return { model: modelPath, precision, threads, results };
  } finally {
    await session.release();
  }
}

/** Normalised-looking random pixels in [-2, 2]: the values a preprocessed photo has, so no kernel takes a fast path. */
function randomImages(batchSize: number): ort.Tensor {
  const data = new Float32Array(batchSize * 3 * 224 * 224);
  for (let i = 0; i < data.length; i++) data[i] = Math.random() * 4 - 2;
  return new ort.Tensor("float32", data, [batchSize, 3, 224, 224]);
}

function defaultThreads(): number {
  return Math.max(1, (globalThis as any).navigator?.hardwareConcurrency ?? 1);
}
