/**
 * Calibration for static quantization: run the fp32 model on sample inputs with every float activation exposed as
 * a graph output, and record each tensor's min and max (the MinMax method of onnxruntime's Python quantizer).
 *
 * The inputs are what the model will serve (the classifier's sample photos, preprocessed the way requests are):
 * ranges from random data would waste most of the int8 steps on values real images never reach.
 */
import { decodeModel, encodeModel, DataType } from "./onnx-schema.js";
import { ort } from "./onnx.js";
import type { Range } from "./quantize.js";

/** Ops whose output 0 has the type of their input 0 (so it is a float activation when that input is one). */
const SAME_TYPE_OPS = new Set([
  "Conv", "Clip", "Relu", "Add", "Mul", "GlobalAveragePool", "AveragePool", "MaxPool", "Gemm", "MatMul",
  "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Gather", "Identity",
]);

export interface CalibrationBatch {
  /** Input values, NCHW (or whatever the model's first input takes). */
  data: Float32Array;
  dims: number[];
}

/**
 * Min/max of the model's first input and of every float activation, over all batches.
 * @example
 * ```ts
 * const ranges = await calibrate(readFileSync("net-fp32.onnx"), [{ data, dims: [5, 3, 224, 224] }]);
 * ```
 */
export async function calibrate(bytes: Uint8Array, batches: readonly CalibrationBatch[]): Promise<Map<string, Range>> {
  if (batches.length === 0) throw new Error("Calibration needs at least one input batch");
  const model = decodeModel(bytes);
  const graph = model.graph!;
  const existing = new Set((graph.output ?? []).map((o) => o.name!));
  const float = new Set<string>();
  for (const t of graph.initializer ?? []) if (t.dataType === DataType.FLOAT) float.add(t.name!);
  for (const i of graph.input ?? []) if (i.type?.tensorType?.elemType === DataType.FLOAT) float.add(i.name!);
  const observed: string[] = [];
  for (const node of graph.node ?? []) {
    const out = node.output?.[0];
    if (!out || !SAME_TYPE_OPS.has(node.opType!) || !float.has(node.input?.[0] ?? "")) continue;
    float.add(out);
    if (existing.has(out)) continue;
    observed.push(out);
    graph.output = [...(graph.output ?? []), { name: out, type: { tensorType: { elemType: DataType.FLOAT } } }];
  }
  // no graph optimisation: fused ops would hide the intermediate tensors being observed
  const session = await ort.InferenceSession.create(encodeModel(model), {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "disabled",
    intraOpNumThreads: 1,
  });
  const ranges = new Map<string, Range>();
  const widen = (name: string, values: Float32Array) => {
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const seen = ranges.get(name);
    ranges.set(name, { min: Math.min(min, seen?.min ?? Infinity), max: Math.max(max, seen?.max ?? -Infinity) });
  };
  try {
    const inputName = session.inputNames[0];
    for (const batch of batches) {
      const outputs = await session.run({ [inputName]: new ort.Tensor("float32", batch.data, batch.dims) });
      widen(inputName, batch.data);
      for (const name of [...observed, ...existing]) {
        const tensor = outputs[name];
        if (tensor?.type === "float32") widen(name, tensor.data as Float32Array);
      }
    }
  } finally {
    await session.release();
  }
  return ranges;
}
