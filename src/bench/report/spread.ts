import type { ApiBenchLevel } from "../runs/api-bench.js";
import type { BaselineResult } from "../runs/baseline.js";

/**
 * Repeated measurements for the tutorial notebooks: every compared level runs several times, tables and charts show
 * the median with the min–max range, and a difference smaller than that range is called "within noise" instead of
 * deciding which configuration is best. On a shared or busy machine one run per level is an anecdote.
 */

/** A figure measured `runs.length` times: its median and the range the runs covered. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function spread(values: number[]): Spread {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs: values };
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], runs: values };
}

/** One concurrency level measured several times, each run's figures kept. */
export interface RepeatedLevel {
  concurrency: number;
  /** Measured requests per run (at least waves × concurrency). */
  requestsPerRun: number;
  requestsPerSecond: Spread;
  p50: Spread;
  p95: Spread;
  p99: Spread;
  /** Server process CPU, percent of one core (null without a server PID). */
  serverCpu: Spread | null;
  errors: number;
}

/** Group single runs by concurrency into median / min–max figures. */
export function summarizeLevels(runs: ApiBenchLevel[]): RepeatedLevel[] {
  const levels = [...new Set(runs.map((r) => r.concurrency))].sort((a, b) => a - b);
  return levels.map((concurrency) => {
    const mine = runs.filter((r) => r.concurrency === concurrency);
    const cpu = mine.map((r) => r.usage.serverCpu).filter((v): v is number => v !== null);
    return {
      concurrency,
      requestsPerRun: mine[0].requests,
      requestsPerSecond: spread(mine.map((r) => r.requestsPerSecond)),
      p50: spread(mine.map((r) => r.latencyMs.p50)),
      p95: spread(mine.map((r) => r.latencyMs.p95)),
      p99: spread(mine.map((r) => r.latencyMs.p99)),
      serverCpu: cpu.length ? spread(cpu) : null,
      errors: mine.reduce((sum, r) => sum + r.errorCount, 0),
    };
  });
}

/** The model alone: each batch size's images/s as a spread (median run; the fastest and slowest run). */
export function baselineSpread(result: BaselineResult): Spread {
  const rate = (ms: number) => (result.batchSize * 1000) / ms;
  return { median: result.imagesPerSecond, min: rate(result.maxMs), max: rate(result.minMs), runs: [] };
}

/**
 * Whether `after` differs from `before` by more than the noise: within noise when the two min–max ranges overlap,
 * i.e. some run of one configuration measured as much as some run of the other — the difference is then no larger
 * than what repeating a single configuration already produces. Only ranges apart from each other count as a change.
 */
export function compareSpreads(before: Spread, after: Spread): { ratio: number; withinNoise: boolean } {
  return { ratio: after.median / before.median, withinNoise: after.min <= before.max && before.min <= after.max };
}

/** "×0.83 (within noise: no)" */
export function formatChange(before: Spread, after: Spread): string {
  const { ratio, withinNoise } = compareSpreads(before, after);
  return `×${ratio.toFixed(2)} (within noise: ${withinNoise ? "yes" : "no"})`;
}

/**
 * The best of several configurations by median, but only when it beats every other one by more than the noise;
 * otherwise the configurations tied with it are named and `best` is null.
 */
export function pickBest<T>(entries: { item: T; name: string; value: Spread }[], higherIsBetter = true): {
  best: T | null;
  name: string | null;
  text: string;
} {
  const sign = higherIsBetter ? 1 : -1;
  const sorted = [...entries].sort((a, b) => sign * (b.value.median - a.value.median));
  const top = sorted[0];
  const tied = sorted.slice(1).filter((e) => compareSpreads(e.value, top.value).withinNoise);
  if (tied.length === 0) return { best: top.item, name: top.name, text: `${top.name} (ahead by more than the noise)` };
  return {
    best: null,
    name: null,
    text: `no clear best: ${[top, ...tied].map((e) => e.name).join(", ")} are within noise of each other`,
  };
}

/** "91.0 (85.2–96.1)": a median with its range, for tables. */
export function formatSpread(value: Spread | null | undefined, digits = 1): string {
  if (!value || !Number.isFinite(value.median)) return "n/a";
  const f = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(digits));
  return value.min === value.max && value.runs.length <= 1 ? f(value.median) : `${f(value.median)} (${f(value.min)}–${f(value.max)})`;
}

/** Plotly error bars from the median to the min and max of each spread. */
export function errorBars(values: Spread[]): Record<string, unknown> {
  return {
    type: "data",
    symmetric: false,
    array: values.map((v) => v.max - v.median),
    arrayminus: values.map((v) => v.median - v.min),
    thickness: 1.5,
    width: 4,
  };
}
