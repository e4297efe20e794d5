import type { FastifyInstance } from "fastify";
import type { RequestContext } from "../api.js";
import type { HttpError } from "./errors.js";

/**
 * A spec shapes the wire format of an endpoint around the same batching core: which path, how a body is
 * validated, how encoded outputs become a JSON body or a stream, how errors look. The plain spec below is the
 * default; `specs/openai.ts` implements the OpenAI chat completions format on the same interface.
 */
export interface Spec<Parsed = unknown, Res = unknown> {
  name: string;
  /** Default route path (POST). */
  path: string;
  /** True when the API's predict is an async generator for this spec (token streaming). */
  streamsPredict: boolean;
  /** Extra routes, e.g. GET /v1/models. `info` is the endpoint's /info record. */
  registerRoutes?(app: FastifyInstance, endpoint: { info: () => Record<string, unknown> }): void;
  /** Validate the JSON body (throw an HttpError 400 with a clear message). The result goes to decodeRequest. */
  parseRequest(body: unknown, ctx: RequestContext): Parsed;
  /**
   * Turn the stream of encoded outputs (exactly one for a non-streaming predict) into the HTTP response.
   * A stream body is written chunk by chunk; the first chunk is awaited before the headers go out, so errors
   * that happen before any output still get a proper status code.
   */
  respond(request: Parsed, responses: AsyncIterable<Res>, ctx: RequestContext): Promise<SpecResponse>;
  /** The error body for this wire format. */
  formatError(error: HttpError): unknown;
}

export type SpecResponse =
  | { kind: "json"; status?: number; body: unknown }
  | { kind: "stream"; contentType: string; body: AsyncIterable<string> };

export function errorBody(error: HttpError) {
  return { error: { code: error.code, message: error.message } };
}

/** The default spec: JSON in, JSON out; a streaming API answers NDJSON, one line per output. */
export function plainSpec(options: { path?: string; stream?: boolean } = {}): Spec {
  const stream = options.stream ?? false;
  return {
    name: "plain",
    path: options.path ?? "/predict",
    streamsPredict: stream,
    parseRequest: (body) => body,
    async respond(_request, responses) {
      if (!stream) {
        for await (const body of responses) return { kind: "json", body };
        throw new Error("predict produced no output");
      }
      return {
        kind: "stream",
        contentType: "application/x-ndjson",
        body: (async function* () {
          for await (const item of responses) yield JSON.stringify(item) + "\n";
        })(),
      };
    },
    formatError: errorBody,
  };
}
