/**
 * fp32 → int8 static quantization of ONNX graphs in QDQ form, in TypeScript (no Python toolchain).
 *
 * The output is the fp32 graph with QuantizeLinear → DequantizeLinear pairs on the activations that quantized ops
 * read or write (uint8, asymmetric, per tensor: the u8×s8 form x86 VNNI kernels take), and DequantizeLinear on their
 * weights (signed int8, symmetric, one scale per output channel) and biases (int32 at scale input × weight).
 * onnxruntime fuses each DQ → op → Q group into its integer kernel (QLinearConv, QLinearAdd, QGemm) at session
 * creation. Activation ranges come from calibration on sample inputs (quantize-calibrate.ts).
 *
 * What it buys, measured on MobileNetV2-12 (this 2-core Zen 5, onnxruntime-node 1.30, README "Performance"): the
 * same speed as the ONNX Model Zoo int8 file — onnxruntime builds the same QLinearConv kernels from either — and half
 * its error against fp32 (max |Δp| over the sample photos 0.051 vs 0.106), from a model the project can rebuild.
 * Keeping the depthwise convolutions in fp32 does not help: their fp32 NCHWc kernel is no faster than the uint8 one
 * here, and onnxruntime's WeightBiasQuantization pass re-quantizes an fp32 Conv that sits between DQ and Q anyway.
 * int8 activations measured slower (onnxruntime's AVX2 depthwise kernel takes uint8 inputs only).
 */
import { raiseOpset } from "./convert.js";
import { AttributeType, DataType, decodeModel, encodeModel, toNumber, type GraphProto, type NodeProto, type TensorProto } from "./onnx-schema.js";

/** Op kinds the quantizer handles; the rest of the graph stays as it is. */
type QuantizableKind = "depthwise" | "pointwise" | "conv" | "add" | "pool" | "gemm";

/** Observed value range of a tensor (calibration output). */
export interface Range {
  min: number;
  max: number;
}

export class QuantizationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QuantizationError";
  }
}

/** Bump when the quantizer's output changes, so cached files are rebuilt. */
export const QUANTIZER_VERSION = 2;

export interface QuantizeOptions {
  /**
   * 7-bit weights (−63…63) instead of 8-bit. x86 CPUs without VNNI (AVX2 only) multiply u8 activations by s8
   * weights with an instruction that adds each pair of products into a saturating 16-bit sum: 255 × 127 × 2
   * overflows it, 255 × 63 × 2 does not. VNNI, AMX and ARM dotprod accumulate in 32 bits and need no such care.
   */
  reduceRange?: boolean;
}

/**
 * Quantize an fp32 model's bytes given the calibrated range of every activation the quantized ops touch.
 * @example
 * ```ts
 * const ranges = await calibrate(fp32Bytes, [{ data: photos, dims: [5, 3, 224, 224] }]);
 * writeFileSync("net-qdq-int8.onnx", quantizeModel(fp32Bytes, ranges));
 * ```
 */
