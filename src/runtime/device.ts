import os from "node:os";
import type { Accelerator, AcceleratorChoice } from "../api.js";

/** Cores this process may use (respects cgroup/affinity limits through availableParallelism). */
export function availableCores(): number {
  return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
}

export interface AcceleratorDecision {
  accelerator: Accelerator;
  /** How many devices of that kind (1 for the CPU). */
  count: number;
  /** Why this accelerator was chosen, for /info and the startup log. */
  reason: string;
}

/** Pick the accelerator. Refined by the runtime layer (provider probing); `cpu` is always usable. */
export async function resolveAccelerator(choice: AcceleratorChoice = "auto"): Promise<AcceleratorDecision> {
  if (choice === "cpu" || choice === "auto") {
    return { accelerator: "cpu", count: 1, reason: choice === "cpu" ? "requested" : "no GPU provider found" };
  }
  return { accelerator: choice, count: 1, reason: "requested" };
}
