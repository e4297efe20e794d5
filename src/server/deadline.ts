import type { IncomingHttpHeaders } from "node:http";
import { HttpError } from "../api/errors.js";

/**
 * A request's deadline: `X-Request-Timeout: <seconds>` (decimals allowed). Past it the client has stopped waiting, so
 * work of it still queued is dropped before it reaches the model and answered 504 `deadline_exceeded`.
 *
 * Without that header, `X-Stainless-Timeout` counts too: the official OpenAI SDKs send a call's `timeout` option in it
 * (whole seconds), so an OpenAI client's own timeout becomes the deadline with no change on its side.
 * A value the SDK truncated to 0 (a timeout under a second) says nothing usable and is ignored.
 *
 * @returns performance.now() at which the deadline passes, or undefined when the request has none.
 */
export function requestDeadline(headers: IncomingHttpHeaders, now = performance.now()): number | undefined {
  const given = headers["x-request-timeout"];
  if (given !== undefined) {
    const seconds = parseSeconds(given);
    if (seconds === undefined || seconds <= 0) {
      throw new HttpError(
        "invalid_request_timeout",
        `X-Request-Timeout must be a positive number of seconds, got ${JSON.stringify(String(given).slice(0, 40))}`,
      );
    }
    return now + seconds * 1000;
  }
  const sdk = headers["x-stainless-timeout"];
  if (sdk === undefined) return undefined;
  const seconds = parseSeconds(sdk);
  return seconds !== undefined && seconds > 0 ? now + seconds * 1000 : undefined;
}

function parseSeconds(value: string | string[]): number | undefined {
  if (Array.isArray(value) || !/^\s*\d+(\.\d+)?\s*$/.test(value)) return undefined;
  const seconds = Number(value);
  return Number.isFinite(seconds) ? seconds : undefined;
}
