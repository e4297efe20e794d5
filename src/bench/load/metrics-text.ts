/**
 * Reading the server's `GET /metrics` (Prometheus text format) from a benchmark or notebook, without a Prometheus
 * client: only what the tutorial needs (one histogram's buckets).
 */

/**
 * Per-bucket counts of one Prometheus histogram, summed over its label sets (e.g. every endpoint). The text format's
 * buckets are cumulative (`le` = "at most"); these are not: each count is the observations in that bucket alone.
 *
 * @example
 * ```ts
 * import { bucketDifference, getText, histogramBuckets } from "batchwise/bench";
 *
 * const url = "http://127.0.0.1:8000";
 * const before = histogramBuckets(await getText(`${url}/metrics`), "batchwise_batch_size");
 * // … load …
 * const after = histogramBuckets(await getText(`${url}/metrics`), "batchwise_batch_size");
 * const during = bucketDifference(after, before);
 * ```
 */
export function histogramBuckets(metricsText: string, name: string): { le: string; count: number }[] {
  const cumulative = new Map<string, number>();
  const pattern = new RegExp(`^${escapeRegExp(name)}_bucket\\{(.*)\\} (\\S+)$`);
  for (const line of metricsText.split("\n")) {
    const match = pattern.exec(line);
    const le = match && /(?:^|,)le="([^"]+)"/.exec(match[1])?.[1];
    if (match && le !== undefined && le !== null) cumulative.set(le, (cumulative.get(le) ?? 0) + Number(match[2]));
  }
  const ordered = [...cumulative.entries()].sort(([a], [b]) => bucketBound(a) - bucketBound(b));
  return ordered.map(([le, count], i) => ({ le, count: count - (i > 0 ? ordered[i - 1][1] : 0) }));
}

/** What happened between two readings of the same histogram: `after − before`, bucket by bucket. */
export function bucketDifference(
  after: { le: string; count: number }[],
  before: { le: string; count: number }[],
): { le: string; count: number }[] {
  const earlier = new Map(before.map((b) => [b.le, b.count]));
  return after.map((b) => ({ le: b.le, count: b.count - (earlier.get(b.le) ?? 0) }));
}

function bucketBound(le: string): number {
  return le === "+Inf" ? Infinity : Number(le);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
