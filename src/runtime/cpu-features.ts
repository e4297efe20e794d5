/**
 * What the CPU does well, read from the OS. Precision `auto` asks it whether int8 is worth running: onnxruntime's
 * int8 kernels are fast and exact only with int8 dot-product instructions (x86 VNNI / AVX-VNNI / AMX, ARM dotprod).
 * Without them (x86 AVX2) the u8·s8 kernels add pairs of products into saturating 16-bit sums: no faster than fp32,
 * and an answer can depend on which other requests shared its batch.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import { availableCores } from "./cores.js";

export interface CpuFeatures {
  /** "AMD EPYC 9B45", "Intel(R) Xeon(R) Platinum 8488C", "Neoverse-V1"… */
  modelName: string;
  /** x86: CPU family and model numbers as /proc/cpuinfo prints them; ARM: implementer/part. */
  family?: string;
  model?: string;
  arch: string;
  /** Cores this process may use. */
  cores: number;
  avx2: boolean;
  avx512: boolean;
  /** int8 dot products in one instruction: AVX512-VNNI, AVX-VNNI, AMX-INT8 (x86) or SDOT/UDOT (ARM asimddp). */
  int8DotProduct: boolean;
  /** bf16 arithmetic: AVX512-BF16, AMX-BF16 (x86) or ARM bf16. */
  bf16: boolean;
  amx: boolean;
  /** The raw flag names, for whoever needs one not summarised above. */
  flags: ReadonlySet<string>;
}

const INT8_DOT_FLAGS = ["avx512_vnni", "avx_vnni", "amx_int8", "asimddp"];
const BF16_FLAGS = ["avx512_bf16", "amx_bf16", "bf16"];

/** Parse the text of /proc/cpuinfo (x86 "flags", ARM "Features"); `arch` is process.arch's spelling. */
export function parseCpuInfo(text: string, arch: string = process.arch, cores = availableCores()): CpuFeatures {
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(text)?.[1]?.trim();
  const flags = new Set((field("flags") ?? field("Features") ?? "").split(/\s+/).filter(Boolean));
  const has = (names: string[]) => names.some((n) => flags.has(n));
  const armPart = field("CPU part");
  return {
    modelName: field("model name") ?? (armPart ? armCoreName(field("CPU implementer"), armPart) : os.cpus()[0]?.model ?? "unknown CPU"),
    family: field("cpu family") ?? field("CPU implementer"),
    model: field("model") ?? armPart,
    arch,
    cores,
    avx2: flags.has("avx2"),
    avx512: flags.has("avx512f"),
    int8DotProduct: has(INT8_DOT_FLAGS),
    bf16: has(BF16_FLAGS),
    amx: flags.has("amx_tile"),
    flags,
  };
}

// /proc/cpuinfo on ARM servers names no model; the part number does (Arm's own cores, as Graviton uses).
const ARM_PARTS: Record<string, string> = { "0xd0c": "Neoverse-N1", "0xd40": "Neoverse-V1", "0xd4f": "Neoverse-V2", "0xd49": "Neoverse-N2", "0xd08": "Cortex-A72" };

function armCoreName(implementer: string | undefined, part: string): string {
  return implementer === "0x41" && ARM_PARTS[part] ? ARM_PARTS[part] : `ARM implementer ${implementer ?? "?"} part ${part}`;
}

let cached: CpuFeatures | undefined;

/**
 * This machine's CPU (read once). Where /proc/cpuinfo is missing (macOS, Windows) no feature is assumed.
 * `BATCHWISE_CPUINFO` names another file to read instead: under an emulated CPU (`qemu-x86_64 -cpu Haswell`)
 * /proc/cpuinfo still describes the host, so `npm run test:cpu-kinds` points it at the emulated CPU's description.
 */
export function cpuFeatures(): CpuFeatures {
  if (!cached) {
    let text = "";
    try {
      text = readFileSync(process.env.BATCHWISE_CPUINFO || "/proc/cpuinfo", "utf8");
    } catch {
      // no procfs: report the name Node knows and claim no special instructions
    }
    cached = parseCpuInfo(text);
  }
  return cached;
}

/**
 * One line that says what a figure was measured on:
 * "AMD EPYC 9B45 (family 26 model 2) · 2 cores · AVX-512 · VNNI · BF16" or "… · AVX2 · no VNNI · no BF16".
 */
export function describeCpu(cpu: CpuFeatures = cpuFeatures()): string {
  const id = cpu.family !== undefined && cpu.model !== undefined ? ` (${cpu.arch === "arm64" ? "implementer" : "family"} ${cpu.family} ${cpu.arch === "arm64" ? "part" : "model"} ${cpu.model})` : "";
  const vector = cpu.avx512 ? "AVX-512" : cpu.avx2 ? "AVX2" : cpu.arch === "arm64" ? "NEON" : "no AVX2";
  const int8 = cpu.int8DotProduct ? (cpu.arch === "arm64" ? "dotprod" : "VNNI") : cpu.arch === "arm64" ? "no dotprod" : "no VNNI";
  const parts = [`${cpu.modelName}${id}`, `${cpu.cores} cores`, vector, int8, cpu.bf16 ? "BF16" : "no BF16"];
  if (cpu.amx) parts.push("AMX");
  return parts.join(" · ");
}
