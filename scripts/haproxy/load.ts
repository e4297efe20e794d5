/**
 * Continuous closed-loop load that records every request (when it started and ended, and how it ended), so the
 * scale-out check can tell which failures overlapped an event (a SIGKILL) and which happened in a given phase.
 * Keep-alive connections through undici's Pool, one per virtual client, no pipelining.
 */
import { Pool } from "undici";
import type { RequestPayload } from "../../src/bench/load/load.js";

export interface RequestRecord {
  /** ms since the load started (performance.now() based). */
  start: number;
  end: number;
  /** HTTP status, or 0 when no response came (connection error, timeout). */
  status: number;
  /** Why it failed: the error code or the response body's start. */
  error?: string;
}

export interface RunningLoad {
  records: RequestRecord[];
  /** ms since the load started. */
  now(): number;
  /** Requests in flight now. */
  inFlight(): number;
  /** Stop sending, wait for the requests in flight, close the connections. */
  stop(): Promise<RequestRecord[]>;
}

export function startLoad(options: { url: string; path: string; concurrency: number; payloads: RequestPayload[]; timeoutMs?: number }): RunningLoad {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const pool = new Pool(options.url, {
    connections: options.concurrency,
    pipelining: 1,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    keepAliveTimeout: 30_000,
  });
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const records: RequestRecord[] = [];
  let stopping = false;
  let inFlight = 0;
  let next = 0;

  const client = async () => {
    while (!stopping) {
      const payload = options.payloads[next++ % options.payloads.length];
      const start = now();
      inFlight++;
      let record: RequestRecord;
      try {
        const response = await pool.request({
          path: options.path,
          method: "POST",
          headers: { "content-type": payload.contentType },
          body: payload.body,
        });
        const text = await response.body.text();
        record = { start, end: now(), status: response.statusCode };
        if (response.statusCode !== 200) record.error = text.slice(0, 200);
      } catch (error) {
        record = { start, end: now(), status: 0, error: (error as { code?: string }).code ?? String(error) };
      }
      inFlight--;
      records.push(record);
    }
  };
  const clients = Array.from({ length: options.concurrency }, client);

  return {
    records,
    now,
    inFlight: () => inFlight,
    async stop() {
      stopping = true;
      await Promise.all(clients);
      await pool.close();
      return records;
    },
  };
}
