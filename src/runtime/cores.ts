import os from "node:os";

/** Cores this process may use (respects cgroup/affinity limits through availableParallelism). */
export function availableCores(): number {
  return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
}
