/**
 * OpenAI's embeddings wire format on the batching core: `POST /v1/embeddings`, so the official `openai` clients (and
 * everything built on them: LangChain, LlamaIndex, the AI SDK) can call any embedding model served here.
 *
 * The spec validates the body and hands the API one {@link EmbeddingRequest} (`input` always a list: texts or token-id
 * lists); the API's encodeResponse gives one {@link EmbeddingOutput} (a vector per input, and the tokens it counted).
 * The spec then does what is the same for every model: `dimensions` (truncate, then renormalise, as OpenAI's
 * text-embedding-3 models do), `encoding_format` (floats, or base64 of little-endian float32) and the usage block.
 *
 * @example
 * ```ts
 * const server = await createServer({ api: embeddingModel({ model: "aidreams260K" }), spec: openAIEmbeddingSpec(), maxBatchSize: 32 });
 * const client = new OpenAI({ baseURL: `${await server.listen()}/v1`, apiKey: "unused" });
 * const { data } = await client.embeddings.create({ model: "aidreams260K", input: ["a dream", "a cat"] });
 * ```
 */
import type { Spec } from "../api/spec.js";
import { InvalidRequestError, openAIErrorBody } from "./spec.js";

/** What the API's decodeRequest receives: the request with `input` normalised to a list. */
export interface EmbeddingRequest {
  /** One entry per embedding to make: a text, or a text already tokenized (token ids). */
  input: (string | number[])[];
  /** The `model` field as sent ("" when absent). */
  model: string;
  /** The vector length the client wants; the API refuses it (400 naming `dimensions`) when its vectors are shorter. */
  dimensions?: number;
  encodingFormat: "float" | "base64";
  user?: string;
}

/** What the API's encodeResponse returns for one request: a vector per input (same order), and the tokens read. */
export interface EmbeddingOutput {
  embeddings: ArrayLike<number>[];
  promptTokens: number;
}

export interface OpenAIEmbeddingSpecOptions {
  /** Route; default "/v1/embeddings". */
  path?: string;
  /** Most inputs one request may hold (OpenAI's limit is 2048). */
  maxInputs?: number;
}

const FIELDS = new Set(["input", "model", "encoding_format", "dimensions", "user"]);

export function openAIEmbeddingSpec(options: OpenAIEmbeddingSpecOptions = {}): Spec<EmbeddingRequest, EmbeddingOutput> {
  const maxInputs = options.maxInputs ?? 2048;
  // The served model's id, answered to requests that name none (the endpoint's /info knows it once routes exist).
  let servedModel = () => "model";
  return {
    name: "openai-embeddings",
    path: options.path ?? "/v1/embeddings",
    streamsPredict: false,
    registerRoutes(app, endpoint) {
      servedModel = () => servedModelId(endpoint.info());
      // A chat endpoint on the same server answers /v1/models already.
      if (app.hasRoute({ method: "GET", url: "/v1/models" })) return;
      app.get("/v1/models", async () => ({
        object: "list",
        data: [{ id: servedModelId(endpoint.info()), object: "model", created: STARTED, owned_by: "batchwise" }],
      }));
    },
    parseRequest: (body) => parseEmbeddingRequest(body, maxInputs),
    async respond(request, outputs) {
      for await (const output of outputs) return { kind: "json", body: embeddingBody(request, output, servedModel) };
      throw new Error("predict produced no output");
    },
    formatError: openAIErrorBody,
  };
}

const STARTED = Math.floor(Date.now() / 1000);

function servedModelId(info: Record<string, unknown>): string {
  const id = (info.model as { model?: unknown } | null)?.model;
  return typeof id === "string" ? id : "model";
}

