import { describe, expect, it } from "vitest";
import { batchShareFigure, compareSpreads, formatChange, formatSpread, pickBest, spread, summarizeLevels, tableHtml, type ApiBenchLevel } from "../src/bench/index.js";
import { loadNote, sequenceFigure } from "../src/bench/report/notebook-sequence.js";

// The notebooks' noise rules and learner-facing outputs, on fixed inputs: what "within noise" means, that a tie never
// names a best configuration, that tables stay narrow, and that the batch histogram counts images, not batches.

describe("spread and within noise", () => {
  it("takes the median and the range of the runs", () => {
    expect(spread([12, 10, 30])).toEqual({ median: 12, min: 10, max: 30, runs: [12, 10, 30] });
    expect(spread([1, 2, 3, 4]).median).toBe(2.5);
  });

  it("calls a change within noise when the runs' ranges overlap, and a change when they are apart", () => {
    const before = spread([9.8, 15.5, 16.0]);
    expect(compareSpreads(before, spread([20.6, 21.6, 23.1]))).toEqual({ ratio: 21.6 / 15.5, withinNoise: false });
    expect(compareSpreads(before, spread([15.9, 17, 18])).withinNoise).toBe(true);
    expect(formatChange(spread([10, 10, 10]), spread([8.3, 8.3, 8.3]))).toBe("×0.83 (within noise: no)");
  });

  it("names no best configuration when the leader is within noise of another", () => {
    const tie = pickBest([
      { item: 1, name: "1 worker", value: spread([10, 15, 16]) },
      { item: 2, name: "2 workers", value: spread([14, 16.5, 17]) },
    ]);
    expect(tie.best).toBeNull();
    expect(tie.text).toContain("within noise");
    const clear = pickBest([
      { item: 1, name: "1 worker", value: spread([10, 11, 12]) },
      { item: 2, name: "2 workers", value: spread([20, 21, 22]) },
    ]);
    expect(clear.best).toBe(2);
  });

  it("formats a median with its range", () => {
    expect(formatSpread(spread([85.2, 91.04, 96.1]))).toBe("91.0 (85.2–96.1)");
    expect(formatSpread(null)).toBe("n/a");
  });

  it("groups repeated runs by concurrency", () => {
    const run = (concurrency: number, rps: number): ApiBenchLevel => ({
      concurrency, requests: 16, successes: 16, errors: {}, errorCount: 0, wallSeconds: 1, requestsPerSecond: rps,
      latencyMs: { count: 16, mean: 1, min: 1, max: 1, p50: rps, p95: 2 * rps, p99: 3 * rps, iqr: 0, stdev: 0 },
      usage: { serverCpu: 50, machineCpu: 60, gpuUtilization: null, gpuMemoryMiB: null, series: [] },
    });
    const levels = summarizeLevels([run(1, 10), run(8, 20), run(1, 12), run(8, 22), run(1, 11), run(8, 18)]);
    expect(levels.map((l) => l.concurrency)).toEqual([1, 8]);
    expect(levels[1].requestsPerSecond).toMatchObject({ median: 20, min: 18, max: 22 });
    expect(levels[0].p95.median).toBe(22);
  });
});

describe("learner-facing outputs", () => {
  it("refuses a table wider than six columns", () => {
    expect(() => tableHtml(["a", "b", "c", "d", "e", "f", "g"], [])).toThrow(/at most 6 columns/);
    expect(tableHtml(["config", "req/s"], [["1 worker", "9.7 (8.3–14.1)"]])).toContain("text-align:left");
  });

  it("shows the batch histogram as each bucket's share of the images, not of the batches", () => {
    // 8 clients: 10 single-image batches and 10 batches of 8 → 10 + 80 images; the batches of 8 hold 89 % of them.
    const figure = batchShareFigure([
      { concurrency: 8, images: 90, buckets: [{ le: "1", count: 10 }, { le: "2", count: 0 }, { le: "4", count: 0 }, { le: "8", count: 10 }, { le: "16", count: 0 }, { le: "+Inf", count: 0 }] },
    ]);
    const [bars] = figure.data as { x: string[]; y: number[] }[];
    expect(bars.x).toEqual(["1", "2", "3–4", "5–8"]); // empty buckets above the largest used are left off
    const share = Object.fromEntries(bars.x.map((x, i) => [x, bars.y[i]]));
    expect(share["5–8"]).toBeGreaterThan(80);
    expect(bars.y.reduce((a, b) => a + b, 0)).toBeCloseTo(100, 5);
  });

  it("draws the sequence as two panels, never a second y axis over the first", () => {
    const row = { step: "02", name: "batching off", concurrency: 64, requestsPerSecond: spread([60, 68, 70]), p50: spread([900, 950, 990]) };
    const figure = sequenceFigure([row], [{ name: "model alone, fp32, batch 64", imagesPerSecond: spread([300, 310, 320]) }]);
    const layout = figure.layout as Record<string, any>;
    expect(layout.yaxis2.overlaying).toBeUndefined();
    expect(layout.xaxis.domain[1]).toBeLessThan(layout.xaxis2.domain[0]);
    expect(layout.shapes[0].y0).toBe(310);
  });

  it("warns under the sequence table when its steps ran under different loads", () => {
    const even = loadNote([{ file: "02-measure.json", load: 1.2, cores: 2 }, { file: "03-batching.json", load: 1.6, cores: 2 }]);
    expect(even).toBe("1-minute load average when each notebook saved its numbers: 02 1.2 · 03 1.6 (2 cores)");
    const uneven = loadNote([{ file: "02-measure.json", load: 27.9, cores: 2 }, { file: "04-workers.json", load: 9.3, cores: 2 }]);
    expect(uneven).toContain("⚠ the steps ran under different loads");
    // Busy throughout, but evenly: one warning, not the other.
    const busy = loadNote([{ file: "02-measure.json", load: 7.2, cores: 2 }, { file: "03-batching.json", load: 8.4, cores: 2 }]);
    expect(busy).toContain("⚠ the machine was busy");
    expect(busy).not.toContain("different loads");
    expect(loadNote([])).toBeNull();
  });
});
