import path from "node:path";
import { pathToFileURL } from "node:url";
import { ModelAPI, type ApiConstructor, type ApiSource } from "../api.js";

/** Construct an API from its source (module path or file: URL + export name). */
export async function loadApi(source: ApiSource): Promise<ModelAPI> {
  const specifier = source.module.startsWith("file:") ? source.module : pathToFileURL(path.resolve(source.module)).href;
  const mod = (await import(specifier)) as Record<string, unknown>;
  const Api = mod[source.export] as ApiConstructor | undefined;
  if (typeof Api !== "function") {
    throw new Error(`Module ${source.module} has no exported class "${source.export}"`);
  }
  const api = new Api(source.options);
  if (typeof api.predict !== "function") {
    throw new Error(`"${source.export}" from ${source.module} is not a ModelAPI (no predict method)`);
  }
  return api;
}

export function isApiSource(value: unknown): value is ApiSource {
  return typeof value === "object" && value !== null && typeof (value as ApiSource).module === "string" &&
    typeof (value as ApiSource).export === "string" && !(value instanceof ModelAPI);
}
