import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { RequestContext } from "../api.js";
import { availableCores } from "../runtime/device.js";
import { apiKeyMatcher } from "./auth.js";
import { parseJsonBody } from "./json-body.js";
import { Endpoint, type EndpointOptions } from "./endpoint.js";
import { clean, errors, HttpError, toHttpError } from "./errors.js";
import { ServerMetrics } from "./metrics.js";
import { errorBody, type Spec, type SpecResponse } from "./spec.js";

export interface ServerOptions extends Partial<EndpointOptions> {
  /** Several APIs on one server, each on its own path. Without it, the top-level endpoint options describe one. */
  endpoints?: EndpointOptions[];
  /** Largest request body in bytes (→ 413). Default 16 MiB. */
  maxPayloadSize?: number;
  /** Require this key (X-API-Key or Authorization: Bearer) on every route but /health. Env: BATCHWISE_API_KEY. */
  apiKey?: string;
  /** Interface to bind. Default 127.0.0.1: exposing a model to the network is a decision, not a default. */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** Seconds a client may take to send a whole request (slow clients cannot hold the server). Default 30. */
  requestTimeout?: number;
  /** Allow browsers from these origins (CORS). Default: none. */
  corsOrigins?: string[];
  /**
   * Intra-op threads per model worker. Default: the cores split evenly between every worker of every endpoint, so N
   * workers never oversubscribe them. Fewer leaves cores to the main thread (HTTP, decoding on libuv's pool).
   */
  threadsPerWorker?: number;
  /** false silences the server; a function receives each log line. Request bodies are never logged. */
  log?: boolean | ((line: string) => void);
}

export interface ListenOptions {
  /** Resolve only after every worker finished setup (default true). With false, /health answers 503 until then. */
  waitForReady?: boolean;
}

/** A running (or ready to run) server. */
export interface BatchwiseServer {
  readonly app: FastifyInstance;
  readonly endpoints: Endpoint[];
  /** Resolves when every worker has finished setup; rejects with the setup error. */
  readonly ready: Promise<void>;
  /** Bind and serve. Resolves with the base URL. */
  listen(options?: ListenOptions): Promise<string>;
  /** The base URL once listening. */
  readonly url: string;
  /** Stop accepting, finish in-flight requests, stop the workers. */
  close(): Promise<void>;
  info(): Record<string, unknown>;
}

/**
 * Build a server for one or more model APIs.
 *
 * @example
 * ```ts
 * const server = await createServer({ api: imageClassifier(), maxBatchSize: 64, batchTimeout: 0.01 });
 * const url = await server.listen();   // http://127.0.0.1:8000
 * ```
 */
