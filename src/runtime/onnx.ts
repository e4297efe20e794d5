/**
 * The one place that creates onnxruntime sessions, so every model in the project gets the same thread, provider and
 * optimisation settings.
 */
import ort from "onnxruntime-node";
import type { Accelerator, Device } from "../api/model-api.js";
import { availableCores } from "./cores.js";

export type Session = ort.InferenceSession;
export { ort };

export interface SessionSettings {
  /** Intra-op threads (the worker's share of the cores). */
  threads: number;
  accelerator: Accelerator;
  /** GPU index for cuda/webgpu. */
  deviceIndex?: number;
  /**
   * Let idle intra-op threads spin-wait. Spinning wins a little latency for a session that owns the machine, but
   * several sessions spinning on shared cores slow each other down 2–3× (FACTS.md), so it is off whenever this
   * session's threads are only a share of the cores.
   */
  spinning?: boolean;
}

export function settingsFor(device: Device): SessionSettings {
  return {
    threads: Math.max(1, device.threads),
    accelerator: device.accelerator,
    deviceIndex: device.index,
    spinning: device.accelerator === "cpu" && device.threads >= availableCores(),
  };
}

/** onnxruntime's provider list for an accelerator; the CPU provider always comes last as the fallback for ops. */
export function executionProviders(accelerator: Accelerator, deviceIndex = 0): ort.InferenceSession.ExecutionProviderConfig[] {
  switch (accelerator) {
    case "cuda":
      return [{ name: "cuda", deviceId: deviceIndex } as ort.InferenceSession.ExecutionProviderConfig, "cpu"];
    case "webgpu":
      return ["webgpu", "cpu"];
    case "cpu":
      return ["cpu"];
  }
}

export function sessionOptions(settings: SessionSettings): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: executionProviders(settings.accelerator, settings.deviceIndex),
    intraOpNumThreads: settings.threads,
    // one op at a time: parallelism comes from intra-op threads and from several workers, never from both at once
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    extra: { session: { intra_op: { allow_spinning: settings.spinning ? "1" : "0" } } },
  };
}

/** Create a session from a model file path or the model's bytes. */
export async function createSession(model: string | Uint8Array, settings: SessionSettings): Promise<Session> {
  const options = sessionOptions(settings);
  return typeof model === "string"
    ? ort.InferenceSession.create(model, options)
    : ort.InferenceSession.create(model, options);
}

/** Provider name as /info shows it. */
export function providerName(accelerator: Accelerator): string {
  return { cpu: "CPUExecutionProvider", cuda: "CUDAExecutionProvider", webgpu: "WebGpuExecutionProvider" }[accelerator];
}

/**
 * The useful part of an onnxruntime error: "Could not find an implementation for Conv(22)" or "Failed to get a
 * WebGPU adapter", not the C++ source location and status prefix around it.
 */
export function summarizeOrtError(error: unknown): string {
  const message = String((error as Error)?.message ?? error);
  const missingKernel = /Could not find an implementation for [^\n]*?(?= node with name|$)/m.exec(message);
  if (missingKernel) return missingKernel[0].trim();
  const firstLine = message.split("\n").find((l) => l.trim().length > 0) ?? message;
  return firstLine
    .replace(/\[ONNXRuntimeError\] : \d+ : \w+ : /, "")
    .replace(/^\S+\.(?:cc|cpp|h):\d+ .*? was false\. /, "")
    .replace(/^\S+\.(?:cc|cpp|h):\d+ \S+ /, "")
    .trim()
    .slice(0, 300);
}
