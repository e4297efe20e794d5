import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import { clean, errors, HttpError, toHttpError } from "../api/errors.js";
import { errorDetail, formatFailure, requestIdFrom } from "./failure-log.js";
import { parseJsonBody } from "./json-body.js";
import { installLingeringClose } from "./lingering-close.js";
import { errorBody, type Spec } from "../api/spec.js";
import { parseMultipart } from "../api/upload.js";
import { schemaErrorFormatter, VALIDATOR_OPTIONS } from "./validation.js";

export interface HttpAppOptions {
  maxPayloadSize: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  /** Raw body types any endpoint takes (see ModelAPI.binaryTypes); with any, multipart/form-data too. */
  binaryTypes: readonly string[];
  log: (line: string) => void;
  /** TLS options (key, cert…) to serve HTTPS; absent: plain HTTP. */
  https?: import("node:https").ServerOptions;
}

/**
 * The fastify app and how bodies become values: JSON through our own parser, raw binary bodies as Buffers, multipart
 * forms as an Upload. Every error leaves in the catalogue's shape (or the route's spec's).
 */
export function createHttpApp(options: HttpAppOptions): FastifyInstance {
  const { requestTimeout } = options;
  const serverOptions = {
    // Node enforces requestTimeout on a request's BODY only while headersTimeout ≤ requestTimeout (its default,
    // 60 s, is not lowered when fastify sets requestTimeout after construction): without this, a client that sent
    // headers and half a body held its connection until the 120 s idle timeout, forever if it trickled bytes.
    headersTimeout: requestTimeout * 1000,
    // Timeouts are checked on this interval (Node's default: every 30 s), so a short requestTimeout means it.
    connectionsCheckingInterval: 1000,
  };
  const app = Fastify({
    logger: false,
    bodyLimit: options.maxPayloadSize,
    requestTimeout: requestTimeout * 1000,
    // With TLS fastify passes only `https` to the server: the same timeouts go there.
    ...(options.https ? { https: { ...options.https, ...serverOptions } } : { http: serverOptions }),
    // Request schemas (ModelAPI.requestSchema) are checked as sent (see validation.ts), and a failure names its field.
    ajv: { customOptions: VALIDATOR_OPTIONS },
    schemaErrorFormatter,
    clientErrorHandler: (error, socket) => answerClientError(error, socket, requestTimeout),
    // A URL fastify cannot decode ("/inf%o") never reaches setErrorHandler: answer it in the catalogue's shape too.
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).code(400).send(errorBody(errors.badRequest(clean(error.message), "invalid_url")));
    },
    connectionTimeout: 120_000,
    keepAliveTimeout: options.keepAliveTimeout * 1000,
    // The lifecycle's onRequest hook refuses requests that arrive after shutdown began, in the catalogue's shape.
    return503OnClosing: false,
    forceCloseConnections: "idle",
    // Every response carries X-Request-Id (the client's own when it sent a sane one): the id the server's log uses.
    genReqId: (request) => requestIdFrom(request.headers["x-request-id"]),
  }) as unknown as FastifyInstance;
  app.addHook("onRequest", (request, reply, done) => {
    reply.header("x-request-id", request.id);
    done();
  });
  // An answer sent before the body finished arriving (413, 401, 415) is read by the client instead of lost to a reset.
  installLingeringClose(app.server);

  // A text/plain body (which fastify parses by default) gets a 415 rather than reaching decodeRequest as a string the
  // API never expected.
  app.removeContentTypeParser("text/plain");
  app.removeContentTypeParser("application/json");
  // As bytes: the parser reads long string values (base64 images) straight from them (see json-body.ts).
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (_request, bytes, done) => {
    try {
      done(null, parseJsonBody(bytes as Buffer));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  if (options.binaryTypes.length > 0) {
    app.addContentTypeParser([...options.binaryTypes], { parseAs: "buffer" }, (_request, body, done) => done(null, body));
    app.addContentTypeParser("multipart/form-data", { parseAs: "buffer" }, (request, body, done) => {
      parseMultipart(body as Buffer, request.headers["content-type"]!).then((upload) => done(null, upload), done);
    });
  }

  app.setErrorHandler((error, request, reply) => {
    // fastify's own 415 (no parser for the type) names what the server takes; a route's own 415 already says more.
    const httpError =
      !(error instanceof HttpError) && (error as { statusCode?: number }).statusCode === 415
        ? errors.unsupportedMediaType(request.headers["content-type"] ?? "(none)", accepted(options.binaryTypes))
        : toHttpError(error);
    if (httpError.code === "internal_error") options.log(formatFailure("internal_error", request.id, request.url.split("?")[0], errorDetail(error)));
    const spec = (request.routeOptions.config as { spec?: Spec }).spec;
    reply.code(httpError.status).headers(httpError.headers).send(spec ? spec.formatError(httpError) : errorBody(httpError));
  });
  app.setNotFoundHandler((request, reply) => {
    const error = errors.notFound(`Route ${request.method} ${request.url.split("?")[0]}`);
    reply.code(404).send(errorBody(error));
  });
  return app;
}

/** The body types a route takes, for a 415's message. */
export function accepted(binaryTypes: readonly string[]): string {
  return binaryTypes.length ? `application/json, multipart/form-data or ${binaryTypes.join(", ")}` : "application/json";
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
        ? new HttpError("headers_too_large")
        : new HttpError("malformed_request");
  if (socket.writable) {
    const body = JSON.stringify(errorBody(httpError));
    socket.write(
      `HTTP/1.1 ${httpError.status} ${STATUS_CODES[httpError.status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
