import type { Precision } from "../../api/model-api.js";
import { resolveModel } from "../../runtime/models.js";
import { createSession, ort, settingsFor } from "../../runtime/onnx.js";
import { servedModel } from "../servers/serving-config.js";
import { listVariants } from "../../runtime/precision.js";
import { availableCores } from "../../runtime/device.js";
import { msSince, summarize } from "../load/stats.js";

/**
 * The model's raw throughput: onnxruntime on random input, no HTTP, no image decoding, no batching queue. This is the
 * ceiling every served number is compared with; the gap between the two is what the serving stack costs.
 */

export interface BaselineOptions {
  /** A model id (a folder under BATCHWISE_MODELS_DIR) or a path to a folder or .onnx file. Default "mobilenetv2-12". */
  model?: string;
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

export const DEFAULT_BASELINE_MODEL = "mobilenetv2-12";

/** The .onnx file the served classifier runs at a precision (servedModel: the accuracy guard may pick another). */
export async function modelFile(model: string, precision: Precision): Promise<string> {
  return (await servedModel(model, precision)).file;
}

export async function runBaseline(options: BaselineOptions = {}): Promise<BaselineReport> {
  const precision = options.precision ?? "fp32";
  const modelPath = await modelFile(options.model ?? DEFAULT_BASELINE_MODEL, precision);
  const threads = options.threads ?? availableCores();
  // The session a served worker with this many threads gets (same factory, same thread and spin-wait settings), so
  // the baseline is the ceiling of exactly that worker.
  const session = await createSession(modelPath, settingsFor({ accelerator: "cpu", index: 0, threads, id: "cpu" }));
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
