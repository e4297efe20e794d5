/**
 * fp32 → fp16 / bf16 conversion of ONNX graphs, in TypeScript (no Python toolchain at serve time).
 *
 * Two modes, because the CPU and GPU providers want different things:
 *  - `compute`: initializers, constants and every float tensor between the graph's inputs and outputs become
 *    fp16/bf16, with a Cast after each float graph input and before each float graph output so callers keep
 *    feeding and reading float32. Ops that must stay fp32 (a block list, as in onnxconverter-common) get Casts
 *    around them. This is what GPU providers run fast; the CPU provider has no fp16/bf16 kernels for most ops.
 *  - `weights`: only the initializers are stored in fp16/bf16, each followed by a Cast to float, so the file is half
 *    the size and onnxruntime folds the Casts at load: fp32 compute, fp32 speed, smaller download and disk.
 *
 * bf16 needs newer opsets (Cast from bf16: opset 13; Conv and pooling in bf16: opset 22): the converter raises the
 * default-domain opset and rewrites the few ops whose signature changed on the way (Squeeze/Unsqueeze axes become
 * an input), and refuses graphs with ops it does not know to be unchanged, rather than write a model that lies.
 *
 * Converted files are cached (model-cache.ts).
 */
import { derivedModelFile } from "./model-cache.js";
import {
  AttributeType,
  DataType,
  decodeModel,
  encodeModel,
  toNumber,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from "./onnx-schema.js";

export type LowPrecision = "fp16" | "bf16";
export type ConversionMode = "compute" | "weights";

/** Bump when the conversion output changes, so cached files are rebuilt. */
const CONVERTER_VERSION = 1;

/** Ops kept in fp32 in compute mode: no fp16/bf16 type constraint, or numerically unsafe at low precision. */
const KEEP_FP32_OPS = new Set([
  "ArrayFeatureExtractor", "Binarizer", "CastMap", "CategoryMapper", "DictVectorizer", "FeatureVectorizer", "Imputer",
  "LabelEncoder", "LinearClassifier", "LinearRegressor", "Normalizer", "OneHotEncoder", "RandomUniformLike",
  "SVMClassifier", "SVMRegressor", "Scaler", "TreeEnsembleClassifier", "TreeEnsembleRegressor", "ZipMap",
  "NonMaxSuppression", "TopK", "RoiAlign", "Resize", "Range", "CumSum", "Min", "Max", "Upsample",
]);

/** Ops whose output type is not their inputs' float type. */
const NON_FLOAT_OUTPUT_OPS = new Set(["Shape", "Size", "NonZero", "ArgMax", "ArgMin", "Equal", "Less", "Greater",
  "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf"]);

/** Ops whose every output has the float type of the inputs (for the rest, only output 0 does). */
const ALL_OUTPUTS_FLOAT_OPS = new Set(["Split", "LSTM", "GRU", "RNN"]);

/**
 * Default-domain ops whose inputs, attributes and meaning are the same from opset 11/12 up to 22, so raising the
 * opset (for bf16) leaves them correct. Squeeze/Unsqueeze are rewritten; anything else stops the bf16 conversion.
 */
const OPSET_STABLE_OPS = new Set([
  "Conv", "ConvTranspose", "Clip", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Abs", "Neg", "Erf",
  "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Gelu", "Softplus",
  "GlobalAveragePool", "GlobalMaxPool", "AveragePool", "MaxPool", "BatchNormalization", "InstanceNormalization",
  "Shape", "Gather", "Concat", "Reshape", "Flatten", "Transpose", "Identity", "Cast", "MatMul", "Gemm", "Slice",
  "Pad", "Expand", "Where", "Equal", "Less", "Greater", "Constant", "ConstantOfShape", "Tile", "Dropout",
  "Squeeze", "Unsqueeze",
]);

class ConversionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConversionError";
  }
}

/**
 * The path of `source` converted to `target`, converting (and caching) on first use.
 * @example
 * ```ts
 * import { convertedModelFile } from "batchwise";
 *
 * const file = await convertedModelFile("models/net/net-fp32.onnx", "fp16", "compute");
 * ```
 */
export async function convertedModelFile(source: string, target: LowPrecision, mode: ConversionMode): Promise<string> {
  return derivedModelFile(source, `${target}-${mode}`, `${target}\0${mode}\0v${CONVERTER_VERSION}`, (bytes) => convertModel(bytes, target, mode));
}

