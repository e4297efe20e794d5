/**
 * Which accelerator serves the models. `auto` takes a GPU only when it is really usable — an NVIDIA GPU is present
 * (nvidia-smi lists one) AND onnxruntime's provider for it loads and runs a one-op model — otherwise the CPU, with
 * the reason. An explicit `cuda`/`webgpu` that cannot load is a startup error naming what is missing, never a silent
 * fallback that would serve at a tenth of the expected speed.
 */
import { spawnSync } from "node:child_process";
import type { Accelerator, AcceleratorChoice } from "../api/model-api.js";
import { encodeModel, DataType } from "./onnx-schema.js";
import { executionProviders, ort, summarizeOrtError } from "./onnx.js";

export { availableCores } from "./cores.js";

export interface AcceleratorDecision {
  accelerator: Accelerator;
  /** How many devices of that kind (1 for the CPU). */
  count: number;
  /** Why this accelerator was chosen, for /info and the startup log. */
  reason: string;
}

/** Pick the accelerator; see the module comment for the rules. */
export async function resolveAccelerator(choice: AcceleratorChoice = "auto"): Promise<AcceleratorDecision> {
  if (choice === "cpu") return { accelerator: "cpu", count: 1, reason: "requested" };
  if (choice !== "auto" && choice !== "cuda" && choice !== "webgpu") {
    throw new Error(`Unknown accelerator "${String(choice)}": use auto, cpu, cuda or webgpu`);
  }
  const gpus = nvidiaGpuCount();
  if (choice === "auto") {
    if (gpus.count === 0) return { accelerator: "cpu", count: 1, reason: `no GPU: ${gpus.why}` };
    const cuda = await probeProvider("cuda");
    if (cuda.ok) return { accelerator: "cuda", count: gpus.count, reason: `${gpus.count} NVIDIA GPU(s), CUDA provider loads` };
    const webgpu = await probeProvider("webgpu");
    if (webgpu.ok) {
      return { accelerator: "webgpu", count: 1, reason: `NVIDIA GPU present, CUDA provider unusable (${cuda.error}); WebGPU loads` };
    }
    return { accelerator: "cpu", count: 1, reason: `NVIDIA GPU present but no GPU provider loads (cuda: ${cuda.error}; webgpu: ${webgpu.error})` };
  }
  if (choice === "cuda" && gpus.count === 0) {
    throw new Error(`--accelerator cuda: no NVIDIA GPU is usable (${gpus.why}). Use --accelerator cpu or auto.`);
  }
  const probe = await probeProvider(choice);
  if (!probe.ok) throw new Error(providerMissingMessage(choice, probe.error));
  return { accelerator: choice, count: choice === "cuda" ? gpus.count : 1, reason: "requested" };
}

function providerMissingMessage(accelerator: "cuda" | "webgpu", error: string): string {
  if (accelerator === "cuda") {
    return (
      `--accelerator cuda: the onnxruntime CUDA execution provider does not load (${error}). onnxruntime-node ships ` +
      "its CUDA provider libraries as a separate download: with network access run " +
      "`ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` (needs CUDA 12 and cuDNN 9 on the library path), " +
      "or use --accelerator cpu."
    );
  }
  return `--accelerator webgpu: the onnxruntime WebGPU execution provider found no usable adapter (${error}). Use --accelerator cpu.`;
}

/** NVIDIA GPUs this process may use: `nvidia-smi -L`, narrowed by CUDA_VISIBLE_DEVICES when it is set. */
export function nvidiaGpuCount(): { count: number; why: string } {
  const smi = spawnSync("nvidia-smi", ["-L"], { encoding: "utf8", timeout: 10_000 });
  if (smi.error) return { count: 0, why: "nvidia-smi not found" };
  if (smi.status !== 0) return { count: 0, why: `nvidia-smi failed: ${(smi.stderr || smi.stdout).trim().split("\n")[0]}` };
  const listed = smi.stdout.split("\n").filter((l) => l.startsWith("GPU ")).length;
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  const count = visible === undefined ? listed : Math.min(listed, visible.split(",").filter((s) => s.trim() !== "" && s.trim() !== "-1").length);
  return { count, why: count === 0 ? "nvidia-smi lists no visible GPU" : `${count} GPU(s)` };
}

/** Load the provider and run a one-node model on it; the error text says what is missing. */
export async function probeProvider(accelerator: Accelerator): Promise<{ ok: true } | { ok: false; error: string }> {
  try {
    const session = await ort.InferenceSession.create(probeModel(), {
      // only the probed provider: with the CPU fallback listed too, a missing GPU provider would go unnoticed
      executionProviders: executionProviders(accelerator).filter((p) => accelerator === "cpu" || p !== "cpu"),
      logSeverityLevel: 4,
    });
    try {
      const x = new ort.Tensor("float32", Float32Array.from([1, 2]), [2]);
      const out = await session.run({ x });
      if ((out.y.data as Float32Array)[1] !== 4) return { ok: false, error: "probe model gave a wrong result" };
    } finally {
      await session.release();
    }
    return { ok: true };
  } catch (error) {
    return { ok: false, error: summarizeOrtError(error) };
  }
}

let probeBytes: Uint8Array | undefined;

/** y = x + x on a float32 vector: the smallest graph every provider has a kernel for. */
function probeModel(): Uint8Array {
  const tensor = (name: string) => ({
    name,
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimValue: 2 }] } } },
  });
  probeBytes ??= encodeModel({
    irVersion: 7,
    opsetImport: [{ domain: "", version: 13 }],
    producerName: "batchwise-probe",
    graph: {
      name: "probe",
      node: [{ opType: "Add", input: ["x", "x"], output: ["y"], name: "add" }],
      input: [tensor("x")],
      output: [tensor("y")],
    },
  });
  return probeBytes;
}
