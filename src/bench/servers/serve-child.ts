import Fastify from "fastify";
import { createServer, type ServerOptions } from "../../server/server.js";

/**
 * Entry point of a benchmark server process (started by ./server-process.ts, never imported). A benchmark's load
 * generator must not share a process with the server it measures, or the server's CPU figures and event loop would
 * include the client's work.
 *
 * argv[2] is a JSON {@link ChildServerConfig}. Once listening it prints one line `BATCHWISE_URL <url>` on stdout.
 * It exits on SIGTERM/SIGINT (after in-flight requests finish) and when its stdin closes, so a benchmark that dies
 * does not leave servers behind.
 */

export type ChildServerConfig =
  /**
   * A batchwise server; `options.api` must be an ApiSource (JSON), as every option here must be. `spec: "openai"`
   * serves it with the OpenAI chat spec (a spec object cannot travel as JSON).
   */
  | { kind: "batchwise"; options: ServerOptions; spec?: "openai" }
  /** A bare fastify app echoing the JSON body on `path`: the floor `bench overhead` compares batchwise with. */
  | { kind: "bare-fastify"; path: string };

async function main() {
  const config = JSON.parse(process.argv[2] ?? "null") as ChildServerConfig | null;
  if (!config) throw new Error("usage: serve-child '<json config>'");
  let close: () => Promise<void>;
  let url: string;
  if (config.kind === "batchwise") {
    const spec = config.spec === "openai" ? (await import("../../openai/spec.js")).openAISpec() : config.options.spec;
    const server = await createServer({ log: false, ...config.options, spec, port: 0, host: "127.0.0.1" });
    url = await server.listen();
    close = () => server.close();
  } else {
    const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 });
    app.post(config.path, async (request) => request.body);
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
    close = () => app.close();
  }
  process.stdout.write(`BATCHWISE_URL ${url}\n`);
  let closing = false;
  const stop = async () => {
    if (closing) return;
    closing = true;
    await close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
  process.stdin.on("end", () => void stop());
  process.stdin.on("close", () => void stop());
  process.stdin.resume();
}

main().catch((error) => {
  process.stderr.write(`serve-child: ${(error as Error).stack ?? error}\n`);
  process.exit(1);
});