/** Convert an fp32 model's bytes; see the module comment for the two modes. */
export function convertModel(bytes: Uint8Array, target: LowPrecision, mode: ConversionMode): Uint8Array {
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (!graph) throw new ConversionError("The model has no graph");
  for (const node of graph.node ?? []) {
    if ((node.attribute ?? []).some((a) => a.type === AttributeType.GRAPH || a.type === AttributeType.GRAPHS)) {
      throw new ConversionError(`Node ${node.name} (${node.opType}) has a subgraph; subgraph conversion is not supported`);
    }
  }
  for (const init of graph.initializer ?? []) {
    if (init.dataLocation === 1) throw new ConversionError(`Initializer ${init.name} uses external data, which is not supported`);
  }
  const lowType = target === "fp16" ? DataType.FLOAT16 : DataType.BFLOAT16;
  if (target === "bf16") raiseOpset(model, mode === "compute" ? 22 : 13);
  if (mode === "weights") convertWeights(graph, lowType);
  else convertCompute(graph, lowType);
  model.producerName = `${model.producerName ?? ""}+batchwise-${target}-${mode}`;
  return encodeModel(model);
}

function convertWeights(graph: GraphProto, lowType: number): void {
  const casts: NodeProto[] = [];
  const renamed = new Map<string, string>();
  for (const init of graph.initializer ?? []) {
    if (init.dataType !== DataType.FLOAT) continue;
    const original = init.name!;
    const lowName = `${original}__${lowType === DataType.FLOAT16 ? "fp16" : "bf16"}`;
    lowerTensor(init, lowType);
    init.name = lowName;
    renamed.set(original, lowName);
    casts.push(castNode(lowName, original, DataType.FLOAT));
  }
  // old IR versions list initializers as graph inputs too: keep that entry pointing at the stored tensor
  for (const input of graph.input ?? []) {
    const lowName = renamed.get(input.name!);
    if (lowName && input.type?.tensorType) {
      input.name = lowName;
      input.type.tensorType.elemType = lowType;
    }
  }
  graph.node = [...casts, ...(graph.node ?? [])];
}

type Kind = "low" | "fp32" | "other";

function convertCompute(graph: GraphProto, lowType: number): void {
  const kind = new Map<string, Kind>();
  const nodes: NodeProto[] = [];
  const graphInputCasts = new Map<string, string>();
  let castCount = 0;
  const castTo = (name: string, to: number): string => {
    const out = `${name}__cast${castCount++}`;
    nodes.push(castNode(name, out, to));
    kind.set(out, to === DataType.FLOAT ? "fp32" : "low");
    return out;
  };

  const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name!));
  for (const init of graph.initializer ?? []) {
    if (init.dataType === DataType.FLOAT) {
      lowerTensor(init, lowType);
      kind.set(init.name!, "low");
    } else kind.set(init.name!, "other");
  }
  for (const input of graph.input ?? []) {
    if (initializerNames.has(input.name!)) {
      if (input.type?.tensorType?.elemType === DataType.FLOAT) input.type.tensorType.elemType = lowType;
      continue;
    }
    kind.set(input.name!, input.type?.tensorType?.elemType === DataType.FLOAT ? "fp32" : "other");
  }
  for (const input of graph.input ?? []) {
    if (kind.get(input.name!) === "fp32") graphInputCasts.set(input.name!, castTo(input.name!, lowType));
  }

  for (const node of graph.node ?? []) {
    const inputs = node.input ?? [];
    const keepFp32 = KEEP_FP32_OPS.has(node.opType!) || (node.domain !== undefined && node.domain !== "" && node.domain !== "ai.onnx");
    node.input = inputs.map((name) => {
      if (name === "") return name;
      const k = kind.get(name) ?? "other";
      if (keepFp32) return k === "low" ? castTo(name, DataType.FLOAT) : name;
      if (k === "fp32") return graphInputCasts.get(name) ?? castTo(name, lowType);
      return name;
    });
    const anyFloatInput = inputs.some((name) => kind.get(name) === "low" || kind.get(name) === "fp32");
    let outKind: Kind = keepFp32 ? (anyFloatInput ? "fp32" : "other") : anyFloatInput ? "low" : "other";
    if (NON_FLOAT_OUTPUT_OPS.has(node.opType!)) outKind = "other";
    if (node.opType === "Cast" || node.opType === "Constant" || node.opType === "ConstantOfShape") {
      outKind = lowerNodeAttributes(node, lowType) ? "low" : "other";
    }
    (node.output ?? []).forEach((name, i) => {
      kind.set(name, i === 0 || ALL_OUTPUTS_FLOAT_OPS.has(node.opType!) ? outKind : "other");
    });
    nodes.push(node);
  }

  // graph outputs stay float32: the producer writes a renamed low-precision tensor and a Cast restores the name
  const renames = new Map<string, string>();
  for (const output of graph.output ?? []) {
    const name = output.name!;
    if (kind.get(name) === "fp32" && output.type?.tensorType?.elemType === DataType.FLOAT) continue;
    if (kind.get(name) !== "low") continue;
    renames.set(name, `${name}__low`);
  }
  for (const node of nodes) {
    node.input = (node.input ?? []).map((n) => renames.get(n) ?? n);
    node.output = (node.output ?? []).map((n) => renames.get(n) ?? n);
  }
  for (const [name, lowName] of renames) {
    nodes.push(castNode(lowName, name, DataType.FLOAT));
    kind.set(lowName, "low");
  }
  for (const info of graph.valueInfo ?? []) {
    if (kind.get(info.name!) === "low" && info.type?.tensorType?.elemType === DataType.FLOAT) info.type.tensorType.elemType = lowType;
  }
  graph.node = nodes;
}

