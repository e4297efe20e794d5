import os from "node:os";

/** Cores this process may use (respects cgroup/affinity limits through availableParallelism). */
export function availableCores(): number {
  return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
}

/** libuv's pool size for a process started now: one thread per core, at least libuv's default 4. */
export function libuvPoolSize(): number {
  return Number(process.env.UV_THREADPOOL_SIZE) || Math.max(4, availableCores());
}

/**
 * Image decoding (sharp, the native JPEG path) runs on libuv's thread pool, 4 threads unless UV_THREADPOOL_SIZE says
 * otherwise: on a machine with more cores, decoding caps the images/s long before the models do. Node reads the
 * variable when the pool starts, before any of the program's code runs, so it must be set in the environment of
 * the process (`npm start` and API server processes get one thread per core). Returns the advice, or undefined.
 */
export function libuvPoolWarning(): string | undefined {
  const cores = availableCores();
  if (process.env.UV_THREADPOOL_SIZE || cores <= 4) return undefined;
  return `libuv's thread pool, which decodes images, has 4 threads on this ${cores}-core machine: start node with UV_THREADPOOL_SIZE=${cores} to use them all`;
}
