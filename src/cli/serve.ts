import { parseArgs } from "node:util";
import type { ApiSource, PrecisionChoice } from "../api/model-api.js";
import type { Spec } from "../api/spec.js";
import { cliFlags, flagHelp, type OptionScope } from "../server/options.js";
import { readSourceOptions, type OptionSources } from "../server/resolve-options.js";
import type { McpToolOptions } from "../server/endpoint.js";
import { serve } from "../server/serve.js";

const SCOPES: OptionScope[] = ["server", "endpoint", "app"];

type App = "classifier" | "chat" | "embeddings";
const APPS: readonly App[] = ["classifier", "chat", "embeddings"];

interface AppOptions {
  model?: string;
  precision?: PrecisionChoice;
  labels?: "cat-dog" | "imagenet";
  mcp?: boolean;
  chatTemplate?: string;
}

interface ServedApp {
  api: ApiSource;
  spec?: Spec;
  /** The app's serving defaults and model, for --help. */
  defaults: Record<string, unknown>;
  /** The endpoint as an MCP tool, for --mcp. */
  tool?: McpToolOptions;
}

/** What `batchwise serve <app>` serves: the API (carrying its serving defaults), its wire format and its MCP tool. */
async function servedApp(app: App, { model, precision, labels, chatTemplate }: AppOptions): Promise<ServedApp> {
  if (app === "classifier") {
    const { imageClassifier, DEFAULT_CLASSIFIER_MODEL } = await import("../classifier/image-classifier.js");
    const api = imageClassifier({ model, precision, labels });
    return { api, defaults: { ...api.servingDefaults, model: DEFAULT_CLASSIFIER_MODEL }, tool: CLASSIFIER_TOOL };
  }
  if (app === "embeddings") {
    const { embeddingModel, EMBEDDING_SERVING_DEFAULTS: preset, openAIEmbeddingSpec } = await import("../embeddings/index.js");
    // Every character sent is tokenized in the worker: a body is bounded like chat's (2048 short texts fit easily).
    const servingDefaults = { maxBatchSize: preset.maxBatchSize, batchTimeout: preset.batchTimeout, workersPerDevice: preset.workers, idempotent: preset.idempotent, maxPayloadSize: 1024 * 1024 };
    const api = { ...embeddingModel({ model: model ?? "", precision }), servingDefaults };
    return { api, spec: openAIEmbeddingSpec(), defaults: { ...servingDefaults, model: "(required)" }, tool: EMBEDDINGS_TOOL };
  }
  const [{ chatModel }, { DEFAULT_CHAT_MODEL }, { openAISpec }] = await Promise.all([
    import("../chat/chat-api.js"),
    import("../chat/model.js"),
    import("../openai/spec.js"),
  ]);
  const api = chatModel({ model, precision, ...(chatTemplate ? { chatTemplate } : {}) });
  return { api, spec: openAISpec(), defaults: { ...api.servingDefaults, model: DEFAULT_CHAT_MODEL } };
}

/**
 * `batchwise serve classifier|chat|embeddings [flags]`: every flag and environment variable comes from options.ts,
 * resolved (over the app's serving defaults) by resolve-options.ts; `--help` shows the app's own defaults.
 */
export async function runServe(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...cliFlags(SCOPES), help: { type: "boolean" } },
    allowPositionals: true,
  });
  const app = (positionals[0] ?? "classifier") as App;
  if (values.help || !APPS.includes(app)) {
    const shown = APPS.includes(app) ? app : "classifier";
    const { defaults } = await servedApp(shown, {});
    console.log(`Usage: batchwise serve ${APPS.join("|")} [flags]\n\nbatchwise serve ${shown}:\n${flagHelp(SCOPES, defaults)}`);
    return;
  }
  const sources: OptionSources = { flags: values, environment: process.env, scopes: ["server", "endpoint"] };
  const appOptions = readSourceOptions(sources, ["app"]) as AppOptions;
  if (app === "embeddings" && !appOptions.model) throw new Error("batchwise serve embeddings needs --model ID_OR_PATH (e.g. --model aidreams260K)");
  const { api, spec, tool } = await servedApp(app, appOptions);
  if (appOptions.mcp && !tool) throw new Error(`batchwise serve ${app} has no --mcp tool (classifier and embeddings do)`);
  const { apiKey: _secret, ...shown } = readSourceOptions(sources, ["server", "endpoint"]);
  console.error(`[batchwise] ${app}: ${JSON.stringify({ ...appOptions, ...shown })}`);
  await serve({ api, spec, ...(appOptions.mcp ? { mcp: tool } : {}) }, sources);
}

/** The classifier as an MCP tool: the description tells a model how to pass the image. */
const CLASSIFIER_TOOL: McpToolOptions = {
  name: "classify_image",
  description: 'Classify a photo. Arguments: {"image": "<base64 JPEG, PNG or WebP, or a data: URL>"}. Answers {"predictions": [{"label", "probability"}…]}, most likely first.',
  inputSchema: {
    type: "object",
    properties: { image: { type: "string", description: "the image as base64 or a data:image/...;base64, URL" } },
    required: ["image"],
  },
};

/** The embedding model as an MCP tool: the arguments are an OpenAI embeddings request. */
const EMBEDDINGS_TOOL: McpToolOptions = {
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
