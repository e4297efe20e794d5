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
  // Read from the record's marks directly (its `timings` getter makes an object): this runs on every response.
  let header = "";
  if (record.decodeEnd) header += `decode;dur=${ms(record.decodeEnd - record.decodeStart)}, `;
  if (record.dequeuedAt) header += `queue;dur=${ms(record.dequeuedAt - record.enqueuedAt)}, `;
  const predict = record.predictMs >= 0 ? record.predictMs : record.firstOutputAt ? record.firstOutputAt - record.dequeuedAt : -1;
  if (predict >= 0) header += `predict;dur=${ms(predict)};desc="batch ${record.batchSize || 1}", `;
  if (record.encodeMs) header += `encode;dur=${ms(record.encodeMs)}, `;
  return header + total;
}

const ms = (value: number) => (Math.round(value * 100) / 100).toString();
