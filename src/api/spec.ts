import type { FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import type { JsonSchema, RequestContext } from "./model-api.js";
import type { HttpError } from "./errors.js";

/**
 * A spec shapes the wire format of an endpoint around the same batching core: which path, how a body is
 * validated, how encoded outputs become a JSON body or a stream, how errors look. The plain spec
 * (`specs/plain.ts`) is the default; `specs/openai.ts` implements the OpenAI chat completions format on the same interface.
 */
export interface Spec<Parsed = unknown, Res = unknown> {
  name: string;
  /** Default route path (POST). */
  path: string;
  /** True when the API's predict is an async generator for this spec (token streaming). */
  streamsPredict: boolean;
  /** More POST paths served by the same endpoint (queue, batcher, workers), e.g. /v1/completions beside chat. */
  extraPaths?: string[];
  /**
   * Extra routes, e.g. GET /v1/models. `info` is the endpoint's /info record; `registry` the server's Prometheus
   * registry, where a spec may register metrics of its own; `api` the main thread's API instance, whose
   * declarations a spec may read (the OpenAI spec: `openai.accepts`).
   */
  registerRoutes?(app: FastifyInstance, endpoint: { info: () => Record<string, unknown>; registry?: Registry; api?: object }): void;
  /**
   * Validate the JSON body (throw an HttpError 400 with a clear message). The result goes to decodeRequest.
   * `route` is the POST path that matched (`path` or one of `extraPaths`).
   */
  parseRequest(body: unknown, ctx: RequestContext, route?: string): Parsed;
  /**
   * Turn the stream of encoded outputs (exactly one for a non-streaming predict) into the HTTP response.
   * A stream body is written chunk by chunk; the first chunk is awaited before the headers go out, so errors
   * that happen before any output still get a proper status code.
   */
  respond(request: Parsed, responses: AsyncIterable<Res>, ctx: RequestContext): Promise<SpecResponse>;
  /** The error body for this wire format. */
  formatError(error: HttpError): unknown;
  /** What GET /openapi.json and /docs say about `route` (documentation: parseRequest is the spec's validator). */
  docs?(route: string): RouteDocs;
}

/** What a spec documents of one of its routes (the spec's own parser validates it; this is what /docs shows). */
export interface RouteDocs {
  summary?: string;
  /** The JSON body. */
  request?: JsonSchema;
  /** 200 answers by media type (the OpenAI spec answers JSON, or SSE with `stream: true`). */
  responses?: Record<string, JsonSchema>;
  /** The shape of an error body. */
  error?: JsonSchema;
}

export type SpecResponse =
  | { kind: "json"; status?: number; body: unknown }
  | { kind: "stream"; contentType: string; body: AsyncIterable<string> };

export function errorBody(error: HttpError) {
  return { error: { code: error.code, message: error.message } };
}

