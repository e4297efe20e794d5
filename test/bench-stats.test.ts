import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { mean, median, percentile, ratePerSecond, summarize } from "../src/bench/load/stats.js";

describe("percentiles (linear interpolation, NumPy's default)", () => {
  it("matches hand-computed values on known data", () => {
    const data = [35, 15, 50, 40, 20]; // sorted: 15 20 35 40 50
    expect(percentile(data, 0)).toBe(15);
    expect(percentile(data, 100)).toBe(50);
    expect(percentile(data, 50)).toBe(35);
    expect(percentile(data, 40)).toBeCloseTo(29, 10); // h = 1.6 → 20 + 0.6 × 15
    expect(percentile(data, 95)).toBeCloseTo(48, 10); // h = 3.8 → 40 + 0.8 × 10
  });

  it("gives numpy.percentile's answers for 1..100", () => {
    const data = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(data, 50)).toBeCloseTo(50.5, 10);
    expect(percentile(data, 95)).toBeCloseTo(95.05, 10);
    expect(percentile(data, 99)).toBeCloseTo(99.01, 10);
  });

  it("sorts numerically, not as strings", () => {
    expect(median([100, 9, 20])).toBe(20);
  });

  it("rejects percentiles outside 0..100 and returns NaN for no data", () => {
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], -1)).toThrow(RangeError);
    expect(percentile([], 50)).toBeNaN();
  });

  it("is monotone in p and stays within [min, max]", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 50 }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        (values, a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const pLo = percentile(values, lo);
          const pHi = percentile(values, hi);
          expect(pLo).toBeLessThanOrEqual(pHi + 1e-9);
          expect(pLo).toBeGreaterThanOrEqual(Math.min(...values) - 1e-9);
          expect(pHi).toBeLessThanOrEqual(Math.max(...values) + 1e-9);
        },
      ),
    );
  });
});

describe("summarize", () => {
  it("computes mean, spread and percentiles of known data", () => {
    const s = summarize([4, 1, 3, 2]);
    expect(s.count).toBe(4);
    expect(s.mean).toBe(2.5);
    expect(s.min).toBe(1);
    expect(s.max).toBe(4);
    expect(s.p50).toBe(2.5);
    expect(s.iqr).toBeCloseTo(3.25 - 1.75, 10);
    expect(s.stdev).toBeCloseTo(Math.sqrt(5 / 3), 10);
  });

  it("describes an empty sample with NaN, not zeros", () => {
    const s = summarize([]);
    expect(s.count).toBe(0);
    expect(s.mean).toBeNaN();
    expect(s.p99).toBeNaN();
    expect(s.stdev).toBe(0);
  });

  it("mean and rates", () => {
    expect(mean([1, 2, 6])).toBe(3);
    expect(ratePerSecond(128, 2)).toBe(64);
    expect(ratePerSecond(5, 0)).toBe(0);
  });
});
