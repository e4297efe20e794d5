import type { Spec } from "../api/spec.js";
import { errorBody } from "../api/spec.js";

/** The default spec: JSON in, JSON out; a streaming API answers NDJSON, one line per output. */
export function plainSpec(options: { path?: string; stream?: boolean } = {}): Spec {
  const stream = options.stream ?? false;
  return {
    name: "plain",
    path: options.path ?? "/predict",
    streamsPredict: stream,
    parseRequest: (body) => body,
    async respond(_request, responses) {
      if (!stream) {
        for await (const body of responses) return { kind: "json", body };
        throw new Error("predict produced no output");
      }
      return {
        kind: "stream",
        contentType: "application/x-ndjson",
        body: (async function* () {
          for await (const item of responses) yield JSON.stringify(item) + "\n";
        })(),
      };
    },
    formatError: errorBody,
  };
}
