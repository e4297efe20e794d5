/**
 * Connection storms: many idle keep-alive connections beside a few busy clients. What a server must do with them:
 * keep serving the busy clients at their usual rate, close each idle connection once its keep-alive timeout passes,
 * and give back every file descriptor they held. The pieces here are used by `scripts/connection-storm.ts` (prints
 * the numbers) and `test/connection-storm.test.ts` (asserts closure and descriptors, not speed).
 */
import { readdirSync } from "node:fs";
import net from "node:net";
import { Pool } from "undici";

/** Open file descriptors of a process (Linux /proc); null where /proc is not available. */
export function fdCount(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

export interface IdleConnections {
  readonly count: number;
  /** How many the server has closed so far. */
  closedCount(): number;
  /** Milliseconds from the end of each one's request to its close by the server, for those closed so far. */
  closeDelaysMs(): number[];
  /** Resolves when the server has closed all of them, or after `timeoutMs` (then with false). */
  allClosed(timeoutMs: number): Promise<boolean>;
  /** Close the ones still open from our side. */
  destroy(): void;
}

/**
 * Open `count` connections, send one keep-alive request on each (`GET /health`), read its answer, then leave the
 * connection idle: what browsers and connection pools leave behind. Opened `parallel` at a time.
 */
export async function openIdleConnections(url: string, count: number, parallel = 100): Promise<IdleConnections> {
  const target = new URL(url);
  const sockets: net.Socket[] = [];
  const delays: number[] = [];
  let closed = 0;
  let onAllClosed = () => {};
  const openOne = () =>
    new Promise<void>((resolve, reject) => {
      const socket = net.connect({ host: target.hostname, port: Number(target.port) });
      sockets.push(socket);
      let answered = 0;
      let received = "";
      socket.setEncoding("utf8");
      socket.on("error", () => {});
      socket.once("connect", () => socket.write(`GET /health HTTP/1.1\r\nHost: ${target.host}\r\n\r\n`));
      socket.on("data", (chunk: string) => {
        received += chunk;
        // the whole answer (a 2-byte "ok" or 9-byte "not ready" body after the headers) has arrived
        if (!answered && /\r\n\r\n/.test(received)) {
          answered = performance.now();
          resolve();
        }
      });
      socket.once("close", () => {
        if (!answered) reject(new Error(`connection closed before its answer: ${received.slice(0, 100)}`));
        else delays.push(performance.now() - answered);
        closed++;
        if (closed === sockets.length && sockets.length === count) onAllClosed();
      });
    });
  for (let opened = 0; opened < count; opened += parallel) {
    await Promise.all(Array.from({ length: Math.min(parallel, count - opened) }, openOne));
  }
  return {
    count,
    closedCount: () => closed,
    closeDelaysMs: () => [...delays],
    allClosed(timeoutMs) {
      if (closed === count) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        onAllClosed = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
    },
    destroy() {
      for (const socket of sockets) socket.destroy();
    },
  };
}

export interface BusyResult {
  requests: number;
  errors: number;
  requestsPerSecond: number;
  firstError?: string;
}

/** `concurrency` closed-loop clients POSTing `body` to `path` for `seconds`, each on its own keep-alive connection. */
export async function busyClients(url: string, options: { concurrency: number; seconds: number; path?: string; body?: string }): Promise<BusyResult> {
  const pool = new Pool(url, { connections: options.concurrency, pipelining: 1 });
  const body = options.body ?? '{"x": 1}';
  let requests = 0;
  let errors = 0;
  let firstError: string | undefined;
  const end = performance.now() + options.seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (performance.now() < end) {
        try {
          const response = await pool.request({ path: options.path ?? "/predict", method: "POST", headers: { "content-type": "application/json" }, body });
          await response.body.arrayBuffer();
          if (response.statusCode === 200) requests++;
          else {
            errors++;
            firstError ??= `HTTP ${response.statusCode}`;
          }
        } catch (error) {
          errors++;
          firstError ??= (error as Error).message;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  await pool.close();
  return { requests, errors, requestsPerSecond: requests / elapsed, ...(firstError ? { firstError } : {}) };
}
