import { randomUUID } from "node:crypto";
import { errorCodes, HttpError, isUserError, toHttpError, type ErrorCode } from "../api/errors.js";

/**
 * Failures are logged on the server, not leaked to clients. When decodeRequest, predict (in any thread),
 * encodeResponse or setup fails, the operator gets ONE log entry with the request id, the endpoint, the error's
 * class, message and stack; the client gets the failure's code and the request id to quote, never the internal
 * message (a model's errors name its files and internals) unless the server runs with `exposeErrors: true`.
 * Errors about the client's input (BadRequestError, HttpError 4xx) are the client's business: answered as they ask,
 * not logged.
 */

/** An error's description as it crosses a thread boundary: structured clone keeps no class, so its parts travel. */
export interface ErrorDetail {
  name: string;
  message: string;
  stack?: string;
}

export function errorDetail(error: unknown): ErrorDetail {
  if (error instanceof Error) {
    return { name: error.name || error.constructor?.name || "Error", message: String(error.message), stack: error.stack };
  }
  return { name: error === null ? "null" : typeof error, message: String(error) };
}

/** What really failed behind a 5xx: kept on the HttpError for the log, never serialised into a body. */
const DETAIL = Symbol("batchwise.failureDetail");

export function withDetail<E extends HttpError>(error: E, detail: ErrorDetail | undefined): E {
  if (detail) Object.defineProperty(error, DETAIL, { value: detail, enumerable: false });
  return error;
}

export function detailOf(error: unknown): ErrorDetail | undefined {
  return typeof error === "object" && error !== null ? (error as Record<symbol, ErrorDetail | undefined>)[DETAIL] : undefined;
}

/** Codes that mean the model or the server failed (not the client, not capacity): each is logged once. */
const LOGGED = new Set<string>([
  "decode_failed",
  "predict_failed",
  "encode_failed",
  "setup_failed",
  "internal_error",
  "worker_crashed",
  "poison_input",
  "predict_timeout",
]);
/** Codes whose message would otherwise carry the internal error's own: the body gets the catalogue's instead. */
const REWORDED = new Set<string>(["decode_failed", "predict_failed", "encode_failed", "setup_failed", "internal_error"]);

export interface FailureLogOptions {
  log: (line: string) => void;
  /** Development: a 500's body carries the internal error's message too. */
  exposeErrors?: boolean;
}

/** A request id from the client's `X-Request-Id` when it is a sane token, else a fresh one. */
export function requestIdFrom(header: string | string[] | undefined): string {
  const given = Array.isArray(header) ? header[0] : header;
  return given !== undefined && /^[\w.:@/+=-]{1,128}$/.test(given) ? given : randomUUID();
}

/** One log entry: `<code> request <id> <endpoint>: <Class>: <message>`, then the stack's frames. */
export function formatFailure(code: string, requestId: string | undefined, endpoint: string, detail: ErrorDetail): string {
  const head = `${code}${requestId ? ` request ${requestId}` : ""} ${endpoint}: ${detail.name}: ${detail.message}`;
  const frames = detail.stack?.split("\n").filter((line) => /^\s+at /.test(line)) ?? [];
  return frames.length ? `${head}\n${frames.join("\n")}` : head;
}

/**
 * Turns what one request's stage threw into the HttpError the client receives, logging it when it is a failure of
 * the model or the server. Each stage's failure passes through here exactly once (see Endpoint.handle).
 */
export class RequestFailures {
  /**
   * Errors this request already logged. One HttpError may fail a whole batch (a worker crash): each request that
   * receives it logs it under its own id, but no request logs it twice.
   */
  private readonly seen = new WeakSet<HttpError>();

  constructor(
    private readonly options: FailureLogOptions,
    readonly requestId: string,
    readonly endpoint: string,
  ) {}

  /** decodeRequest: an HttpError/BadRequestError is the client's (4xx as asked); anything else is a bug (500). */
  decode(error: unknown): HttpError {
    if (error instanceof HttpError || isUserError(error)) return toHttpError(error);
    return this.fail("decode_failed", errorDetail(error));
  }

  /** What the queue/worker answered with: predict_failed (with the worker's error), a crash, a timeout, … */
  predict(error: unknown): HttpError {
    if (error instanceof HttpError || isUserError(error)) return this.logged(toHttpError(error));
    return this.fail("predict_failed", errorDetail(error));
  }

  /** encodeResponse: as decode, a thrown HttpError/BadRequestError answers as it asks; anything else is a bug. */
  encode(error: unknown): HttpError {
    if (error instanceof HttpError || isUserError(error)) return this.logged(toHttpError(error));
    return this.fail("encode_failed", errorDetail(error));
  }

  private fail(code: ErrorCode, detail: ErrorDetail): HttpError {
    return this.logged(withDetail(new HttpError(code), detail));
  }

  /** Log a failure code (once: the error is marked) and give the client the safe message with the request id. */
  private logged(error: HttpError): HttpError {
    if (!LOGGED.has(error.code) || this.seen.has(error)) return error;
    const detail = detailOf(error) ?? { name: error.code, message: error.message };
    this.options.log(formatFailure(error.code, this.requestId, this.endpoint, detail));
    this.seen.add(error);
    if (!REWORDED.has(error.code)) return error;
    const base = errorCodes[error.code as ErrorCode]?.message ?? "Internal server error";
    const exposed = this.options.exposeErrors ? `: ${detail.name}: ${detail.message.split("\n")[0].slice(0, 1000)}` : "";
    const safe = new HttpError(error.code as ErrorCode, `${base}${exposed} (request id ${this.requestId})`, error.headers);
    this.seen.add(safe);
    return safe;
  }
}


/**
 * A setup() that threw in a worker, rebuilt on the main thread with the worker's own stack: what `serve` rejects with
 * (and node prints when nothing catches it) and what the server logs, so the operator sees where setup broke.
 */
export class SetupError extends Error {
  /** The original error's class, message and stack (not enumerable: node's report of an uncaught one stays short). */
  declare readonly detail: ErrorDetail;

  constructor(where: string, detail: ErrorDetail) {
    super(`setup() failed in ${where}: ${detail.name}: ${detail.message}`);
    this.name = "SetupError";
    Object.defineProperty(this, "detail", { value: detail, enumerable: false });
    const frames = detail.stack?.split("\n").filter((line) => /^\s+at /.test(line)) ?? [];
    if (frames.length) this.stack = `${this.name}: ${this.message}\n${frames.join("\n")}`;
  }
}

export function setupError(where: string, detail: ErrorDetail): SetupError {
  return new SetupError(where, detail);
}

/** The log entry of a failed setup: `setup_failed <endpoint>: SetupError: setup() failed in … : <Class>: <message>`. */
export function formatSetupFailure(endpoint: string, error: unknown): string {
  return formatFailure("setup_failed", undefined, endpoint, errorDetail(error));
}
