/**
 * The error catalogue: every error the server answers with has a stable code, an HTTP status and a default message,
 * declared here and nowhere else (a test fails when code throws a code missing from it). Stack traces and file paths
 * never reach the wire.
 */
export const errorCodes = {
  // 400: the client sent something the server cannot use
  bad_request: { status: 400, message: "The request is invalid" },
  malformed_request: { status: 400, message: "The HTTP request is malformed" },
  invalid_url: { status: 400, message: "The URL cannot be decoded" },
  empty_body: { status: 400, message: "The request body is empty: send a JSON document" },
  invalid_json: { status: 400, message: "The body is not valid JSON" },
  nested_too_deep: { status: 400, message: "The JSON body is nested too deeply" },
  forbidden_key: { status: 400, message: "The JSON body has a forbidden key (__proto__, or constructor.prototype)" },
  invalid_body: { status: 400, message: "The body does not have the shape this endpoint expects" },
  invalid_multipart: { status: 400, message: "The multipart/form-data body is malformed" },
  missing_file: { status: 400, message: "The multipart/form-data body has no file field" },
  invalid_input: { status: 400, message: "The model API refused the input" },
  missing_image: { status: 400, message: 'Missing "image": send the image as the body, a multipart file, or {"image": "<base64>"}' },
  invalid_image_type: { status: 400, message: '"image" must be a base64 string' },
  invalid_base64: { status: 400, message: '"image" is not valid base64' },
  empty_image: { status: 400, message: "The image is empty" },
  not_an_image: { status: 400, message: "The data is not an image (expected JPEG, PNG or WebP)" },
  unsupported_image_format: { status: 400, message: "Unsupported image format: send JPEG, PNG or WebP" },
  invalid_image: { status: 400, message: "The image could not be decoded: it is corrupt" },
  truncated_image: { status: 400, message: "The image is truncated or incomplete" },
  invalid_request: { status: 400, message: "The request is invalid" },
  unsupported_parameter: { status: 400, message: "The request uses a parameter this server cannot honour" },
  unsupported_schema: { status: 400, message: "The JSON schema uses keywords this server cannot enforce" },
  context_length_exceeded: { status: 400, message: "The prompt does not fit the model's context window" },
  invalid_request_timeout: { status: 400, message: "X-Request-Timeout must be a positive number of seconds" },
  // 401–431: authentication, routing, limits
  unauthorized: { status: 401, message: "Missing or invalid API key (send X-API-Key or Authorization: Bearer)" },
  forbidden: { status: 403, message: "This request is not allowed to use this endpoint" },
  not_found: { status: 404, message: "Not found" },
  request_timeout: { status: 408, message: "The request was not received completely in time" },
  payload_too_large: { status: 413, message: "The request body is larger than the server accepts" },
  image_too_large: { status: 413, message: "The image has more pixels than the limit" },
  unsupported_media_type: { status: 415, message: "This Content-Type is not supported" },
  headers_too_large: { status: 431, message: "The request headers are larger than the server accepts" },
  // 499: the client went away (never sent; recorded in metrics and logs)
  client_closed: { status: 499, message: "Client closed the request" },
  // 500: the model or the server failed
  internal_error: { status: 500, message: "Internal server error" },
  predict_failed: { status: 500, message: "Prediction failed" },
  decode_failed: { status: 500, message: "Decoding the request failed on the server (a bug in the model API, not in the request)" },
  encode_failed: { status: 500, message: "Encoding the response failed on the server" },
  setup_failed: { status: 500, message: "The model's setup failed; the server cannot serve it" },
  worker_crashed: { status: 500, message: "The worker running this request stopped unexpectedly; it is being replaced" },
  poison_input: { status: 500, message: "This input stopped a worker twice; it is not retried again" },
  // 503/504: capacity and time
  not_ready: { status: 503, message: "The model is not ready yet" },
  draining: { status: 503, message: "The server is draining before shutdown" },
  shutting_down: { status: 503, message: "The server is shutting down" },
  queue_full: { status: 503, message: "The server is at capacity; retry later" },
  queue_timeout: { status: 504, message: "The request waited too long for a free worker" },
  predict_timeout: { status: 504, message: "The model did not answer in time; its worker is being replaced" },
  deadline_exceeded: { status: 504, message: "The request's deadline (X-Request-Timeout) passed before the model could run it" },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCodes;

/** An error with a catalogue code: what the client receives as `{"error": {"code", "message"}}`. */
export class HttpError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string = errorCodes[code].message,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
    this.status = errorCodes[code].status;
  }
}