export function quantizeModel(bytes: Uint8Array, ranges: ReadonlyMap<string, Range>, options: QuantizeOptions = {}): Uint8Array {
  const weightMax = options.reduceRange ? 63 : 127;
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (!graph) throw new QuantizationError("The model has no graph");
  for (const init of graph.initializer ?? []) {
    if (init.dataLocation === 1) throw new QuantizationError(`Initializer ${init.name} uses external data, which is not supported`);
  }
  // per-channel DequantizeLinear (the axis attribute) needs opset 13
  raiseOpset(model, 13);

  const initializers = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const quantized = new Set((graph.node ?? []).filter((node) => quantizableKind(node, initializers) !== undefined));
  if (quantized.size === 0) throw new QuantizationError("No op of the graph is quantizable (Conv, Add, GlobalAveragePool, Gemm)");

  // Activations to quantize: the data inputs and the output of every quantized op (weights and biases are not).
  // The graph's outputs stay float for the caller (onnxruntime runs e.g. a final Gemm as QGemm with float output).
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name!));
  const activations = new Set<string>();
  for (const node of quantized) {
    const inputs = node.opType === "Add" ? node.input! : [node.input![0]];
    for (const name of [...inputs, quantizedOutput(node, graph)]) if (!graphOutputs.has(name)) activations.add(name);
  }
  for (const name of activations) {
    if (!ranges.has(name)) throw new QuantizationError(`No calibrated range for tensor ${name}`);
  }

  const added: TensorProto[] = [];
  const removed = new Set<string>();
  const nodes: NodeProto[] = [];
  const dequantized = new Map<string, string>();
  const scales = new Map<string, number>();
  const addQdq = (name: string) => {
    const { scale, zeroPoint } = activationParams(ranges.get(name)!);
    scales.set(name, scale);
    added.push(floatTensor(`${name}__scale`, [scale], []), intTensor(`${name}__zero_point`, DataType.UINT8, [zeroPoint], []));
    nodes.push(
      { opType: "QuantizeLinear", name: `${name}__Q`, input: [name, `${name}__scale`, `${name}__zero_point`], output: [`${name}__quantized`] },
      dequantizeNode(`${name}__quantized`, `${name}__scale`, `${name}__zero_point`, `${name}__dequantized`),
    );
    dequantized.set(name, `${name}__dequantized`);
  };
  // graph inputs first: their QDQ must precede every consumer (ONNX node lists are in topological order)
  for (const input of graph.input ?? []) if (activations.has(input.name!)) addQdq(input.name!);

  for (const node of graph.node ?? []) {
    const data = node.input?.[0];
    // every consumer of a quantized tensor reads the DequantizeLinear output: onnxruntime fuses a producer into an
    // integer kernel only when its QuantizeLinear is its only consumer
    node.input = (node.input ?? []).map((name) => dequantized.get(name) ?? name);
    if (quantized.has(node) && (node.opType === "Conv" || node.opType === "Gemm")) {
      const depthwise = quantizableKind(node, initializers) === "depthwise";
      const params = quantizeParameters(node, initializers, scales.get(data!)!, depthwise ? 127 : weightMax);
      for (const name of params.removed) {
        if (removed.has(name)) throw new QuantizationError(`Weight ${name} is shared by several ops, which is not supported`);
        removed.add(name);
      }
      added.push(...params.tensors);
      nodes.push(...params.nodes);
    }
    nodes.push(node);
    for (const out of node.output ?? []) if (activations.has(out)) addQdq(out);
  }

  graph.node = nodes;
  graph.initializer = [...(graph.initializer ?? []).filter((t) => !removed.has(t.name!)), ...added];
  // old IR versions list initializers among the graph inputs: the float weights are gone, so are those entries
  graph.input = (graph.input ?? []).filter((i) => !removed.has(i.name!));
  model.producerName = `${model.producerName ?? ""}+batchwise-qdq-u8s8${options.reduceRange ? "-reduced" : ""}`;
  return encodeModel(model);
}

/** The op kind of a node the quantizer handles, or undefined for ops that stay as they are. */
function quantizableKind(node: NodeProto, initializers: ReadonlyMap<string, TensorProto>): QuantizableKind | undefined {
  switch (node.opType) {
    case "Conv": {
      const weight = initializers.get(node.input?.[1] ?? "");
      if (!weight) return undefined;
      const dims = (weight.dims ?? []).map(toNumber);
      const group = toNumber((node.attribute ?? []).find((a) => a.name === "group")?.i) || 1;
      if (group > 1 && dims[1] === 1) return "depthwise";
      if (group > 1) return undefined;
      return dims.length === 4 && dims[2] === 1 && dims[3] === 1 ? "pointwise" : "conv";
    }
    case "Add":
      return (node.input ?? []).some((n) => initializers.has(n)) ? undefined : "add";
    case "GlobalAveragePool":
      return "pool";
    case "Gemm": {
      const attrs = new Map((node.attribute ?? []).map((a) => [a.name!, a]));
      const transB = toNumber(attrs.get("transB")?.i);
      const plain = !attrs.has("transA") || toNumber(attrs.get("transA")?.i) === 0;
      const unit = (name: string) => !attrs.has(name) || attrs.get(name)!.f === 1;
      return plain && transB === 1 && unit("alpha") && unit("beta") && initializers.has(node.input?.[1] ?? "") ? "gemm" : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * The tensor whose QDQ follows a quantized op: its output, or, for a Conv followed by its only consumer Clip/Relu
 * (ReLU6 in MobileNets), the activation's output, so onnxruntime folds the activation into the Q range.
 */
function quantizedOutput(node: NodeProto, graph: GraphProto): string {
  const out = node.output![0];
  if (node.opType !== "Conv" && node.opType !== "Add") return out;
  const consumers = (graph.node ?? []).filter((n) => (n.input ?? []).includes(out));
  const graphOutput = (graph.output ?? []).some((o) => o.name === out);
  if (consumers.length === 1 && !graphOutput && (consumers[0].opType === "Clip" || consumers[0].opType === "Relu")) {
    return consumers[0].output![0];
  }
  return out;
}

/** uint8 scale and zero point for an activation range; the range always includes 0, so 0 is represented exactly. */
export function activationParams(range: Range): { scale: number; zeroPoint: number } {
  const min = Math.min(0, range.min);
  const max = Math.max(0, range.max);
  if (!Number.isFinite(min) || !Number.isFinite(max)) throw new QuantizationError(`Range [${range.min}, ${range.max}] is not finite`);
  const scale = max > min ? (max - min) / 255 : 1;
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-min / scale)));
  return { scale: Math.fround(scale), zeroPoint };
}

