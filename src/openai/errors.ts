/** The OpenAI spec's 400: one that names the offending request field, as OpenAI's errors do (`param`). */
import { HttpError, type ErrorCode } from "../api/errors.js";

export class InvalidRequestError extends HttpError {
  constructor(message: string, readonly param: string | null = null, code: ErrorCode = "invalid_request") {
    super(code, message);
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