/** Cast targets and constant values that are float become low precision; returns whether the output is float. */
function lowerNodeAttributes(node: NodeProto, lowType: number): boolean {
  for (const attr of node.attribute ?? []) {
    if (node.opType === "Cast" && attr.name === "to") {
      if (toNumber(attr.i) !== DataType.FLOAT) return false;
      attr.i = lowType;
      return true;
    }
    if (attr.name === "value" && attr.t) {
      if (attr.t.dataType !== DataType.FLOAT) return false;
      lowerTensor(attr.t, lowType);
      return true;
    }
  }
  if (node.opType === "ConstantOfShape") {
    // no value attribute means a float32 zero: make it an explicit low-precision zero
    node.attribute = [...(node.attribute ?? []), { name: "value", type: AttributeType.TENSOR, t: { dataType: lowType, dims: [1], rawData: new Uint8Array(2) } }];
    return true;
  }
  return false;
}

function castNode(input: string, output: string, to: number): NodeProto {
  return {
    opType: "Cast",
    name: `Cast_${output}`,
    input: [input],
    output: [output],
    attribute: [{ name: "to", type: AttributeType.INT, i: to }],
  };
}

/** Replace a float32 tensor's data with fp16/bf16 bits (raw little-endian, as ONNX stores 16-bit floats). */
function lowerTensor(tensor: TensorProto, lowType: number): void {
  const values = floatValues(tensor);
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  if (lowType === DataType.FLOAT16) for (let i = 0; i < values.length; i++) out[i] = floatBitsToHalf(bits[i]);
  else for (let i = 0; i < values.length; i++) out[i] = floatBitsToBfloat16(bits[i]);
  tensor.dataType = lowType;
  tensor.floatData = [];
  tensor.rawData = new Uint8Array(out.buffer);
}

function floatValues(tensor: TensorProto): Float32Array {
  if (tensor.rawData && tensor.rawData.length > 0) {
    const raw = tensor.rawData;
    // copy: the decoded bytes may not be 4-byte aligned inside the model buffer
    return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  }
  return Float32Array.from(tensor.floatData ?? []);
}

/** IEEE float32 bits → float16 bits, round to nearest even; overflow → ±inf, NaN stays NaN. */
export function floatBitsToHalf(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mantissa | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = sign | (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++; // a carry into the exponent is the correct rounding
  return half;
}

/** IEEE float32 bits → bfloat16 bits, round to nearest even; NaN stays a quiet NaN. */
export function floatBitsToBfloat16(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Raise the default-domain opset, rewriting Squeeze/Unsqueeze (axes attribute → input since opset 13). */
export function raiseOpset(model: ModelProto, version: number): void {
  const opset = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === "ai.onnx");
  if (!opset) throw new ConversionError("The model imports no default-domain opset");
  const current = toNumber(opset.version);
  if (current >= version) return;
  const graph = model.graph!;
  const unknown = [...new Set((graph.node ?? []).filter((n) => !n.domain && !OPSET_STABLE_OPS.has(n.opType!)).map((n) => n.opType!))];
  if (unknown.length > 0) {
    throw new ConversionError(
      `bf16 needs opset ${version} (the model has ${current}); these ops may have changed meaning since opset ${current} ` +
        `and are not upgraded automatically: ${unknown.join(", ")}`,
    );
  }
  if (current < 11) throw new ConversionError(`Opset ${current} is too old to upgrade safely (need 11 or newer)`);
  for (const node of graph.node ?? []) {
    if ((node.opType === "Squeeze" || node.opType === "Unsqueeze") && current < 13) {
      const axes = (node.attribute ?? []).find((a) => a.name === "axes");
      if (!axes) continue;
      const name = `${node.name || node.output![0]}__axes`;
      const values = (axes.ints ?? []).map(toNumber);
      const data = new BigInt64Array(values.map((v) => BigInt(v)));
      graph.initializer = [
        ...(graph.initializer ?? []),
        { name, dataType: DataType.INT64, dims: [values.length], rawData: new Uint8Array(data.buffer) },
      ];
      node.attribute = (node.attribute ?? []).filter((a) => a !== axes);
      node.input = [...(node.input ?? []), name];
    }
  }
  opset.version = version;
  // opset 22 needs IR version 10; opset 13 needs IR 7
  const ir = version >= 21 ? 10 : 7;
  if (toNumber(model.irVersion) < ir) model.irVersion = ir;
}
