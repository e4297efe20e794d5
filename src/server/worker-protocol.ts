import type { ApiSource, Device, SetupContext } from "../api/model-api.js";
import type { CallbackSource } from "./callbacks.js";
import type { ErrorDetail } from "./failure-log.js";
import type { ItemError } from "./run-batch.js";
import type { LoggedValue } from "./user-metrics.js";

/** Messages between the main thread and a model worker thread. */
export type ToWorker =
  /** `sourceMaps`: the main thread maps stacks to sources (set at run time, which a worker does not inherit). */
  | { type: "setup"; source: ApiSource; device: Device; ctx: SetupContext; sourceMaps: boolean; endpoint: string; callbacks: CallbackSource[] }
  /** `requestIds` only when a predict-side callback wants them. */
  | { type: "run"; id: number; inputs: unknown[]; stream: boolean; requestIds?: string[]; traceparents?: (string | undefined)[] }
  | { type: "cancel"; id: number; index: number }
  /** The main thread has handled the last "chunks" message: the worker may send the next (see worker.ts). */
  | { type: "chunks-handled" }
  | { type: "health"; id: number };

export type FromWorker =
  | { type: "ready"; info: Record<string, unknown> }
  | { type: "setup-failed"; error: ErrorDetail }
  | { type: "result"; id: number; outputs: unknown[]; errors: (ItemError | undefined)[]; predict?: { start: number; ms: number } }
  | { type: "chunks"; chunks: RunChunk[] }
  | { type: "health"; id: number; ok: boolean }
  | WorkerReport;

/** What a worker reports besides its answers: the values its API logged, and callbacks of its that failed. */
export type WorkerReport =
  | { type: "logs"; values: LoggedValue[] }
  | { type: "callback-error"; hook: string; message: string };

/**
 * Outputs of one streaming run's step. Every run's chunks produced in one turn of the worker's event loop travel in
 * one message: a decode step that feeds many runs (continuous batching) costs one hop, not one per run.
 */
export interface RunChunk {
  id: number;
  outputs: unknown[];
  indexes: number[];
  /** Inputs (indexes into the run's inputs) whose streams ended at this step: their responses close now. */
  ended?: number[];
}

/**
 * Typed-array buffers to move (not copy) across threads: only buffers the value owns entirely, so that a view into
 * a shared pool (small Node Buffers) is copied rather than detached under someone else's feet.
 */
export function transferables(values: unknown[]): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  const visit = (value: unknown, depth: number) => {
    if (ArrayBuffer.isView(value)) {
      const buffer = value.buffer;
      if (buffer instanceof ArrayBuffer && value.byteOffset === 0 && value.byteLength === buffer.byteLength) {
        seen.add(buffer);
      }
    } else if (depth < 2 && value !== null && typeof value === "object") {
      for (const item of Array.isArray(value) ? value : Object.values(value)) visit(item, depth + 1);
    }
  };
  for (const value of values) visit(value, 0);
  return [...seen];
}
