/**
 * An ONNX model's token vectors, as the graph output `last_hidden_state`.
 *
 * Encoder models exported for feature extraction (BERT, MiniLM…) already have that output. A causal LM exported for
 * generation has only `logits` (and its KV cache): its last hidden state is the LM head's input — the final norm's
 * output, which is what transformers' `LlamaModel` returns as `last_hidden_state`. This rewrite makes that tensor
 * the graph's only output and drops the nodes nothing needs any more (the LM head, a vocab-wide matmul per token).
 */
import { decodeModel, encodeModel, type GraphProto, type NodeProto } from "../runtime/onnx-schema.js";

export const HIDDEN_STATE_OUTPUT = "last_hidden_state";

export class NoHiddenStateError extends Error {
  constructor(outputs: string[]) {
    super(
      `The model has no '${HIDDEN_STATE_OUTPUT}' output and no LM head (a MatMul/Gemm producing 'logits') to take it from; ` +
        `its outputs are ${outputs.join(", ")}`,
    );
    this.name = "NoHiddenStateError";
  }
}

/** The model's bytes with `last_hidden_state` as its only output (unchanged bytes when it is already an output). */
export function exposeHiddenStates(bytes: Uint8Array): Uint8Array {
  const model = decodeModel(bytes);
  const graph = model.graph!;
  const outputs = (graph.output ?? []).map((o) => o.name ?? "");
  if (outputs.includes(HIDDEN_STATE_OUTPUT)) return bytes;
  const head = (graph.node ?? []).find(
    (n) => (n.opType === "MatMul" || n.opType === "Gemm") && n.output?.includes("logits") && isInitializer(graph, n.input?.[1]),
  );
  if (!head) throw new NoHiddenStateError(outputs);
  const hidden = head.input![0];
  graph.output = [{ name: hidden, type: { tensorType: { elemType: graph.output![0].type?.tensorType?.elemType ?? 1 } } }];
  graph.node = neededNodes(graph.node ?? [], hidden);
  // Rename the tensor so callers read one name whatever the export called it.
  for (const node of graph.node) node.output = node.output?.map((o) => (o === hidden ? HIDDEN_STATE_OUTPUT : o));
  for (const node of graph.node) node.input = node.input?.map((i) => (i === hidden ? HIDDEN_STATE_OUTPUT : i));
  graph.output[0].name = HIDDEN_STATE_OUTPUT;
  const used = new Set(graph.node.flatMap((n) => n.input ?? []));
  graph.initializer = (graph.initializer ?? []).filter((t) => used.has(t.name ?? ""));
  return encodeModel(model);
}

function isInitializer(graph: GraphProto, name: string | undefined): boolean {
  return name !== undefined && (graph.initializer ?? []).some((t) => t.name === name);
}

/** The nodes `target` depends on, in their original (topological) order. */
function neededNodes(nodes: NodeProto[], target: string): NodeProto[] {
  const producer = new Map<string, NodeProto>();
  for (const node of nodes) for (const output of node.output ?? []) producer.set(output, node);
  const keep = new Set<NodeProto>();
  const pending = [target];
  while (pending.length > 0) {
    const node = producer.get(pending.pop()!);
    if (!node || keep.has(node)) continue;
    keep.add(node);
    pending.push(...(node.input ?? []));
  }
  return nodes.filter((n) => keep.has(n));
}
