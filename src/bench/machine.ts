import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { hasNvidiaSmi } from "./usage.js";

/** What a benchmark ran on: without it, a number in a results file cannot be compared with anything. */
export interface MachineInfo {
  cpuModel: string;
  /** Cores this process may use (cgroup/affinity aware). */
  cores: number;
  memoryGiB: number;
  /** CPU feature flags that change inference speed (AVX-512 VNNI/BF16 speed up int8/bf16). */
  cpuFlags: string[];
  gpus: { name: string; memoryMiB: number; driver: string }[];
  os: string;
  versions: { node: string; onnxruntime: string | null; sharp: string | null; fastify: string | null; batchwise: string | null };
}

const INTERESTING_FLAGS = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "f16c"];

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpuModelName() ?? cpus[0]?.model ?? "unknown",
    cores: Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : cpus.length),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    cpuFlags: cpuFlags().filter((flag) => INTERESTING_FLAGS.includes(flag)),
    gpus: gpus(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    versions: {
      node: process.version,
      onnxruntime: packageVersion("onnxruntime-node"),
      sharp: packageVersion("sharp"),
      fastify: packageVersion("fastify"),
      batchwise: ownVersion(),
    },
  };
}

/** One line for a report header: "AMD EPYC 9B45 · 2 cores · no GPU · node v20.20.0 · onnxruntime 1.30.0". */
export function machineSummary(info: MachineInfo): string {
  const gpu = info.gpus.length ? info.gpus.map((g) => g.name).join(", ") : "no GPU";
  return [
    info.cpuModel,
    `${info.cores} cores`,
    `${info.memoryGiB} GiB`,
    gpu,
    `node ${info.versions.node}`,
    `onnxruntime-node ${info.versions.onnxruntime ?? "?"}`,
    `sharp ${info.versions.sharp ?? "?"}`,
  ].join(" · ");
}

function cpuInfoText(): string {
  try {
    return readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return "";
  }
}

function cpuModelName(): string | undefined {
  // os.cpus() may shorten a virtualised CPU's name to "AMD EPYC"; /proc/cpuinfo keeps the full one.
  return /^model name\s*:\s*(.+)$/m.exec(cpuInfoText())?.[1]?.trim();
}

function cpuFlags(): string[] {
  return (/^flags\s*:\s*(.+)$/m.exec(cpuInfoText())?.[1] ?? "").split(/\s+/);
}

function gpus(): MachineInfo["gpus"] {
  if (!hasNvidiaSmi()) return [];
  try {
    const csv = execFileSync(
      "nvidia-smi",
      ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
      { encoding: "utf8", timeout: 10_000 },
    );
    return csv
      .trim()
      .split("\n")
      .map((line) => {
        const [name, memory, driver] = line.split(",").map((s) => s.trim());
        return { name, memoryMiB: Number(memory), driver };
      });
  } catch {
    return [];
  }
}

/** This package's version: package.json sits two levels above both src/bench/ and dist/bench/. */
function ownVersion(): string | null {
  try {
    return JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version ?? null;
  } catch {
    return null;
  }
}

function packageVersion(name: string): string | null {
  const require = createRequire(import.meta.url);
  try {
    return require(`${name}/package.json`).version ?? null;
  } catch {
    // packages whose "exports" hide package.json: find the entry point and walk up to its package.json
    try {
      const entry = require.resolve(name);
      const root = entry.slice(0, entry.lastIndexOf(`node_modules/${name}/`) + `node_modules/${name}/`.length);
      return JSON.parse(readFileSync(`${root}package.json`, "utf8")).version ?? null;
    } catch {
      return null;
    }
  }
}
