import type { FastifyInstance, RouteShorthandOptions } from "fastify";
import type { Registry } from "prom-client";
import { authorizeHook } from "./authorize.js";
import type { Endpoint } from "./endpoint.js";
import { endpointDocs } from "./openapi.js";

/**
 * fastify options of one POST route of an endpoint: the spec (for the error shape), the API's request schema — checked
 * by fastify's validator for JSON bodies only (a raw image has no JSON to check, and skips it at no cost) —, the
 * endpoint's authorize rule, and what /openapi.json says about the route.
 */
export function endpointRouteOptions(endpoint: Endpoint, route: string, log: (line: string) => void): RouteShorthandOptions {
  const requestSchema = endpoint.api.requestSchema;
  const authorize = endpoint.config.authorize;
  // Built when /openapi.json is first asked for (and cached by @fastify/swagger), not at startup.
  const config: Record<string, unknown> = { spec: endpoint.spec, swaggerTransform: () => ({ schema: endpointDocs(endpoint, route) }) };
  return {
    config,
    ...(requestSchema !== undefined ? { schema: { body: { content: { "application/json": { schema: requestSchema } } } } } : {}),
    ...(authorize ? { onRequest: authorizeHook(authorize, log) } : {}),
  };
}

/**
 * The routes a spec adds (GET /v1/models), behind the endpoint's authorize rule like its POST routes: in a scope of
 * their own when there is a rule, so the hook covers them and nothing else.
 */
export function registerSpecRoutes(app: FastifyInstance, endpoint: Endpoint, registry: Registry, log: (line: string) => void): void {
  const register = endpoint.spec.registerRoutes;
  if (!register) return;
  const authorize = endpoint.config.authorize;
  const context = { info: () => endpoint.info(), registry, api: endpoint.api };
  if (!authorize) return register(app, context);
  void app.register(async (scope) => {
    scope.addHook("onRequest", authorizeHook(authorize, log));
    register(scope, context);
  });
}
