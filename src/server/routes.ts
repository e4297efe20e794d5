import type { OutgoingHttpHeaders } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Cancellation, requestContext } from "./cancellation.js";
import type { Endpoint } from "./endpoint.js";
import { errors, HttpError } from "../api/errors.js";
import type { ServerState } from "./hooks.js";
import { accepted } from "./http-app.js";
import type { ServerMetrics } from "./metrics.js";
import { errorBody, type SpecResponse } from "../api/spec.js";
import type { Pipeline } from "./pipeline.js";
import { endpointRouteOptions, registerSpecRoutes } from "./route-options.js";
import { mediaType, Upload } from "../api/upload.js";

/**
 * The POST route(s) of each endpoint (its path and the spec's extra paths, all into the same queue), plus whatever
 * its spec adds (GET /v1/models, metrics of its own in the server's registry).
 */
export function registerEndpointRoutes(
  app: FastifyInstance,
  endpoints: Endpoint[],
  metrics: ServerMetrics,
  state: ServerState,
  pipeline: Pipeline,
  log: (line: string) => void = () => {},
) {
  for (const endpoint of endpoints) {
    for (const route of endpoint.routes) {
      app.post(route, endpointRouteOptions(endpoint, route, log), (request, reply) => handlePost(endpoint, route, request, reply, state, pipeline));
    }
    registerSpecRoutes(app, endpoint, metrics.registry, log);
  }
}

async function handlePost(endpoint: Endpoint, route: string, request: FastifyRequest, reply: FastifyReply, state: ServerState, pipeline: Pipeline) {
  // Deadline, stage times and callbacks (pipeline.ts); null when none of them is on.
  const record = pipeline.begin(request, reply, endpoint.config.path);
  const arrived = record ? pipeline.arrived(record) : undefined;
  if (arrived) await arrived;
  const finished = endpoint.track();
  const cancellation = new Cancellation();
  // The response closing before it was finished means the client went away: stop its work.
  reply.raw.once("close", () => {
    finished();
    if (!reply.raw.writableFinished) cancellation.abort();
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
  const ctx = requestContext(cancellation, request.headers, request.id);
  const response = await endpoint.handle(body, ctx, cancellation, route, record ?? undefined);
  if (response.kind === "json") return reply.code(response.status ?? 200).send(response.body);
  return stream(reply, response, cancellation, state, () => pipeline.streamStarted(request, reply));
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
    // Returned, as with every async handler that sends: compression's onSend finishes after the handler resolves.
    return reply.code(reason ? 503 : 200).type("text/plain").send(reason ? "not ready" : "ok");
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
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}

/**
 * A streaming response, written straight to the socket: each chunk the body yields is one write, made in the same
 * turn that produced it (a Readable piped by fastify added a buffer, a pipe and their ticks between a token and its
 * write). The socket's backpressure pauses the body: the next chunk is not pulled until the last one drained.
 */
async function stream(
  reply: FastifyReply,
  response: Extract<SpecResponse, { kind: "stream" }>,
  cancellation: Cancellation,
  state: ServerState,
  serverTiming: () => string | undefined,
) {
  // Await the first chunk before the headers go out, so an error before any output still gets its status code.
  const iterator = response.body[Symbol.asyncIterator]();
  let next = await iterator.next();
  const res = reply.raw;
  reply.hijack(); // fastify's onSend hooks do not run: the headers they would add are added here
  const timing = serverTiming();
  try {
    res.writeHead(200, {
      ...(reply.getHeaders() as OutgoingHttpHeaders),
      "content-type": response.contentType,
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
      ...(state.draining ? { connection: "close" } : {}),
      ...(timing ? { "server-timing": timing } : {}),
    });
    for (; !next.done; next = await iterator.next()) {
      if (!res.write(next.value) && !(await drained(res))) return;
    }
    res.end();
  } catch {
    res.destroy(); // the body failed past its own in-band error (a spec bug): the client sees a cut stream
  } finally {
    if (!res.writableEnded) cancellation.abort(); // the client went away mid-stream: stop its generation
    await iterator.return?.();
  }
}

/** Resolves true when the socket can take more, false when it closed first. */
function drained(res: FastifyReply["raw"]): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      res.off("drain", onDrain);
      res.off("close", onClose);
      resolve(ok);
    };
    const onDrain = done(true);
    const onClose = done(false);
    res.once("drain", onDrain);
    res.once("close", onClose);
  });
}
