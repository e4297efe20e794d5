import type { RequestRecord } from "./request-record.js";

/**
 * The `Server-Timing` header (W3C Server Timing): where the server spent a request's time, in ms, so a browser's
 * devtools or a client's log shows it without a tracing setup. `decode` (decodeRequest), `queue` (waiting for a
 * worker), `predict` (batch → predict → unbatch as the worker measured it, with the batch size as its description;
 * a stream's headers leave with its first output, so there it is the time to that output), `encode`, and `total`.
 * A route that is no endpoint (probes, /info) has only `total`.
 *
 * @example
 * ```
 * server-timing: decode;dur=0.41, queue;dur=0.05, predict;dur=3.12;desc="batch 8", encode;dur=0.02, total;dur=4.01
 * ```
 */
export function serverTimingHeader(record: RequestRecord | null, elapsedMs: number): string {
  const total = `total;dur=${ms(elapsedMs)}`;
  if (!record) return total;
  const t = record.timings;
  let header = "";
  if (t.decode !== undefined) header += `decode;dur=${ms(t.decode)}, `;
  if (t.queue !== undefined) header += `queue;dur=${ms(t.queue)}, `;
  if (t.predict !== undefined) header += `predict;dur=${ms(t.predict)};desc="batch ${t.batchSize ?? 1}", `;
  if (t.encode !== undefined) header += `encode;dur=${ms(t.encode)}, `;
  return header + total;
}

const ms = (value: number) => (Math.round(value * 100) / 100).toString();
