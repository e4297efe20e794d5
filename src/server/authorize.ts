import type { FastifyRequest, onRequestAsyncHookHandler } from "fastify";
import type { AuthorizeRequest } from "../api/model-api.js";
import { HttpError, toHttpError } from "../api/errors.js";

/** An endpoint's own access rule (the endpoint option `authorize`, or its API's method). */
export type Authorize = (request: AuthorizeRequest) => boolean | Promise<boolean>;

/**
 * The onRequest hook of one endpoint's routes: runs after the server-wide hooks (shutdown, CORS, the API key), before
 * the body is read, so a refused client never uploads its image. `false` is a 401; an HttpError thrown (`forbidden`,
 * 403) is answered as it is; any other error is the rule's bug: a 500 that is logged, never a way in.
 */
export function authorizeHook(authorize: Authorize, log: (line: string) => void): onRequestAsyncHookHandler {
  return async (request: FastifyRequest) => {
    let allowed: boolean;
    try {
      allowed = await authorize(authorizeRequest(request));
    } catch (error) {
      const httpError = toHttpError(error);
      if (httpError.code === "internal_error") log(`authorize failed on ${request.url}: ${(error as Error)?.message}`);
      throw httpError;
    }
    if (allowed !== true) throw new HttpError("unauthorized", `Not authorized to call ${authorizeRequest(request).path}`, { "www-authenticate": "Bearer" });
  };
}

function authorizeRequest(request: FastifyRequest): AuthorizeRequest {
  const query = request.url.indexOf("?");
  return {
    method: request.method,
    path: query < 0 ? request.url : request.url.slice(0, query),
    headers: request.headers,
    ip: request.ip,
  };
}
