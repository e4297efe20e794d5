import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { cpuFeatures, describeCpu } from "../../runtime/cpu-features.js";
import { hasNvidiaSmi } from "./usage.js";

/** What a benchmark ran on: without it, a number in a results file cannot be compared with anything. */
export interface MachineInfo {
  /** describeCpu()'s line, the one every table is printed under: model, family/model, cores, AVX-512/VNNI/BF16/AMX. */
  cpu: string;
  cpuModel: string;
  /** Cores this process may use (cgroup/affinity aware). */
  cores: number;
  /** What the CPU does well, parsed from the OS (src/runtime/cpu-features.ts): what precision `auto` reads too. */
  cpuFeatures: { arch: string; family: string | null; model: string | null; avx2: boolean; avx512: boolean; int8DotProduct: boolean; bf16: boolean; amx: boolean };
  memoryGiB: number;
  /** CPU feature flags that change inference speed (AVX-512 VNNI/BF16 speed up int8/bf16). */
  cpuFlags: string[];
  gpus: { name: string; memoryMiB: number; driver: string }[];
  os: string;
  versions: { node: string; onnxruntime: string | null; sharp: string | null; fastify: string | null; batchwise: string | null };
}

const INTERESTING_FLAGS = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "f16c", "asimddp", "bf16"];

export function machineInfo(): MachineInfo {
  const cpu = cpuFeatures();
  return {
    cpu: describeCpu(cpu),
    cpuModel: cpu.modelName,
    cores: cpu.cores,
    cpuFeatures: {
      arch: cpu.arch,
      family: cpu.family ?? null,
      model: cpu.model ?? null,
      avx2: cpu.avx2,
      avx512: cpu.avx512,
      int8DotProduct: cpu.int8DotProduct,
      bf16: cpu.bf16,
      amx: cpu.amx,
    },
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    cpuFlags: INTERESTING_FLAGS.filter((flag) => cpu.flags.has(flag)),
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

/**
 * One line for a report header: the CPU line, then memory, GPU and versions —
 * "AMD EPYC 9B45 (family 26 model 2) · 2 cores · AVX-512 · VNNI · BF16 · 7.8 GiB · no GPU · node v20.20.0 · …".
 * Results written before the CPU line existed (no `cpu`) read with their model name and cores.
 */
export function machineSummary(info: MachineInfo): string {
  const gpu = info.gpus.length ? info.gpus.map((g) => g.name).join(", ") : "no GPU";
  return [
    info.cpu ?? `${info.cpuModel} · ${info.cores} cores`,
    `${info.memoryGiB} GiB`,
    gpu,
    `node ${info.versions.node}`,
    `onnxruntime-node ${info.versions.onnxruntime ?? "?"}`,
    `sharp ${info.versions.sharp ?? "?"}`,
  ].join(" · ");
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

/** This package's version: package.json sits three levels above both src/bench/load/ and dist/bench/load/. */
function ownVersion(): string | null {
  try {
    return JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")).version ?? null;
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
