import { afterAll } from "vitest";
import { createServer, type BatchwiseServer, type ServerOptions } from "../../src/server/server.js";

/**
 * A `start(options)` for one test file: a quiet server on a free loopback port, listening, its URL returned; every
 * server it started is closed after the file's tests.
 */
export function serversClosedAfterAll(): (options: ServerOptions) => Promise<string> {
  const servers: BatchwiseServer[] = [];
  afterAll(() => Promise.all(servers.map((s) => s.close())));
  return async (options) => {
    const server = await createServer({ port: 0, log: false, ...options });
    servers.push(server);
    return await server.listen();
  };
}
