/**
 * The error catalogue: every error the server sends has a stable code, an HTTP status and a message a client can
 * act on. Stack traces and file paths never reach the wire.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export const errors = {
  badRequest: (message: string, code = "bad_request") => new HttpError(400, code, message),
  unauthorized: () =>
    new HttpError(401, "unauthorized", "Missing or invalid API key (send X-API-Key or Authorization: Bearer)", {
      "www-authenticate": "Bearer",
    }),
  notFound: (what: string) => new HttpError(404, "not_found", `${what} not found`),
  payloadTooLarge: (limit: number) =>
    new HttpError(413, "payload_too_large", `Request body is larger than the limit of ${limit} bytes`),
  unsupportedMediaType: (type: string) =>
    new HttpError(415, "unsupported_media_type", `Content-Type ${type.slice(0, 100)} is not supported; send application/json`),
  requestTimeout: (seconds: number) =>
    new HttpError(408, "request_timeout", `The request was not received completely within ${seconds} s`),
  headersTooLarge: () => new HttpError(431, "headers_too_large", "The request headers are larger than the server accepts"),
  malformedRequest: () => new HttpError(400, "malformed_request", "The HTTP request is malformed"),
  queueFull: (retryAfterSeconds: number) =>
    new HttpError(503, "queue_full", "The server is at capacity; retry later", {
      "retry-after": String(retryAfterSeconds),
    }),
  notReady: () => new HttpError(503, "not_ready", "The model is not ready yet", { "retry-after": "1" }),
  shuttingDown: () => new HttpError(503, "shutting_down", "The server is shutting down", { "retry-after": "1" }),
  queueTimeout: (seconds: number) =>
    new HttpError(504, "queue_timeout", `The request waited more than ${seconds} s for a free worker`),
  predictTimeout: (seconds: number) =>
    new HttpError(504, "predict_timeout", `The model did not answer within ${seconds} s; its worker is being replaced`),
  workerCrashed: () =>
    new HttpError(500, "worker_crashed", "The worker running this request stopped unexpectedly; it is being replaced"),
  // A model's errors often name its files (onnxruntime: "Load model from /path/model.onnx failed"): cleaned.
  predictFailed: (message: string) => new HttpError(500, "predict_failed", `Prediction failed: ${clean(message)}`),
  internal: (message = "Internal server error") => new HttpError(500, "internal_error", message),
};

/** Turn anything thrown into an HttpError without leaking internals. */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  const e = error as { name?: string; status?: number; statusCode?: number; code?: unknown; message?: string };
  if (e?.name === "BadRequestError") {
    return new HttpError(e.status ?? 400, typeof e.code === "string" ? e.code : "bad_request", e.message ?? "Bad request");
  }
  const status = e?.statusCode ?? e?.status;
  if (typeof status === "number" && status >= 400 && status < 500) {
    // fastify's own client errors (bad JSON, body limit, content type) carry a statusCode
    const code = status === 413 ? "payload_too_large" : status === 415 ? "unsupported_media_type" : "bad_request";
    return new HttpError(status, code, clean(e.message ?? "Bad request"));
  }
  return errors.internal();
}

/** Keep a message to one line without paths, so library messages are safe to show. */
export function clean(message: string): string {
  return message
    .split("\n")[0]
    .replace(/(?:file:\/\/)?(?:\/[\w.@+-]+){2,}/g, "<path>")
    .slice(0, 500);
}

/**
 * An error thrown by decodeRequest is about the request: a 400 (or the status a BadRequestError/HttpError asks for),
 * never a 500, with a cleaned one-line message.
 */
export function decodeFailed(error: unknown): HttpError {
  const e = error as { name?: string };
  if (error instanceof HttpError || e?.name === "BadRequestError") return toHttpError(error);
  return new HttpError(400, "invalid_input", clean((error as Error)?.message ?? String(error)));
}
