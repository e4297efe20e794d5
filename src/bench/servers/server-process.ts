import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ChildServerConfig } from "./serve-child.js";

/** A benchmark server running in its own process. */
export interface ServerProcess {
  url: string;
  pid: number;
  /** SIGTERM, wait for a graceful exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
}

/**
 * Start ./serve-child in a fresh Node process and wait for its URL. From source (tsx, vitest) the child runs the .ts
 * file through tsx; from dist/ it runs the .js file directly.
 */
export async function startServerProcess(config: ChildServerConfig, options: { startTimeoutMs?: number; nodeArgs?: string[] } = {}) {
  const self = fileURLToPath(import.meta.url);
  const fromSource = self.endsWith(".ts");
  const entry = fileURLToPath(new URL(fromSource ? "./serve-child.ts" : "./serve-child.js", import.meta.url));
  // The project root (three levels up from src/bench/servers or dist/bench/servers) is where `--import tsx` resolves.
  const root = fileURLToPath(new URL("../../../", import.meta.url));
  const args = [...(options.nodeArgs ?? []), ...(fromSource ? ["--import", "tsx"] : []), entry, JSON.stringify(config)];
  // glibc's arena count as `npm start` sets it (package.json), so a benchmark's server measures what users run
  const env = { MALLOC_ARENA_MAX: "2", ...process.env };
  const child = spawn(process.execPath, args, { cwd: root, stdio: ["pipe", "pipe", "pipe"], env });
  const url = await waitForUrl(child, options.startTimeoutMs ?? 120_000);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  const server: ServerProcess = {
    url,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  return server;
}

/** Run `work` against a fresh server process, stopping it afterwards whatever happens. */
export async function withServerProcess<T>(config: ChildServerConfig, work: (server: ServerProcess) => Promise<T>) {
  const server = await startServerProcess(config);
  try {
    return await work(server);
  } finally {
    await server.stop();
  }
}

function waitForUrl(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`benchmark server did not start within ${timeoutMs / 1000} s: ${stderr.trim().slice(-500)}`));
    }, timeoutMs);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      stdout += chunk;
      const match = /^BATCHWISE_URL (\S+)$/m.exec(stdout);
      if (match) {
        clearTimeout(timer);
        // Keep draining the pipes: a child blocked on a full stdout/stderr pipe would stall mid-benchmark.
        child.stdout!.resume();
        resolve(match[1]);
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`benchmark server exited (${signal ?? code}) before listening: ${stderr.trim().slice(-1500)}`));
    });
  });
}
