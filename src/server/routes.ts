import { Readable } from "node:stream";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RequestContext } from "../api.js";
import type { Endpoint } from "./endpoint.js";
import { errors, HttpError } from "./errors.js";
import type { ServerState } from "./hooks.js";
import { accepted } from "./http-app.js";
import type { ServerMetrics } from "./metrics.js";
import { errorBody, type SpecResponse } from "./spec.js";
import { mediaType, Upload } from "./upload.js";

/**
 * The POST route(s) of each endpoint (its path and the spec's extra paths, all into the same queue), plus whatever
 * its spec adds (GET /v1/models, metrics of its own in the server's registry).
 */
export function registerEndpointRoutes(app: FastifyInstance, endpoints: Endpoint[], metrics: ServerMetrics) {
  for (const endpoint of endpoints) {
    for (const route of endpoint.routes) {
      app.post(route, { config: { spec: endpoint.spec } }, (request, reply) => handlePost(endpoint, route, request, reply));
    }
    endpoint.spec.registerRoutes?.(app, { info: () => endpoint.info(), registry: metrics.registry });
  }
}

async function handlePost(endpoint: Endpoint, route: string, request: FastifyRequest, reply: FastifyReply) {
  const finished = endpoint.track();
  const controller = new AbortController();
  // The response closing before it was finished means the client went away: stop its work.
  reply.raw.once("close", () => {
    finished();
    if (!reply.raw.writableFinished) controller.abort();
  });
  let body = request.body;
  if (Buffer.isBuffer(body) || body instanceof Upload) {
    // Binary parsers are registered for every endpoint's types together: this endpoint may not take this one.
    const type = body instanceof Upload ? "multipart/form-data" : mediaType(request.headers["content-type"]);
    const binary = endpoint.binaryTypes;
    if (binary.length === 0 || (type !== "multipart/form-data" && !binary.includes(type))) {
      throw errors.unsupportedMediaType(request.headers["content-type"] ?? "(none)", accepted(binary));
    }
    if (Buffer.isBuffer(body)) body = new Upload(body, type);
  }
  const ctx: RequestContext = { signal: controller.signal, headers: request.headers, state: {} };
  return send(reply, await endpoint.handle(body, ctx, route), controller);
}

/**
 * Probes and introspection: /health (the seed's), /livez and /readyz (what Kubernetes and load balancers poll),
 * /info and /metrics.
 */
export function registerProbeRoutes(
  app: FastifyInstance,
  options: { state: ServerState; endpoints: Endpoint[]; metrics: ServerMetrics; info: () => Record<string, unknown> },
) {
  const { state, endpoints, metrics } = options;
  const notReadyReason = async (): Promise<HttpError | undefined> => {
    if (state.draining || state.closing) return errors.draining();
    if (!state.setupDone) return errors.notReady();
    for (const endpoint of endpoints) {
      if (!(await endpoint.healthy())) return new HttpError("not_ready", `The model at ${endpoint.config.path} is not healthy`, { "retry-after": "1" });
    }
    return undefined;
  };
  app.get("/health", async (_request, reply) => {
    const reason = await notReadyReason();
    reply.code(reason ? 503 : 200).type("text/plain").send(reason ? "not ready" : "ok");
  });
  app.get("/readyz", async (_request, reply) => {
    const reason = await notReadyReason();
    if (reason) return reply.code(reason.status).headers(reason.headers).send(errorBody(reason));
    return reply.type("text/plain").send("ok");
  });
  // Alive unless startup failed for good: a restart is then the only way out. Busy or draining is still alive.
  app.get("/livez", async (_request, reply) => {
    if (state.startupFailed) return reply.code(503).send(errorBody(new HttpError("not_ready", "Startup failed; restart the server")));
    return reply.type("text/plain").send("ok");
  });
  app.get("/info", async () => options.info());
  app.get("/metrics", async (_request, reply) => {
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}

async function send(reply: FastifyReply, response: SpecResponse, controller: AbortController) {
  if (response.kind === "json") return reply.code(response.status ?? 200).send(response.body);
  // Await the first chunk before the headers go out, so an error before any output still gets its status code.
  const iterator = response.body[Symbol.asyncIterator]();
  const first = await iterator.next();
  async function* chunks() {
    try {
      if (!first.done) yield first.value;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    } finally {
      controller.abort(); // no-op when finished; stops generation when the client went away mid-stream
      await iterator.return?.();
    }
  }
  return reply
    .code(200)
    .headers({ "content-type": response.contentType, "cache-control": "no-cache", "x-accel-buffering": "no" })
    .send(Readable.from(chunks(), { objectMode: false }));
}
