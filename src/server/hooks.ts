import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { apiKeyMatcher } from "./auth.js";
import { errors } from "../api/errors.js";
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
const PROBE_PATHS = new Set(["/health", "/livez", "/readyz"]);

/** Hooks every request passes: shutdown, CORS, authentication, metrics. Order matters and is explained inline. */
export function registerHooks(
  app: FastifyInstance,
  options: { state: ServerState; corsOrigins?: string[]; apiKey?: string; metrics: ServerMetrics },
) {
  const { state, metrics } = options;
  // Callback-style hooks: an async hook costs a promise per request per hook, and these run on every request.
  // Closing refuses only requests whose headers arrive after it began; one already being received (its body still
  // uploading, say) is in flight and gets its answer.
  app.addHook("onRequest", (_request, _reply, done) => done(state.closing ? errors.shuttingDown() : undefined));
  // CORS before auth: browsers send preflights without credentials (a 401 there blocked every cross-origin call to a
  // keyed server), and a refusal must carry the CORS headers for the page to read it.
  if (options.corsOrigins?.length) registerCors(app, options.corsOrigins);
  if (options.apiKey) {
    const matches = apiKeyMatcher(options.apiKey);
    app.addHook("onRequest", (request, _reply, done) =>
      done(!PROBE_PATHS.has(request.url.split("?")[0]) && !matches(request.headers) ? errors.unauthorized() : undefined),
    );
  }
  // Once draining, responses close their connection: keep-alive clients reconnect (through the balancer, elsewhere)
  // instead of holding the shutdown open.
  app.addHook("onSend", (_request, reply, payload, done) => {
    if (state.draining) reply.header("connection", "close");
    done(null, payload);
  });
  // prom-client hashes the label values on every call: keep the labelled children, one per route and status.
  const recorders = new Map<string, { count: () => void; observe: (seconds: number) => void }>();
  app.addHook("onResponse", (request, reply, done) => {
    const route = request.routeOptions.url ?? "unmatched";
    const key = `${reply.statusCode} ${route}`;
    let recorder = recorders.get(key);
    if (!recorder) {
      const counter = metrics.requests.labels({ route, status: String(reply.statusCode) });
      const histogram = metrics.latency.labels({ route });
      recorder = { count: () => counter.inc(), observe: (seconds) => histogram.observe(seconds) };
      recorders.set(key, recorder);
    }
    recorder.count();
    recorder.observe(reply.elapsedTime / 1000);
    done();
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
