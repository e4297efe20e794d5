import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";

/**
 * API-key check. Keys are compared as SHA-256 digests with timingSafeEqual, so neither the length nor the content
 * of the key leaks through response timing.
 */
export function apiKeyMatcher(apiKey: string): (headers: IncomingHttpHeaders) => boolean {
  const expected = digest(apiKey);
  return (headers) => {
    const given = presentedKey(headers);
    return given !== undefined && timingSafeEqual(digest(given), expected);
  };
}

function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const header = headers["x-api-key"];
  if (typeof header === "string") return header;
  const authorization = headers.authorization;
  if (typeof authorization === "string" && /^bearer /i.test(authorization)) return authorization.slice(7).trim();
  return undefined;
}

const digest = (value: string) => createHash("sha256").update(value).digest();
