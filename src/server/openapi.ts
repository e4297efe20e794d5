import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";
import type { JsonSchema } from "../api/model-api.js";
import type { Endpoint } from "./endpoint.js";
import type { RouteDocs } from "../api/spec.js";

/**
 * GET /openapi.json (OpenAPI 3.1 of every route) and GET /docs (Swagger UI over it), from @fastify/swagger and
 * @fastify/swagger-ui. The document is built from the routes as fastify knows them, so routes a plugin adds appear
 * too; batchwise's own routes carry their documentation in `config.swaggerTransform` (see {@link endpointDocs}), which
 * is documentation only: what fastify validates is the route's `schema` (the API's requestSchema), nothing more.
 */
export async function registerDocs(app: FastifyInstance, options: { version: string; apiKey: boolean }): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "batchwise", version: options.version, description: "Model endpoints served by batchwise" },
      components: options.apiKey
        ? { securitySchemes: { apiKey: { type: "apiKey", in: "header", name: "X-API-Key" }, bearer: { type: "http", scheme: "bearer" } } }
        : {},
      ...(options.apiKey ? { security: [{ apiKey: [] }, { bearer: [] }] } : {}),
    },
    transform: ({ schema, url }) => ({ schema: (SERVER_ROUTE_DOCS[url] ?? schema) as typeof schema, url }),
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
}

/** The catalogue's error body: `{"error": {"code", "message"}}`. */
export const ERROR_SCHEMA = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string", description: "A code of the error catalogue (README, Errors)", examples: ["invalid_body"] },
        message: { type: "string", description: "What went wrong, naming the field" },
      },
    },
  },
};

const ERROR_STATUSES: Record<string, string> = {
  400: "The body is invalid (the message names the field)",
  401: "Missing or invalid credentials",
  403: "Not allowed (the endpoint's authorize rule)",
  413: "The body is larger than the server accepts",
  415: "This Content-Type is not taken here",
  503: "Queue full, not ready or draining (Retry-After says when to try again)",
  504: "The request waited too long for a worker, or the model too long for an answer",
};

/** The OpenAPI description of one POST route of an endpoint: its bodies (JSON and raw), its answers, its errors. */
export function endpointDocs(endpoint: Endpoint, route: string): Record<string, unknown> {
  const spec = endpoint.spec.docs?.(route) ?? {};
  const api = endpoint.api;
  const json = api.requestSchema ?? spec.request ?? {};
  const body: Record<string, { schema: JsonSchema }> = { "application/json": { schema: json } };
  for (const type of endpoint.binaryTypes) body[type] = { schema: { type: "string", contentMediaType: type } };
  if (endpoint.binaryTypes.length > 0) {
    body["multipart/form-data"] = {
      schema: { type: "object", properties: { file: { type: "string", contentMediaType: "application/octet-stream" } } },
    };
  }
  const answers =
    spec.responses ??
    (endpoint.config.streams ? { "application/x-ndjson": api.responseSchema ?? {} } : { "application/json": api.responseSchema ?? {} });
  const content = (schema: JsonSchema) => ({ schema });
  const response: Record<string, unknown> = {
    200: {
      description: endpoint.config.streams && !spec.responses ? "One JSON line per output, as they are produced" : "The prediction",
      content: Object.fromEntries(Object.entries(answers).map(([type, schema]) => [type, content(schema)])),
    },
  };
  for (const [status, description] of Object.entries(ERROR_STATUSES)) {
    response[status] = { description, content: { "application/json": content(spec.error ?? ERROR_SCHEMA) } };
  }
  return {
    summary: spec.summary ?? `Run the model (${endpoint.spec.name} spec)`,
    tags: ["model"],
    body: { content: body },
    response,
  };
}

const text = (description: string) => ({ 200: { description, content: { "text/plain": { schema: { type: "string" } } } } });
const notReady = { 503: { description: "Not ready", content: { "application/json": { schema: ERROR_SCHEMA } } } };

/** Documentation of the server's own GET routes (the probes, /info, /metrics, /). */
const SERVER_ROUTE_DOCS: Record<string, Record<string, unknown>> = {
  "/": { summary: "What this server is: name, version, links, endpoints", tags: ["server"], response: { 200: { description: "Index", type: "object" } } },
  "/health": { summary: "Ready to serve (the seed's probe)", tags: ["probes"], response: { ...text("ok"), 503: { description: "not ready", content: { "text/plain": { schema: { type: "string" } } } } } },
  "/livez": { summary: "Alive (Kubernetes liveness)", tags: ["probes"], response: { ...text("ok"), ...notReady } },
  "/readyz": { summary: "Ready and not draining (Kubernetes readiness, load balancers)", tags: ["probes"], response: { ...text("ok"), ...notReady } },
  "/info": { summary: "The model and the server's configuration", tags: ["server"], response: { 200: { description: "Configuration", type: "object" } } },
  "/metrics": { summary: "Prometheus metrics", tags: ["server"], response: text("Prometheus text exposition") },
};
