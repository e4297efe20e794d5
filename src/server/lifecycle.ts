import type { FastifyInstance } from "fastify";
import type { Endpoint } from "./endpoint.js";
import type { ServerState } from "./hooks.js";

export interface ListenOptions {
  /** Resolve only after every worker finished setup (default true). With false, /readyz answers 503 until then. */
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
  /**
   * Turn not-ready (/readyz 503) and keep serving for `seconds` (default: the drainPeriod option), so a load
   * balancer notices; then close. What SIGTERM does under `serve`.
   */
  drain(seconds?: number): Promise<void>;
  /** Stop accepting, finish in-flight requests, stop the workers. */
  close(): Promise<void>;
  info(): Record<string, unknown>;
}

/** Listen, drain, close: the server's life from binding a port to stopping its workers. */
export function createLifecycle(parts: {
  app: FastifyInstance;
  endpoints: Endpoint[];
  state: ServerState;
  info: () => Record<string, unknown>;
  log: (line: string) => void;
  host: string;
  port: number;
  drainPeriod: number;
}): BatchwiseServer {
  const { app, endpoints, state, log } = parts;
  const ready = Promise.all(endpoints.map((e) => e.start())).then(
    () => {
      state.setupDone = true;
    },
    (error) => {
      state.startupFailed = true;
      throw error;
    },
  );
  ready.catch(() => {}); // observed by listen(); avoid an unhandled rejection when nobody listens

  let url = "";
  let closed: Promise<void> | undefined;
  const server: BatchwiseServer = {
    app,
    endpoints,
    ready,
    get url() {
      return url;
    },
    info: parts.info,
    async listen({ waitForReady = true }: ListenOptions = {}) {
      const host = parts.host;
      await app.listen({ host, port: parts.port });
      const address = app.server.address();
      const port = typeof address === "object" && address ? address.port : parts.port;
      url = `${app.initialConfig.https ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
      if (waitForReady) {
        try {
          await ready;
        } catch (error) {
          await server.close();
          throw error;
        }
      } else {
        ready.catch(async (error) => {
          log(`startup failed (${(error as Error).name}, logged above): closing the server`);
          await server.close();
        });
      }
      return url;
    },
    async drain(seconds = parts.drainPeriod) {
      if (!state.draining && !state.closing) {
        state.draining = true;
        if (seconds > 0) {
          log(`draining: /readyz answers 503, requests are still served for ${seconds} s`);
          await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
        }
      }
      await server.close();
    },
    close() {
      closed ??= (async () => {
        state.draining = true;
        state.closing = true;
        await app.close();
        await Promise.all(endpoints.map((e) => e.close()));
      })();
      return closed;
    },
  };
  return server;
}