export async function createServer(options: ServerOptions): Promise<BatchwiseServer> {
  const log = makeLogger(options.log);
  const endpointOptions = options.endpoints ?? (options.api ? [options as EndpointOptions] : []);
  if (endpointOptions.length === 0) throw new Error("createServer needs `api` or `endpoints`");
  const apiKey = options.apiKey ?? process.env.BATCHWISE_API_KEY;
  // Fail closed: an empty key (`--api-key "$UNSET_VAR"`) would otherwise silently serve without authentication.
  if (apiKey !== undefined && apiKey.trim() === "") {
    throw new Error("The API key is empty (apiKey / --api-key / BATCHWISE_API_KEY): set a key, or leave it unset to serve without one");
  }

  // Split the cores between every worker of every endpoint so N workers never oversubscribe them.
  const totalRunners = endpointOptions.reduce((sum, e) => sum + Math.max(1, e.workersPerDevice ?? 1), 0);
  const threads = options.threadsPerWorker ?? Math.max(1, Math.floor(availableCores() / totalRunners));
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`threadsPerWorker must be a positive integer, got ${threads}`);
  let metrics: ServerMetrics | undefined;
  const endpoints: Endpoint[] = [];
  for (const e of endpointOptions) {
    endpoints.push(await Endpoint.create(e, threads, (path, size) => metrics?.batchSize.observe({ endpoint: path }, size), log));
  }
  const paths = endpoints.map((e) => e.config.path);
  if (new Set(paths).size !== paths.length) throw new Error(`Two endpoints share a path: ${paths.join(", ")}`);
  metrics = new ServerMetrics(
    endpoints.map((e) => ({ path: e.config.path, queueDepth: () => e.batcher.depth, workers: () => e.pool.readyCount })),
  );

  const maxPayloadSize = options.maxPayloadSize ?? 16 * 1024 * 1024;
  const requestTimeout = options.requestTimeout ?? 30;
  const app = Fastify({
    logger: false,
    bodyLimit: maxPayloadSize,
    requestTimeout: requestTimeout * 1000,
    http: {
      // Node enforces requestTimeout on a request's BODY only while headersTimeout ≤ requestTimeout (its default,
      // 60 s, is not lowered when fastify sets requestTimeout after construction): without this, a client that sent
      // headers and half a body held its connection until the 120 s idle timeout, forever if it trickled bytes.
      headersTimeout: requestTimeout * 1000,
      // Timeouts are checked on this interval (Node's default: every 30 s), so a short requestTimeout means it.
      connectionsCheckingInterval: 1000,
    },
    clientErrorHandler: (error, socket) => answerClientError(error, socket, requestTimeout),
    // A URL fastify cannot decode ("/inf%o") never reaches setErrorHandler: answer it in the catalogue's shape too.
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).code(400).send(errorBody(errors.badRequest(clean(error.message), "invalid_url")));
    },
    connectionTimeout: 120_000,
    keepAliveTimeout: 5_000,
    // Our own onRequest hook below refuses requests that arrive while draining, in the catalogue's shape.
    return503OnClosing: false,
    forceCloseConnections: "idle",
  });

  // The wire format is JSON: a text/plain body (which fastify parses by default) gets a 415 rather than reaching
  // decodeRequest as a string the API never expected.
  app.removeContentTypeParser("text/plain");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_request, text, done) => {
    try {
      done(null, parseJsonBody(text as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  let setupDone = false;
  let draining = false;
  const ready = Promise.all(endpoints.map((e) => e.start())).then(() => {
    setupDone = true;
  });
  ready.catch(() => {}); // observed by listen(); avoid an unhandled rejection when nobody listens

  // Draining refuses only requests whose headers arrive after shutdown began; one already being received when the
  // signal came (its body still uploading, say) is in flight and gets its answer.
  app.addHook("onRequest", async () => {
    if (draining) throw errors.shuttingDown();
  });
  // CORS before auth: browsers send preflights without credentials (a 401 there blocked every cross-origin call
  // to a keyed server), and a refusal must carry the CORS headers for the page to read it.
  if (options.corsOrigins?.length) registerCors(app, options.corsOrigins);
  if (apiKey) {
    const matches = apiKeyMatcher(apiKey);
    app.addHook("onRequest", async (request) => {
      if (request.url.split("?")[0] !== "/health" && !matches(request.headers)) throw errors.unauthorized();
    });
  }

  // While draining, responses close their connection so keep-alive clients do not hold the shutdown open.
  app.addHook("onSend", async (_request, reply) => {
    if (draining) reply.header("connection", "close");
  });
  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unmatched";
    metrics!.requests.inc({ route, status: String(reply.statusCode) });
    metrics!.latency.observe({ route }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((error, request, reply) => {
    let httpError = toHttpError(error);
    if (httpError.status === 415) httpError = errors.unsupportedMediaType(request.headers["content-type"] ?? "(none)");
    if (httpError.status >= 500 && httpError.code === "internal_error") log(`internal error on ${request.url}: ${(error as Error).message}`);
    const spec = (request.routeOptions.config as { spec?: Spec }).spec;
    reply.code(httpError.status).headers(httpError.headers).send(spec ? spec.formatError(httpError) : errorBody(httpError));
  });
  app.setNotFoundHandler((request, reply) => {
    const error = errors.notFound(`Route ${request.method} ${request.url.split("?")[0]}`);
    reply.code(404).send(errorBody(error));
  });

  for (const endpoint of endpoints) {
    app.post(endpoint.config.path, { config: { spec: endpoint.spec } }, async (request, reply) => {
      const controller = new AbortController();
      // The response closing before it was finished means the client went away: stop its work.
      reply.raw.on("close", () => {
        if (!reply.raw.writableFinished) controller.abort();
      });
      const ctx: RequestContext = { signal: controller.signal, headers: request.headers, state: {} };
      return send(reply, await endpoint.handle(request.body, ctx), controller);
    });
    endpoint.spec.registerRoutes?.(app, { info: () => endpoint.info() });
  }

  app.get("/health", async (_request, reply) => {
    const healthy = setupDone && !draining && (await allHealthy(endpoints));
    reply.code(healthy ? 200 : 503).type("text/plain").send(healthy ? "ok" : "not ready");
  });
  const info = () => ({
    name: "batchwise",
    ready: setupDone,
    maxPayloadSize,
    auth: apiKey ? "api-key" : "none",
    endpoints: endpoints.map((e) => e.info()),
  });
  app.get("/info", async () => info());
  app.get("/metrics", async (_request, reply) => {
    reply.type(metrics!.registry.contentType).send(await metrics!.registry.metrics());
  });

  let url = "";
  const server: BatchwiseServer = {
    app,
    endpoints,
    ready,
    get url() {
      return url;
    },
    info,
    async listen({ waitForReady = true }: ListenOptions = {}) {
      const host = options.host ?? "127.0.0.1";
      await app.listen({ host, port: options.port ?? 8000 });
      const address = app.server.address();
      const port = typeof address === "object" && address ? address.port : options.port;
      url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
      if (waitForReady) {
        try {
          await ready;
        } catch (error) {
          await server.close();
          throw error;
        }
      } else {
        ready.catch(async (error) => {
          log(`startup failed: ${(error as Error).message}`);
          await server.close();
        });
      }
      return url;
    },
    async close() {
      if (draining) return;
      draining = true;
      await app.close();
      for (const e of endpoints) e.batcher.rejectAll(errors.shuttingDown());
      await Promise.all(endpoints.map((e) => e.pool.close()));
    },
  };
  return server;
}

/**
 * Create, listen, log the configuration, and shut down gracefully on SIGTERM/SIGINT (in-flight requests finish).
 * For CLIs and scripts; resolves with the server once it is ready.
 */
export async function serve(options: ServerOptions): Promise<BatchwiseServer> {
  const log = makeLogger(options.log);
  const server = await createServer(options);
  const url = await server.listen();
  for (const endpoint of server.endpoints) {
    const i = endpoint.info();
    log(
      `serving ${endpoint.config.path} at ${url}${endpoint.config.path} — batching ${i.maxBatchSize === 1 ? "off" : `max ${i.maxBatchSize} / ${i.batchTimeout} s`}, ` +
        `${(i.devices as string[]).length} worker(s) on ${i.accelerator} (${i.acceleratorReason}), ${i.threadsPerWorker} thread(s) each`,
    );
  }
  const shutdown = async (signal: string) => {
    log(`${signal}: finishing in-flight requests, then exiting`);
    await server.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
  return server;
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

/**
 * Errors Node's HTTP parser raises before a request reaches fastify (request timeout, oversized headers, malformed
 * HTTP): answered in the catalogue's JSON shape, then the connection is closed.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Socket, requestTimeout: number) {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const httpError: HttpError =
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? errors.requestTimeout(requestTimeout)
      : error.code === "HPE_HEADER_OVERFLOW"
        ? errors.headersTooLarge()
        : errors.malformedRequest();
  if (socket.writable) {
    const body = JSON.stringify(errorBody(httpError));
    socket.write(
      `HTTP/1.1 ${httpError.status} ${STATUS_CODES[httpError.status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

async function allHealthy(endpoints: Endpoint[]): Promise<boolean> {
  for (const e of endpoints) {
    if (e.pool.readyCount === 0) return false;
    if (e.api.health && !(await e.api.health())) return false;
  }
  return true;
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

function makeLogger(option: ServerOptions["log"]): (line: string) => void {
  if (option === false) return () => {};
  if (typeof option === "function") return option;
  return (line) => console.error(`[batchwise] ${line}`);
}
