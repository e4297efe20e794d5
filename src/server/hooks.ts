import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { apiKeyMatcher } from "./auth.js";
import { errors } from "./errors.js";
import type { ServerMetrics } from "./metrics.js";

/** Where the server is in its life; the probes and the hooks read it. */
export interface ServerState {
  setupDone: boolean;
  startupFailed: boolean;
  /** SIGTERM came: not ready (load balancers stop sending), but everything that arrives is still served. */
  draining: boolean;
  /** Past the drain period: new requests are refused, in-flight ones finish. */
  closing: boolean;
}

/** Routes a load balancer or an orchestrator polls: never behind the API key. */
export const PROBE_PATHS = new Set(["/health", "/livez", "/readyz"]);

/** Hooks every request passes: shutdown, CORS, authentication, metrics. Order matters and is explained inline. */
export function registerHooks(
  app: FastifyInstance,
  options: { state: ServerState; corsOrigins?: string[]; apiKey?: string; metrics: ServerMetrics },
) {
  const { state, metrics } = options;
  // Closing refuses only requests whose headers arrive after it began; one already being received (its body still
  // uploading, say) is in flight and gets its answer.
  app.addHook("onRequest", async () => {
    if (state.closing) throw errors.shuttingDown();
  });
  // CORS before auth: browsers send preflights without credentials (a 401 there blocked every cross-origin call to a
  // keyed server), and a refusal must carry the CORS headers for the page to read it.
  if (options.corsOrigins?.length) registerCors(app, options.corsOrigins);
  if (options.apiKey) {
    const matches = apiKeyMatcher(options.apiKey);
    app.addHook("onRequest", async (request) => {
      if (!PROBE_PATHS.has(request.url.split("?")[0]) && !matches(request.headers)) throw errors.unauthorized();
    });
  }
  // Once draining, responses close their connection: keep-alive clients reconnect (through the balancer, elsewhere)
  // instead of holding the shutdown open.
  app.addHook("onSend", async (_request, reply) => {
    if (state.draining) reply.header("connection", "close");
  });
  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unmatched";
    metrics.requests.inc({ route, status: String(reply.statusCode) });
    metrics.latency.observe({ route }, reply.elapsedTime / 1000);
  });
}

function registerCors(app: FastifyInstance, origins: string[]) {
  const allowed = new Set(origins);
  app.addHook("onRequest", async (request: FastifyRequest, reply: FastifyReply) => {
    const origin = request.headers.origin;
    if (origin && (allowed.has("*") || allowed.has(origin))) {
      reply.header("access-control-allow-origin", origin);
      reply.header("vary", "Origin");
      if (request.method === "OPTIONS") {
        reply.header("access-control-allow-headers", "content-type, authorization, x-api-key");
        reply.header("access-control-allow-methods", "GET, POST");
        return reply.code(204).send();
      }
    }
  });
}
