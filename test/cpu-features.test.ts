import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cpuFeatures, describeCpu, parseCpuInfo } from "../src/runtime/cpu-features.js";

const sample = (name: string, arch = "x64") => parseCpuInfo(readFileSync(path.join("test/fixtures/cpuinfo", `${name}.txt`), "utf8"), arch, 2);

describe("CPU features from /proc/cpuinfo", () => {
  it.each([
    // name, arch, int8 dot product, bf16, avx512, amx
    ["amd-epyc-zen2", "x64", false, false, false, false],
    ["amd-epyc-zen4", "x64", true, true, true, false],
    ["amd-epyc-zen5", "x64", true, true, true, false],
    ["intel-icelake", "x64", true, false, true, false],
    ["intel-sapphire-rapids", "x64", true, true, true, true],
    ["aws-graviton3", "arm64", true, true, false, false],
    ["aws-graviton1", "arm64", false, false, false, false],
  ] as const)("%s", (name, arch, int8, bf16, avx512, amx) => {
    const cpu = sample(name, arch);
    expect({ int8: cpu.int8DotProduct, bf16: cpu.bf16, avx512: cpu.avx512, amx: cpu.amx }).toEqual({ int8, bf16, avx512, amx });
  });

  it("names the CPU and what decides precision in one line", () => {
    expect(describeCpu(sample("amd-epyc-zen2"))).toBe("AMD EPYC 7B12 (family 23 model 49) · 2 cores · AVX2 · no VNNI · no BF16");
    expect(describeCpu(sample("intel-sapphire-rapids"))).toBe(
      "Intel(R) Xeon(R) Platinum 8488C (family 6 model 143) · 2 cores · AVX-512 · VNNI · BF16 · AMX",
    );
    expect(describeCpu(sample("aws-graviton3", "arm64"))).toBe("Neoverse-V1 (implementer 0x41 part 0xd40) · 2 cores · NEON · dotprod · BF16");
  });

  it("reads this machine without throwing, and agrees with its flags line", () => {
    const cpu = cpuFeatures();
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
    expect(cpu.int8DotProduct).toBe(/\b(avx512_vnni|avx_vnni|amx_int8)\b/.test(flags));
    expect(describeCpu(cpu)).toContain(`${cpu.cores} cores`);
  });
});
