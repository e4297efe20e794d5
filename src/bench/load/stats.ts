/**
 * Summary statistics for benchmark samples.
 *
 * Percentiles use LINEAR INTERPOLATION between closest ranks (NumPy's default, "type 7" in Hyndman & Fan):
 * for sorted values x[0..n-1], the p-th percentile sits at fractional index h = (n - 1) · p / 100 and is
 * x[⌊h⌋] + (h − ⌊h⌋) · (x[⌊h⌋+1] − x[⌊h⌋]). So p0 is the minimum, p100 the maximum, p50 the usual median, and a
 * percentile of a small sample moves smoothly instead of jumping between observed values. With 128 requests, p99
 * interpolates between the two slowest requests: read it as "the tail", not as a precise 1-in-100 figure.
 */

export interface Summary {
  count: number;
  mean: number;
  min: number;
  max: number;
  p50: number;
  p95: number;
  p99: number;
  /** Interquartile range p75 − p25: the spread of the middle half, robust to a single outlier. */
  iqr: number;
  /** Sample standard deviation (n − 1); 0 for fewer than two values. */
  stdev: number;
}

/** The p-th percentile (0–100) of values sorted ascending, by linear interpolation. NaN for no values. */
function percentileOfSorted(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const h = ((n - 1) * p) / 100;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** The p-th percentile (0–100) of unsorted values. */
export function percentile(values: ArrayLike<number>, p: number): number {
  return percentileOfSorted(sortedCopy(values), p);
}

export function median(values: ArrayLike<number>): number {
  return percentile(values, 50);
}

export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  return sum / values.length;
}

/** Everything a benchmark table needs from one sample. NaN fields for an empty sample (nothing succeeded). */
export function summarize(values: ArrayLike<number>): Summary {
  const sorted = sortedCopy(values);
  const n = sorted.length;
  const m = mean(sorted);
  let squares = 0;
  for (let i = 0; i < n; i++) squares += (sorted[i] - m) ** 2;
  return {
    count: n,
    mean: m,
    min: n ? sorted[0] : Number.NaN,
    max: n ? sorted[n - 1] : Number.NaN,
    p50: percentileOfSorted(sorted, 50),
    p95: percentileOfSorted(sorted, 95),
    p99: percentileOfSorted(sorted, 99),
    iqr: percentileOfSorted(sorted, 75) - percentileOfSorted(sorted, 25),
    stdev: n > 1 ? Math.sqrt(squares / (n - 1)) : 0,
  };
}

/** Events per second; 0 when no time passed (rather than Infinity, which JSON cannot carry). */
export function ratePerSecond(count: number, seconds: number): number {
  return seconds > 0 ? count / seconds : 0;
}

/** Milliseconds elapsed since a `process.hrtime.bigint()` reading. */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function sortedCopy(values: ArrayLike<number>): Float64Array {
  // A typed array sorts numerically (Array.prototype.sort would compare as strings) and copies cheaply.
  return Float64Array.from(values).sort();
}
