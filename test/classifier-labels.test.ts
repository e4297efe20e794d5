import { describe, expect, it } from "vitest";
import { topK } from "../src/classifier/labels.js";

describe("topK", () => {
  const names = Array.from({ length: 1000 }, (_, i) => `n${i}`);
  // the straightforward answer: every class sorted by probability, ties in class order
  const bySort = (p: Float32Array, k: number) =>
    Array.from(p, (probability, i) => ({ label: names[i], probability }))
      .sort((a, b) => b.probability - a.probability)
      .slice(0, k);

  it("equals sorting all classes, for k = 1, 5 and 1000, with ties kept in class order", () => {
    let seed = 3;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 2 ** 24;
    // quantised values, so many classes tie
    const p = Float32Array.from(names, () => Math.round(random() * 50) / 50);
    for (const k of [1, 5, 1000]) expect(topK(p, names, k)).toEqual(bySort(p, k));
  });

  it("ascending and descending inputs (worst and best case for the insertion)", () => {
    const up = Float32Array.from(names, (_, i) => i / 1000);
    const down = Float32Array.from(names, (_, i) => 1 - i / 1000);
    for (const p of [up, down]) for (const k of [5, 1000]) expect(topK(p, names, k)).toEqual(bySort(p, k));
  });
});