/** A user API's own error (a BadRequestError with a code of its own): status and code as it asked. */
class ApiHttpError extends HttpError {
  constructor(status: number, code: string, message: string) {
    super("bad_request", message);
    Object.defineProperty(this, "status", { value: status });
    Object.defineProperty(this, "code", { value: code });
  }
}

const retryAfter = (seconds: number) => ({ "retry-after": String(seconds) });

/** The catalogue entries that take arguments or headers; the rest are `new HttpError(code)`. */
export const errors = {
  badRequest: (message: string, code: ErrorCode = "bad_request") => new HttpError(code, message),
  unauthorized: () => new HttpError("unauthorized", undefined, { "www-authenticate": "Bearer" }),
  notFound: (what: string) => new HttpError("not_found", `${what} not found`),
  unsupportedMediaType: (type: string, accepted: string) =>
    new HttpError("unsupported_media_type", `Content-Type ${type.slice(0, 100)} is not supported; send ${accepted}`),
  requestTimeout: (seconds: number) =>
    new HttpError("request_timeout", `The request was not received completely within ${seconds} s`),
  queueFull: (retryAfterSeconds: number) => new HttpError("queue_full", undefined, retryAfter(retryAfterSeconds)),
  notReady: () => new HttpError("not_ready", undefined, retryAfter(1)),
  draining: () => new HttpError("draining", undefined, retryAfter(1)),
  shuttingDown: () => new HttpError("shutting_down", undefined, retryAfter(1)),
  queueTimeout: (seconds: number) =>
    new HttpError("queue_timeout", `The request waited more than ${seconds} s for a free worker`),
  predictTimeout: (seconds: number) =>
    new HttpError("predict_timeout", `The model did not answer within ${seconds} s; its worker is being replaced`),
};

/**
 * Errors a model API throws about the client's input. Recognised by a brand, not `instanceof`, so an error from a
 * second copy of batchwise (a user project with its own install, a worker loading another build) still counts.
 */
const USER_ERROR = Symbol.for("batchwise.userError");

export function brandUserError(error: Error): void {
  Object.defineProperty(error, USER_ERROR, { value: true });
}

export function isUserError(error: unknown): error is Error & { code?: unknown; status?: unknown } {
  return typeof error === "object" && error !== null && (error as Record<symbol, unknown>)[USER_ERROR] === true;
}

/** Turn anything thrown into an HttpError without leaking internals. */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (isUserError(error)) return fromUserError(error);
  const e = error as { status?: number; statusCode?: number; message?: string };
  const status = e?.statusCode ?? e?.status;
  if (typeof status === "number" && status >= 400 && status < 500) {
    // fastify's own client errors (bad JSON, body limit, content type) carry a statusCode
    const code = status === 413 ? "payload_too_large" : status === 415 ? "unsupported_media_type" : "bad_request";
    return new HttpError(code, clean(e.message ?? "Bad request"));
  }
  return new HttpError("internal_error");
}

function fromUserError(error: Error & { code?: unknown; status?: unknown }): HttpError {
  const code = typeof error.code === "string" ? error.code : "bad_request";
  const status = typeof error.status === "number" && error.status >= 400 && error.status < 500 ? error.status : 400;
  const message = clean(error.message || "Bad request");
  const known = errorCodes[code as ErrorCode];
  return known && known.status === status ? new HttpError(code as ErrorCode, message) : new ApiHttpError(status, code, message);
}

/** Keep a message to one line without paths, so library messages are safe to show. */
export function clean(message: string): string {
  return message
    .split("\n")[0]
    .replace(/(?:file:\/\/)?(?:\/[\w.@+-]+){2,}/g, "<path>")
    .slice(0, 500);
}
