import { parseArgs } from "node:util";
import type { AcceleratorChoice, PrecisionChoice } from "../api.js";
import { availableCores } from "../runtime/device.js";
import { serve, type ServerOptions } from "../server/server.js";

const options = {
  port: { type: "string" },
  host: { type: "string" },
  "max-batch-size": { type: "string" },
  "batch-timeout": { type: "string" },
  workers: { type: "string" },
  "threads-per-worker": { type: "string" },
  precision: { type: "string" },
  accelerator: { type: "string" },
  devices: { type: "string" },
  model: { type: "string" },
  labels: { type: "string" },
  timeout: { type: "string" },
  "predict-timeout": { type: "string" },
  "max-queue-size": { type: "string" },
  "api-key": { type: "string" },
  help: { type: "boolean" },
} as const;

/** `batchwise serve classifier|chat [flags]` */
export async function runServe(argv: string[]) {
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true });
  const app = positionals[0] ?? "classifier";
  if (values.help || (app !== "classifier" && app !== "chat")) {
    console.log("Usage: batchwise serve classifier|chat [flags]  (see `batchwise --help`)");
    return;
  }
  const num = (name: keyof typeof values, fallback: number) => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new Error(`--${name} must be a number, got "${raw}"`);
    return value;
  };
  const common: ServerOptions = {
    port: num("port", Number(process.env.PORT ?? 8000)),
    // not HOST: shells and containers often set it to the machine's name, which would expose the server by accident
    host: values.host ?? process.env.BATCHWISE_HOST ?? "127.0.0.1",
    accelerator: (values.accelerator ?? "auto") as AcceleratorChoice,
    devices: values.devices === undefined || values.devices === "auto" ? "auto" : num("devices", 1),
    timeout: num("timeout", 30),
    predictTimeout: values["predict-timeout"] === undefined ? undefined : num("predict-timeout", 0),
    threadsPerWorker: values["threads-per-worker"] === undefined ? undefined : num("threads-per-worker", 1),
    maxQueueSize: num("max-queue-size", 1024),
    apiKey: values["api-key"],
  };
  const precision = (values.precision ?? "auto") as PrecisionChoice; // auto: the fastest the provider runs

  if (app === "classifier") {
    const { imageClassifier, CLASSIFIER_SERVING_DEFAULTS: defaults } = await import("../apps/image-classifier.js");
    const labels = (values.labels ?? "cat-dog") as "cat-dog" | "imagenet";
    const config: ServerOptions = {
      ...common,
      api: imageClassifier({ model: values.model, precision, labels }),
      maxBatchSize: num("max-batch-size", defaults.maxBatchSize),
      batchTimeout: num("batch-timeout", defaults.batchTimeout),
      workersPerDevice: num("workers", defaults.workers(availableCores())),
    };
    printConfig("classifier", config, { model: values.model ?? "mobilenetv2-12", precision, labels });
    await serve(config);
  } else {
    const [{ chatModel, CHAT_SERVING_DEFAULTS: defaults }, { openAISpec }] = await Promise.all([
      import("../apps/chat.js"),
      import("../specs/openai.js"),
    ]);
    const config: ServerOptions = {
      ...common,
      api: chatModel({ model: values.model, precision }),
      spec: openAISpec(),
      maxBatchSize: num("max-batch-size", defaults.maxBatchSize),
      batchTimeout: num("batch-timeout", defaults.batchTimeout),
      workersPerDevice: num("workers", defaults.workers),
      maxBatchesPerWorker: defaults.maxBatchesPerWorker,
      // a whole context window of text is a few hundred kB; larger bodies are refused before they are parsed
      maxPayloadSize: 1024 * 1024,
    };
    printConfig("chat", config, { model: values.model ?? "(hub default; offline use --model tiny-random-llama)", precision });
    await serve(config);
  }
}

function printConfig(app: string, config: ServerOptions, model: Record<string, unknown>) {
  const { api: _api, spec: _spec, apiKey, ...shown } = config;
  console.error(`[batchwise] ${app}: ${JSON.stringify({ ...model, ...shown, apiKey: apiKey ? "(set)" : undefined })}`);
}
