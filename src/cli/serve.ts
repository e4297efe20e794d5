import { parseArgs } from "node:util";
import type { PrecisionChoice } from "../api.js";
import { availableCores } from "../runtime/device.js";
import { cliFlags, flagHelp, readCliOptions } from "../server/options.js";
import { serve } from "../server/serve.js";
import type { ServerOptions } from "../server/server.js";

const SCOPES = ["server", "endpoint", "app"] as const;

/** `batchwise serve classifier|chat|embeddings [flags]`: every flag and environment variable comes from options.ts. */
export async function runServe(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...cliFlags([...SCOPES]), help: { type: "boolean" } },
    allowPositionals: true,
  });
  const app = positionals[0] ?? "classifier";
  if (values.help || !["classifier", "chat", "embeddings"].includes(app)) {
    console.log(`Usage: batchwise serve classifier|chat|embeddings [flags]\n\n${flagHelp([...SCOPES])}`);
    return;
  }
  // Flags, then environment variables; what neither sets falls back to the app's serving preset below.
  const { model, precision = "auto", labels = "cat-dog", mcp = false, ...given } = readCliOptions(values, [...SCOPES]) as Omit<ServerOptions, "mcp"> & {
    model?: string;
    precision?: PrecisionChoice;
    labels?: "cat-dog" | "imagenet";
    mcp?: boolean;
  };

  if (app === "classifier") {
    const { imageClassifier, CLASSIFIER_SERVING_DEFAULTS: preset } = await import("../apps/image-classifier.js");
    const config: ServerOptions = {
      api: imageClassifier({ model, precision, labels }),
      maxBatchSize: preset.maxBatchSize,
      batchTimeout: preset.batchTimeout,
      workersPerDevice: preset.workers(availableCores()),
      idempotent: preset.idempotent,
      ...(mcp ? { mcp: CLASSIFIER_TOOL } : {}),
      ...given,
    };
    printConfig("classifier", config, { model: model ?? "mobilenetv2-12", precision, labels });
    await serve(config);
  } else if (app === "embeddings") {
    await serveEmbeddings(model, precision, mcp, given);
  } else {
    const [{ chatModel, CHAT_SERVING_DEFAULTS: preset }, { openAISpec }] = await Promise.all([
      import("../apps/chat.js"),
      import("../specs/openai.js"),
    ]);
    const config: ServerOptions = {
      api: chatModel({ model, precision }),
      spec: openAISpec(),
      maxBatchSize: preset.maxBatchSize,
      batchTimeout: preset.batchTimeout,
      workersPerDevice: preset.workers,
      maxBatchesPerWorker: preset.maxBatchesPerWorker,
      // a whole context window of text is a few hundred kB; larger bodies are refused before they are parsed
      maxPayloadSize: 1024 * 1024,
      ...given,
    };
    printConfig("chat", config, { model: model ?? "(hub default; offline use --model tiny-random-llama)", precision });
    await serve(config);
  }
}

/** The classifier as an MCP tool: the description tells a model how to pass the image. */
const CLASSIFIER_TOOL = {
  name: "classify_image",
  description: 'Classify a photo. Arguments: {"image": "<base64 JPEG, PNG or WebP, or a data: URL>"}. Answers {"predictions": [{"label", "probability"}…]}, most likely first.',
  inputSchema: {
    type: "object",
    properties: { image: { type: "string", description: "the image as base64 or a data:image/...;base64, URL" } },
    required: ["image"],
  },
};

/** The embedding model as an MCP tool: the arguments are an OpenAI embeddings request. */
const EMBEDDINGS_TOOL = {
  name: "embed",
  description: 'Embed texts as unit vectors. Arguments: {"input": "text" or ["text", …], "dimensions"?: N}. Answers OpenAI\'s embeddings list.',
  inputSchema: {
    type: "object",
    properties: {
      input: { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] },
      dimensions: { type: "integer", minimum: 1 },
    },
    required: ["input"],
  },
};

async function serveEmbeddings(model: string | undefined, precision: PrecisionChoice, mcp: boolean, given: Partial<ServerOptions>) {
  if (!model) throw new Error("batchwise serve embeddings needs --model ID_OR_PATH (e.g. --model aidreams260K)");
  const { embeddingModel, EMBEDDING_SERVING_DEFAULTS: preset, openAIEmbeddingSpec } = await import("../embeddings/index.js");
  const config: ServerOptions = {
    api: embeddingModel({ model, precision }),
    spec: openAIEmbeddingSpec(),
    maxBatchSize: preset.maxBatchSize,
    batchTimeout: preset.batchTimeout,
    workersPerDevice: preset.workers,
    idempotent: preset.idempotent,
    // Every character sent is tokenized in the worker: a body is bounded like chat's (2048 short texts fit easily).
    maxPayloadSize: 1024 * 1024,
    ...(mcp ? { mcp: EMBEDDINGS_TOOL } : {}),
    ...given,
  };
  printConfig("embeddings", config, { model, precision });
  await serve(config);
}

function printConfig(app: string, config: ServerOptions, model: Record<string, unknown>) {
  const { api: _api, spec: _spec, apiKey, ...shown } = config;
  console.error(`[batchwise] ${app}: ${JSON.stringify({ ...model, ...shown, apiKey: apiKey ? "(set)" : undefined })}`);
}