/** Validate an embeddings body: every field known, `input` a non-empty text, list of texts, token ids or lists of them. */
export function parseEmbeddingRequest(body: unknown, maxInputs = 2048): EmbeddingRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new InvalidRequestError("The request body must be a JSON object");
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => !FIELDS.has(k));
  if (unknown.length > 0) {
    throw new InvalidRequestError(
      `Unknown field${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => `'${k}'`).join(", ")}: /v1/embeddings takes ${[...FIELDS].join(", ")}`,
      unknown[0],
      "unsupported_parameter",
    );
  }
  const model = fields.model ?? "";
  if (typeof model !== "string") throw new InvalidRequestError("'model' must be a string", "model");
  const encodingFormat = fields.encoding_format ?? "float";
  if (encodingFormat !== "float" && encodingFormat !== "base64") {
    throw new InvalidRequestError("'encoding_format' must be \"float\" or \"base64\"", "encoding_format");
  }
  const dimensions = fields.dimensions ?? undefined;
  if (dimensions !== undefined && (typeof dimensions !== "number" || !Number.isInteger(dimensions) || dimensions < 1)) {
    throw new InvalidRequestError("'dimensions' must be an integer ≥ 1", "dimensions");
  }
  const user = fields.user ?? undefined;
  if (user !== undefined && typeof user !== "string") throw new InvalidRequestError("'user' must be a string", "user");
  return { input: parseInput(fields.input, maxInputs), model, dimensions, encodingFormat, user };
}

function parseInput(input: unknown, maxInputs: number): (string | number[])[] {
  const shape = "'input' must be a string, a list of strings, a list of token ids, or a list of token-id lists";
  if (input === undefined || input === null) throw new InvalidRequestError(`Missing 'input': ${shape}`, "input");
  // A flat list of numbers is ONE tokenized input, as in OpenAI's API.
  const items = typeof input === "string" || (Array.isArray(input) && input.length > 0 && typeof input[0] === "number") ? [input] : input;
  if (!Array.isArray(items)) throw new InvalidRequestError(shape, "input");
  if (items.length === 0) throw new InvalidRequestError("'input' is an empty list", "input");
  if (items.length > maxInputs) {
    throw new InvalidRequestError(`'input' holds ${items.length} items; at most ${maxInputs} per request (maxInputs)`, "input");
  }
  items.forEach((item, i) => {
    const where = items === input ? `input[${i}]` : "input";
    if (typeof item === "string") {
      if (item === "") throw new InvalidRequestError(`'${where}' is an empty string`, where);
    } else if (Array.isArray(item)) {
      if (item.length === 0) throw new InvalidRequestError(`'${where}' is an empty list of token ids`, where);
      if (!item.every((id) => typeof id === "number" && Number.isInteger(id) && id >= 0)) {
        throw new InvalidRequestError(`'${where}' must hold token ids (integers ≥ 0)`, where);
      }
    } else {
      throw new InvalidRequestError(`'${where}': ${shape}`, where);
    }
  });
  return items as (string | number[])[];
}

function embeddingBody(request: EmbeddingRequest, output: EmbeddingOutput, servedModel: () => string) {
  if (!Array.isArray(output?.embeddings) || output.embeddings.length !== request.input.length) {
    throw new Error(`the API answered ${output?.embeddings?.length ?? "no"} embeddings for ${request.input.length} inputs`);
  }
  return {
    object: "list",
    data: output.embeddings.map((vector, index) => ({
      object: "embedding",
      index,
      embedding: encode(shorten(vector, request.dimensions), request.encodingFormat),
    })),
    model: request.model || servedModel(),
    usage: { prompt_tokens: output.promptTokens, total_tokens: output.promptTokens },
  };
}

/** The first `dimensions` values, renormalised to unit length (a truncated unit vector is no longer one). */
export function shorten(vector: ArrayLike<number>, dimensions?: number): Float32Array {
  if (dimensions !== undefined && dimensions > vector.length) {
    throw new InvalidRequestError(`'dimensions' is ${dimensions}; this model's embeddings have ${vector.length}`, "dimensions");
  }
  const out = Float32Array.from({ length: dimensions ?? vector.length }, (_, i) => vector[i]);
  if (dimensions === undefined || dimensions === vector.length) return out;
  let norm = 0;
  for (const x of out) norm += x * x;
  norm = Math.sqrt(norm);
  if (norm > 0) for (let i = 0; i < out.length; i++) out[i] /= norm;
  return out;
}

/** Floats as JSON numbers, or base64 of their little-endian float32 bytes (what OpenAI sends and its clients decode). */
function encode(vector: Float32Array, format: "float" | "base64"): number[] | string {
  if (format === "float") return Array.from(vector);
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((x, i) => bytes.writeFloatLE(x, i * 4));
  return bytes.toString("base64");
}
