import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { HttpConnection, HttpRequestError, requestHead } from "./http-connection.js";
import { msSince, ratePerSecond, summarize, type Summary } from "./stats.js";

/**
 * A closed-loop HTTP load generator: `concurrency` virtual clients each send a request, wait for the full response,
 * then send the next, until `requests` have been sent in total. Closed-loop means the offered load adapts to the
 * server (no coordinated-omission queue building up in the client), which is what "concurrency N" means in the
 * seed's tables.
 *
 * Each virtual client has its own keep-alive connection (./http-connection: no pipelining, and as little client
 * CPU per request as it takes, since the client shares the machine with the server). Run it in the caller's
 * process, never in the server's: the server's CPU use would then include the client's.
 */

export interface LoadOptions {
  /** Origin, e.g. "http://127.0.0.1:8000". */
  url: string;
  /** Request path, e.g. "/predict". */
  path: string;
  concurrency: number;
  /** Total requests across all clients. */
  requests: number;
  /**
   * Request bodies: a list used round-robin, or a function of the request index. Build them once, up front. A plain
   * Buffer is sent as JSON; a {@link RequestPayload} carries its own content type (e.g. a raw `image/jpeg` body).
   */
  bodies: (Buffer | RequestPayload)[] | ((index: number) => Buffer | RequestPayload);
  headers?: Record<string, string>;
  /** How long a request may wait with nothing arriving; past it, it counts as an error ("timeout"). Default 60 s. */
  timeoutMs?: number;
  /** Requests sent (and not measured) before the timed run, e.g. to let a lazy server warm up. Default 0. */
  warmupRequests?: number;
  method?: "POST" | "PUT";
}

export interface LoadResult {
  concurrency: number;
  requests: number;
  successes: number;
  /** Failed requests by HTTP status ("503") or client-side failure ("timeout", "connection"). */
  errors: Record<string, number>;
  errorCount: number;
  /** The first error response body, trimmed, so a failing run says why. */
  firstError?: string;
  wallSeconds: number;
  /** Successful requests per second of wall time. */
  requestsPerSecond: number;
  /** Latency of successful requests in milliseconds, from send to the last byte of the response. */
  latencyMs: Summary;
}

/** Run a closed-loop load test. Resolves once every request has completed (or failed). */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { concurrency, requests } = options;
  if (!(concurrency >= 1) || !(requests >= 1)) throw new RangeError("concurrency and requests must be >= 1");
  const timeoutMs = options.timeoutMs ?? 60_000;
  const origin = new URL(options.url);
  const connections = Array.from({ length: concurrency }, () => new HttpConnection(origin, timeoutMs));
  const bodyAt = typeof options.bodies === "function" ? options.bodies : roundRobin(options.bodies);
  const headers = { "content-type": "application/json", ...options.headers };
  const method = options.method ?? "POST";
  // Each body's request head, built the first time it is sent: the hot loop only looks it up.
  const heads = new WeakMap<Buffer, Buffer>();
  const headOf = (body: Buffer, contentType: string | undefined) => {
    let head = heads.get(body);
    if (!head) {
      head = requestHead(method, origin, options.path, contentType ? { ...headers, "content-type": contentType } : headers, body.length);
      heads.set(body, head);
    }
    return head;
  };

  const send = async (index: number, client: number): Promise<Outcome> => {
    const payload = bodyAt(index);
    const body = Buffer.isBuffer(payload) ? payload : payload.body;
    const head = headOf(body, Buffer.isBuffer(payload) ? undefined : payload.contentType);
    const start = process.hrtime.bigint();
    try {
      // The whole body is read: latency ends at the response's last byte.
      const response = await connections[client].request(head, body);
      const ms = msSince(start);
      if (response.status >= 200 && response.status < 300) return { ok: true, ms };
      return { ok: false, kind: String(response.status), detail: response.body.toString("utf8", 0, 300) };
    } catch (error) {
      const kind = error instanceof HttpRequestError ? error.kind : "connection";
      return { ok: false, kind, detail: String((error as Error)?.message ?? error) };
    }
  };

  try {
    await closedLoop(options.warmupRequests ?? 0, concurrency, send);
    const latencies: number[] = [];
    const errors: Record<string, number> = {};
    let firstError: string | undefined;
    const start = process.hrtime.bigint();
    await closedLoop(requests, concurrency, async (index, client) => {
      const outcome = await send(index, client);
      if (outcome.ok) {
        latencies.push(outcome.ms);
      } else {
        errors[outcome.kind] = (errors[outcome.kind] ?? 0) + 1;
        firstError ??= `${outcome.kind}: ${outcome.detail}`;
      }
    });
    const wallSeconds = msSince(start) / 1000;
    const errorCount = requests - latencies.length;
    return {
      concurrency,
      requests,
      successes: latencies.length,
      errors,
      errorCount,
      ...(firstError === undefined ? {} : { firstError }),
      wallSeconds,
      requestsPerSecond: ratePerSecond(latencies.length, wallSeconds),
      latencyMs: summarize(latencies),
    };
  } finally {
    for (const connection of connections) connection.close();
  }
}

