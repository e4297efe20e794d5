import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import type { Endpoint } from "./endpoint.js";

/** This package's version (package.json sits two folders up from src/server/ and dist/server/ alike). */
export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
})();

/**
 * GET /: what a person or a script finds at the root — the name, the version, where the docs, /info and the probes
 * are, and each endpoint's routes (LitServe answers its root too; a 404 there told a newcomer nothing).
 */
export function registerIndexRoute(app: FastifyInstance, options: { endpoints: Endpoint[]; docs: boolean }) {
  const body = JSON.stringify({
    name: "batchwise",
    version: VERSION,
    links: {
      ...(options.docs ? { docs: "/docs", openapi: "/openapi.json" } : {}),
      info: "/info",
      health: "/health",
      readyz: "/readyz",
      livez: "/livez",
      metrics: "/metrics",
    },
    endpoints: options.endpoints.map((e) => ({
      path: e.config.path,
      method: "POST",
      spec: e.spec.name,
      routes: e.routes,
      streams: e.config.streams,
      bodies: ["application/json", ...(e.binaryTypes.length ? ["multipart/form-data", ...e.binaryTypes] : [])],
    })),
  });
  app.get("/", async (_request, reply) => reply.type("application/json; charset=utf-8").send(body));
}
