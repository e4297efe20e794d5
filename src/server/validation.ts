import { HttpError } from "../api/errors.js";

/** One error of fastify's validator (ajv), as much of it as the message needs. */
export interface SchemaError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
  /** The schema holding the keyword that failed (ajv's `verbose`), for the field's own description. */
  parentSchema?: Record<string, unknown>;
}

/** An `invalid_body` 400 that names the field (`param`, as OpenAI's errors do) and the rule it broke. */
export class InvalidBodyError extends HttpError {
  constructor(
    message: string,
    readonly param: string | null,
    readonly rule: string,
  ) {
    super("invalid_body", message);
  }
}

/**
 * The options fastify's validator compiles request schemas with. Its defaults coerce types (`"image": 12` became the
 * string "12") and remove properties that `additionalProperties: false` forbids: a field the server cannot honour
 * would be dropped silently instead of refused. Off, so a body is checked as the client sent it; defaults are still
 * filled in, and the first error stops the check (one error names one field, and costs least). `verbose` keeps the
 * failing schema on the error (only when a check fails), so the message can quote the field's `description`.
 */
export const VALIDATOR_OPTIONS = { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, verbose: true } as const;

/**
 * fastify's `schemaErrorFormatter`: the first error becomes a 400 `invalid_body` whose message says which field broke
 * which rule (`"image" must be string (type)`), in the catalogue's shape like every other error.
 */
export function schemaErrorFormatter(errors: SchemaError[], dataVar: string): Error {
  const first = errors[0] ?? {};
  const rule = first.keyword ?? "schema";
  const field = fieldPath(first);
  const where = field === null ? `The ${dataVar}` : `"${field}"`;
  const help = fieldDescription(first);
  return new InvalidBodyError(`Invalid ${dataVar}: ${where} ${describe(first, rule)} (rule: ${rule})${help ? ` — ${help}` : ""}`, field, rule);
}

/** The failing field's `description` in the schema, when it has one: it tells the client what to send instead. */
function fieldDescription(error: SchemaError): string | undefined {
  const schema = error.parentSchema;
  const named = error.params?.missingProperty ?? error.params?.additionalProperty;
  const own = typeof named === "string" ? (schema?.properties as Record<string, { description?: unknown }> | undefined)?.[named] : schema;
  return typeof own?.description === "string" ? own.description : undefined;
}

function describe(error: SchemaError, rule: string): string {
  if (rule === "required") return "is required";
  if (rule === "additionalProperties" || rule === "unevaluatedProperties") return "is not allowed";
  const allowed = error.params?.allowedValues;
  if (rule === "enum" && Array.isArray(allowed)) return `must be one of ${allowed.map((v) => JSON.stringify(v)).join(", ")}`;
  return error.message ?? "is invalid";
}

/**
 * The field an error is about, as a path a person reads (`messages[0].role`): the instance path, plus the missing or
 * extra property that `required` / `additionalProperties` report on their parent object. null: the body itself.
 */
export function fieldPath(error: SchemaError): string | null {
  const parts = (error.instancePath ?? "")
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  const named = error.params?.missingProperty ?? error.params?.additionalProperty ?? error.params?.unevaluatedProperty;
  if (typeof named === "string") parts.push(named);
  if (parts.length === 0) return null;
  return parts.reduce((path, part, i) => (/^\d+$/.test(part) ? `${path}[${part}]` : i === 0 ? part : `${path}.${part}`), "");
}