type Outcome = { ok: true; ms: number } | { ok: false; kind: string; detail: string };

/** `concurrency` clients (0, 1, …) pulling request indices from one shared counter until `total` have been taken. */
async function closedLoop(total: number, concurrency: number, run: (index: number, client: number) => Promise<unknown>) {
  let next = 0;
  const client = async (_: unknown, id: number) => {
    while (next < total) await run(next++, id);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, client));
}

function roundRobin<T>(bodies: T[]): (index: number) => T {
  if (bodies.length === 0) throw new RangeError("bodies must not be empty");
  return (index) => bodies[index % bodies.length];
}

/** Image files a benchmark can send (JPEG, PNG, WebP), sorted by name so runs are repeatable. */
export async function listImages(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((name) => /\.(jpe?g|png|webp)$/i.test(name)).sort();
  if (names.length === 0) throw new Error(`no .jpg/.png/.webp images in ${dir}`);
  return names.map((name) => path.join(dir, name));
}

/**
 * One `{"image": "<base64>"}` JSON body per image file, built once so the load generator spends its time sending,
 * not encoding.
 */
export async function imageBodies(files: string[]): Promise<Buffer[]> {
  return Promise.all(
    files.map(async (file) => Buffer.from(JSON.stringify({ image: (await readFile(file)).toString("base64") }))),
  );
}

/** How an image travels in a request body: base64 inside `{"image": …}` JSON, or the file's bytes as the body. */
export type BodyForm = "json" | "binary";

export const BODY_FORMS: readonly BodyForm[] = ["json", "binary"];

/** A request body with its content type. */
export interface RequestPayload {
  body: Buffer;
  contentType: string;
}

const IMAGE_TYPES: Record<string, string> = { ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp" };

/**
 * One request per image file in the chosen body form: `json` is `{"image": "<base64>"}` (application/json),
 * `binary` is the file itself with its image content type (`image/jpeg`, `image/png`, `image/webp`), no base64 and
 * no JSON on the way. Built once, up front.
 */
export async function imagePayloads(files: string[], form: BodyForm = "json"): Promise<RequestPayload[]> {
  if (!BODY_FORMS.includes(form)) throw new RangeError(`body form must be json or binary, got "${form}"`);
  return Promise.all(
    files.map(async (file): Promise<RequestPayload> => {
      const bytes = await readFile(file);
      if (form === "json") return { body: Buffer.from(JSON.stringify({ image: bytes.toString("base64") })), contentType: "application/json" };
      return { body: bytes, contentType: IMAGE_TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream" };
    }),
  );
}

/** The photos to send: BATCHWISE_IMAGES_DIR, else ../shared/images beside the project, else data/images. */
export function defaultImagesDir(): string {
  const candidates = [process.env.BATCHWISE_IMAGES_DIR, path.resolve("..", "shared", "images"), path.resolve("data", "images")];
  const found = candidates.find((dir): dir is string => Boolean(dir) && existsSync(dir!));
  if (!found) throw new Error("no images folder: pass --images DIR or set BATCHWISE_IMAGES_DIR");
  return found;
}
