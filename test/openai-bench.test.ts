import { describe, expect, it } from "vitest";
import { benchLlm } from "../src/bench/runs/llm.js";
import { benchStreamOverhead } from "../src/bench/runs/stream-overhead.js";

// Smoke tests of the two streaming benchmarks (tiny sizes): they start a real server in a child process, stream
// through it, and account tokens from usage. Speed itself is printed by the benchmarks, never asserted.
describe("streaming benchmarks", () => {
  it("bench stream counts every token of every stream and reports no errors", async () => {
    const result = await benchStreamOverhead({ concurrency: [1, 4], tokens: 32, requests: 8, print: false });
    expect(result.levels.map((l) => l.concurrency)).toEqual([1, 4]);
    for (const level of result.levels) {
      expect(level.errors).toBe(0);
      expect(level.completionTokens).toBe(8 * 32);
      expect(level.ttftMs.p50).toBeGreaterThan(0);
      expect(level.totalTokensPerSecond).toBeGreaterThan(0);
    }
  });

  it("bench llm measures the served model and its in-process ceiling on the same requests", async () => {
    const result = await benchLlm({ model: "tiny-random-llama", concurrency: [2], requests: 4, maxTokens: 12, print: false });
    const [served] = result.served;
    const [ceiling] = result.inProcess;
    expect(served.errors).toBe(0);
    expect(ceiling.errors).toBe(0);
    expect(served.completionTokens).toBe(ceiling.completionTokens); // greedy: the same tokens either way
    expect(result.servedOverInProcess[0]).toBeGreaterThan(0);
    expect(result.batching?.sameOutput).toBe(true);
  });
});
