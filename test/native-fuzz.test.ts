/**
 * The native JPEG path's C core fuzzed under AddressSanitizer + UndefinedBehaviorSanitizer (scripts/fuzz-native.sh:
 * libFuzzer, seeds generated from the sample photos by native/fuzz/make_corpus.c). Runs where clang, its sanitizer
 * runtimes and libFuzzer are installed; CI installs them and sets BATCHWISE_REQUIRE_NATIVE_FUZZ=1, so there it must
 * run. `npm run fuzz:native` is the long run (200,000 inputs); this one runs BATCHWISE_FUZZ_RUNS (default 20,000).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const RUNS = Number(process.env.BATCHWISE_FUZZ_RUNS ?? 20_000);
const dir = mkdtempSync(path.join(tmpdir(), "batchwise-fuzz-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The script, asynchronously (a run takes minutes; the test worker must stay responsive meanwhile). */
function fuzz(...args: string[]): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["scripts/fuzz-native.sh", ...args], { env: { ...process.env, BATCHWISE_FUZZ_DIR: dir } });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.on("close", (status) => resolve({ status, output }));
  });
}

const check = await fuzz("--check");
const available = check.status === 0;

it.runIf(process.env.BATCHWISE_REQUIRE_NATIVE_FUZZ === "1")("the fuzzing toolchain is installed where it is required", () => {
  expect(check.status, check.output).toBe(0);
});

describe.skipIf(!available)("native JPEG path under ASan + UBSan", () => {
  it("the harness catches a planted one-byte heap overflow in jp_preprocess (sanitizer live, core reached)", async () => {
    const { status, output } = await fuzz("--self-test");
    expect(status, output).toBe(0);
    expect(output).toMatch(/planted heap-buffer-overflow in jp_preprocess/);
  }, 600_000);

  it(`${RUNS} fuzzed inputs (bit flips, truncations, marker splices, odd sizes, hostile plans): zero sanitizer reports`, async () => {
    const { status, output } = await fuzz("--runs", String(RUNS));
    expect(status, output.slice(-4000)).toBe(0);
    expect(output).toMatch(new RegExp(`^Done ${RUNS} runs in \\d+ second`, "m"));
    expect(output).toMatch(/, 0 sanitizer reports$/m);
    expect(output).not.toMatch(/ERROR: AddressSanitizer|runtime error:/);
  }, 1_800_000);
});
