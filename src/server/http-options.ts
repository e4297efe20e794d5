import { readFileSync } from "node:fs";
import type { ServerOptions as HttpsOptions } from "node:https";
import compress from "@fastify/compress";
import type { FastifyInstance, FastifyPluginAsync, FastifyPluginCallback } from "fastify";
import { OptionError } from "./options.js";

/** Smallest response body compressed: below it the bytes saved do not pay for the CPU (LitServe's GZip threshold). */
export const COMPRESS_THRESHOLD = 1000;

/**
 * gzip / brotli for answers of {@link COMPRESS_THRESHOLD} bytes or more, to clients that accept them (@fastify/compress,
 * on every route). Streams (SSE, NDJSON) are written straight to the socket and never pass through it: a compressor
 * would hold tokens back until its block fills. Request bodies are not decompressed (`Content-Encoding` on a request
 * is not taken), so the payload limit keeps meaning the bytes a client sends.
 */
export async function registerCompression(app: FastifyInstance): Promise<void> {
  await app.register(compress, {
    threshold: COMPRESS_THRESHOLD,
    encodings: ["br", "gzip"],
    globalDecompression: false,
  });
}

/** TLS options for the server: `https` from code, else the certificate and key files (`tlsCert` / `tlsKey`). */
export function resolveHttps(options: { https?: HttpsOptions; tlsCert?: string; tlsKey?: string }): HttpsOptions | undefined {
  if (options.https !== undefined) {
    const https = options.https as { key?: unknown; cert?: unknown; pfx?: unknown };
    if (typeof https !== "object" || https === null || ((!https.key || !https.cert) && !https.pfx)) {
      throw new OptionError("https must be { key, cert } (PEM strings or Buffers), or { pfx }");
    }
    return options.https;
  }
  if (options.tlsCert === undefined && options.tlsKey === undefined) return undefined;
  if (!options.tlsCert || !options.tlsKey) throw new OptionError("tlsCert and tlsKey (BATCHWISE_TLS_CERT / BATCHWISE_TLS_KEY) go together: set both");
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new OptionError(`Cannot read the TLS ${what} ${file}: ${(error as Error).message}`);
    }
  };
  return { cert: read(options.tlsCert, "certificate"), key: read(options.tlsKey, "key") };
}

/** A fastify plugin, or a plugin with its options. */
export type PluginEntry = FastifyPluginCallback<any> | FastifyPluginAsync<any> | [FastifyPluginCallback<any> | FastifyPluginAsync<any>, Record<string, unknown>];

/**
 * Register the user's fastify plugins, in order, after batchwise's own hooks (shutdown, CORS, the API key run first)
 * and before its routes, so hooks a plugin adds at the root (a plugin wrapped in `fastify-plugin`) see every route.
 */
export async function registerPlugins(app: FastifyInstance, plugins: readonly PluginEntry[] | undefined): Promise<void> {
  if (plugins === undefined) return;
  if (!Array.isArray(plugins)) throw new OptionError("plugins must be a list of fastify plugins or [plugin, options] pairs");
  for (const entry of plugins) {
    const [plugin, options] = Array.isArray(entry) ? entry : [entry, {}];
    if (typeof plugin !== "function") throw new OptionError("each entry of plugins must be a fastify plugin (a function) or [plugin, options]");
    await app.register(plugin, options);
  }
}
