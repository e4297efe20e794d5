import { parseArgs } from "node:util";
import type { ApiSource, PrecisionChoice } from "../api/model-api.js";
import type { Spec } from "../api/spec.js";
import { cliFlags, flagHelp, type OptionScope } from "../server/options.js";
import { readSourceOptions, type OptionSources } from "../server/resolve-options.js";
import { serve } from "../server/serve.js";

const SCOPES: OptionScope[] = ["server", "endpoint", "app"];

interface AppOptions {
  model?: string;
  precision?: PrecisionChoice;
  labels?: "cat-dog" | "imagenet";
}

/** What `batchwise serve <app>` serves: the API (carrying its serving defaults) and its wire format. */
async function servedApp(app: "classifier" | "chat", { model, precision, labels }: AppOptions): Promise<{ api: ApiSource; spec?: Spec; defaults: Record<string, unknown> }> {
  if (app === "classifier") {
    const { imageClassifier, DEFAULT_CLASSIFIER_MODEL } = await import("../classifier/image-classifier.js");
    const api = imageClassifier({ model, precision, labels });
    return { api, defaults: { ...api.servingDefaults, model: DEFAULT_CLASSIFIER_MODEL } };
  }
  const [{ chatModel }, { DEFAULT_CHAT_MODEL }, { openAISpec }] = await Promise.all([
    import("../chat/chat-api.js"),
    import("../chat/model.js"),
    import("../openai/spec.js"),
  ]);
  const api = chatModel({ model, precision });
  return { api, spec: openAISpec(), defaults: { ...api.servingDefaults, model: DEFAULT_CHAT_MODEL } };
}

/**
 * `batchwise serve classifier|chat [flags]`: every flag and environment variable comes from options.ts, resolved
 * (over the app's serving defaults) by resolve-options.ts; `--help` shows the app's own defaults.
 */
export async function runServe(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...cliFlags(SCOPES), help: { type: "boolean" } },
    allowPositionals: true,
  });
  const app = positionals[0] ?? "classifier";
  if (values.help || (app !== "classifier" && app !== "chat")) {
    const shown = app === "chat" ? "chat" : "classifier";
    const { defaults } = await servedApp(shown, {});
    console.log(`Usage: batchwise serve classifier|chat [flags]\n\nbatchwise serve ${shown}:\n${flagHelp(SCOPES, defaults)}`);
    return;
  }
  const sources: OptionSources = { flags: values, environment: process.env, scopes: ["server", "endpoint"] };
  const appOptions = readSourceOptions(sources, ["app"]) as AppOptions;
  const { api, spec } = await servedApp(app, appOptions);
  const { apiKey: _secret, ...shown } = readSourceOptions(sources, ["server", "endpoint"]);
  console.error(`[batchwise] ${app}: ${JSON.stringify({ ...appOptions, ...shown })}`);
  await serve({ api, spec }, sources);
}
