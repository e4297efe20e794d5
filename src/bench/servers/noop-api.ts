import { fileURLToPath } from "node:url";
import { ModelAPI, type ApiSource } from "../../api/model-api.js";

/**
 * A model that returns its input: serving it measures what the server itself costs per request (HTTP, JSON, queue,
 * the hop to a worker thread and back) with no model time in the way. `bench overhead` compares it with a bare
 * fastify route that echoes the same body.
 */
export class NoopAPI extends ModelAPI<unknown, unknown, unknown, unknown> {
  override info = { model: "noop (returns its input)" };

  predict(batch: unknown[]): unknown[] {
    return batch;
  }
}

/** Where a worker finds NoopAPI (this module, from src/ under tsx or from dist/). */
export function noopApi(): ApiSource {
  return { module: fileURLToPath(import.meta.url), export: "NoopAPI" };
}