/**
 * Conv/Gemm weights → signed int8 (7-bit with reduceRange), symmetric (zero point 0), one scale per output channel (axis 0: Conv
 * [out, in/group, kh, kw], Gemm with transB [out, in]); bias → int32 at scale input_scale × weight_scale[c], which
 * onnxruntime's integer kernels add straight into their int32 accumulators. The DequantizeLinear nodes write the
 * original names, so the op itself keeps its inputs.
 */
function quantizeParameters(
  node: NodeProto,
  initializers: ReadonlyMap<string, TensorProto>,
  inputScale: number,
  weightMax: number,
): { tensors: TensorProto[]; nodes: NodeProto[]; removed: string[] } {
  const [, weightName, biasName] = node.input!;
  const weight = initializers.get(weightName);
  if (!weight || weight.dataType !== DataType.FLOAT) throw new QuantizationError(`${node.name}: weight ${weightName} is not a float initializer`);
  const dims = (weight.dims ?? []).map(toNumber);
  const values = floatValues(weight);
  const channels = dims[0];
  const perChannel = values.length / channels;
  const scales = new Float32Array(channels);
  const q = new Int8Array(values.length);
  for (let c = 0; c < channels; c++) {
    let absMax = 0;
    for (let i = c * perChannel; i < (c + 1) * perChannel; i++) absMax = Math.max(absMax, Math.abs(values[i]));
    const scale = Math.fround(absMax > 0 ? absMax / weightMax : 1);
    scales[c] = scale;
    for (let i = c * perChannel; i < (c + 1) * perChannel; i++) q[i] = Math.max(-weightMax, Math.min(weightMax, Math.round(values[i] / scale)));
  }
  const tensors: TensorProto[] = [
    { name: `${weightName}__int8`, dataType: DataType.INT8, dims, rawData: new Uint8Array(q.buffer) },
    floatTensor(`${weightName}__scale`, scales, [channels]),
    intTensor(`${weightName}__zero_point`, DataType.INT8, new Array(channels).fill(0), [channels]),
  ];
  const nodes = [dequantizeNode(`${weightName}__int8`, `${weightName}__scale`, `${weightName}__zero_point`, weightName, 0)];
  const removed = [weightName];
  if (biasName) {
    const bias = initializers.get(biasName);
    if (!bias || bias.dataType !== DataType.FLOAT) throw new QuantizationError(`${node.name}: bias ${biasName} is not a float initializer`);
    const b = floatValues(bias);
    const biasScales = new Float32Array(channels);
    const qb = new Int32Array(channels);
    for (let c = 0; c < channels; c++) {
      biasScales[c] = Math.fround(inputScale * scales[c]);
      qb[c] = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.round(b[c] / biasScales[c])));
    }
    tensors.push(
      { name: `${biasName}__int32`, dataType: DataType.INT32, dims: [channels], rawData: new Uint8Array(qb.buffer) },
      floatTensor(`${biasName}__scale`, biasScales, [channels]),
    );
    nodes.push(dequantizeNode(`${biasName}__int32`, `${biasName}__scale`, undefined, biasName, 0));
    removed.push(biasName);
  }
  return { tensors, nodes, removed };
}

function dequantizeNode(input: string, scale: string, zeroPoint: string | undefined, output: string, axis?: number): NodeProto {
  return {
    opType: "DequantizeLinear",
    name: `${output}__DQ`,
    input: zeroPoint ? [input, scale, zeroPoint] : [input, scale],
    output: [output],
    attribute: axis === undefined ? [] : [{ name: "axis", type: AttributeType.INT, i: axis }],
  };
}

function floatTensor(name: string, values: ArrayLike<number>, dims: number[]): TensorProto {
  return { name, dataType: DataType.FLOAT, dims, rawData: new Uint8Array(Float32Array.from(values).buffer) };
}

function intTensor(name: string, type: number, values: number[], dims: number[]): TensorProto {
  const data =
    type === DataType.UINT8
      ? Uint8Array.from(values)
      : type === DataType.INT8
        ? new Uint8Array(Int8Array.from(values).buffer)
        : new Uint8Array(Int32Array.from(values).buffer);
  return { name, dataType: type, dims, rawData: data };
}

function floatValues(tensor: TensorProto): Float32Array {
  if (tensor.rawData && tensor.rawData.length > 0) {
    const raw = tensor.rawData;
    return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  }
  return Float32Array.from(tensor.floatData ?? []);
}
