import { parseArgs } from "node:util";
import type { PrecisionChoice } from "../api.js";
import { availableCores } from "../runtime/device.js";
import { cliFlags, flagHelp, readCliOptions } from "../server/options.js";
import { serve } from "../server/serve.js";
import type { ServerOptions } from "../server/server.js";

const SCOPES = ["server", "endpoint", "app"] as const;

/** `batchwise serve classifier|chat [flags]`: every flag and environment variable comes from options.ts. */
export async function runServe(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...cliFlags([...SCOPES]), help: { type: "boolean" } },
    allowPositionals: true,
  });
  const app = positionals[0] ?? "classifier";
  if (values.help || (app !== "classifier" && app !== "chat")) {
    console.log(`Usage: batchwise serve classifier|chat [flags]\n\n${flagHelp([...SCOPES])}`);
    return;
  }
  // Flags, then environment variables; what neither sets falls back to the app's serving preset below.
  const { model, precision = "auto", labels = "cat-dog", chatTemplate, ...given } = readCliOptions(values, [...SCOPES]) as ServerOptions & {
    model?: string;
    chatTemplate?: string;
    precision?: PrecisionChoice;
    labels?: "cat-dog" | "imagenet";
  };

  if (app === "classifier") {
    const { imageClassifier, CLASSIFIER_SERVING_DEFAULTS: preset } = await import("../apps/image-classifier.js");
    const config: ServerOptions = {
      api: imageClassifier({ model, precision, labels }),
      maxBatchSize: preset.maxBatchSize,
      batchTimeout: preset.batchTimeout,
      workersPerDevice: preset.workers(availableCores()),
      idempotent: preset.idempotent,
      ...given,
    };
    printConfig("classifier", config, { model: model ?? "mobilenetv2-12", precision, labels });
    await serve(config);
  } else {
    const [{ chatModel, CHAT_SERVING_DEFAULTS: preset }, { openAISpec }] = await Promise.all([
      import("../apps/chat.js"),
      import("../specs/openai.js"),
    ]);
    const config: ServerOptions = {
      api: chatModel({ model, precision, ...(chatTemplate ? { chatTemplate } : {}) }),
      spec: openAISpec(),
      maxBatchSize: preset.maxBatchSize,
      batchTimeout: preset.batchTimeout,
      workersPerDevice: preset.workers,
      maxBatchesPerWorker: preset.maxBatchesPerWorker,
      // a whole context window of text is a few hundred kB; larger bodies are refused before they are parsed
      maxPayloadSize: 1024 * 1024,
      ...given,
    };
    printConfig("chat", config, { model: model ?? "(hub default; offline use --model tiny-random-llama)", precision, chatTemplate });
    await serve(config);
  }
}

function printConfig(app: string, config: ServerOptions, model: Record<string, unknown>) {
  const { api: _api, spec: _spec, apiKey, ...shown } = config;
  console.error(`[batchwise] ${app}: ${JSON.stringify({ ...model, ...shown, apiKey: apiKey ? "(set)" : undefined })}`);
}
