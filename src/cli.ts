#!/usr/bin/env node
/**
 * `batchwise serve …`, `batchwise bench …`, `batchwise client …`. Each command lives in its own module, loaded only
 * when used (the chat model pulls in transformers.js, which the classifier does not need).
 */
const usage = `Usage:
  batchwise serve classifier|chat|embeddings [--port N] [--host H] [--max-batch-size N] [--batch-timeout SECONDS]
                  [--workers N] [--threads-per-worker N] [--precision auto|fp32|fp16|bf16|int8]
                  [--accelerator auto|cpu|cuda|webgpu] [--model ID_OR_PATH] [--labels cat-dog|imagenet]
                  [--timeout SECONDS] [--predict-timeout SECONDS] [--max-queue-size N] [--api-key KEY] [--mcp]
                  (env: PORT, BATCHWISE_HOST, BATCHWISE_API_KEY, BATCHWISE_MODELS_DIR)
  batchwise bench baseline|pipeline|api|suite|overhead|precision|llm|stream … [--json FILE]
  batchwise client predict IMAGE [--url URL]
  batchwise soak [--minutes N] [--concurrency N]     sustained real-image load, errors, latency and RSS over time
Run a command with --help for its options.`;

const commands: Record<string, () => Promise<(argv: string[]) => Promise<unknown>>> = {
  serve: async () => (await import("./cli/serve.js")).runServe,
  bench: async () => (await import("./bench/cli.js")).runBenchCli,
  client: async () => (await import("./cli/client.js")).runClient,
  soak: async () => (await import("./bench/cli.js")).runSoakCli,
};

async function main(argv: string[]) {
  const [command, ...rest] = argv;
  const load = command ? commands[command] : undefined;
  if (!load) {
    console.log(usage);
    process.exitCode = command && command !== "--help" && command !== "help" ? 2 : 0;
    return;
  }
  await (await load())(rest);
}

main(process.argv.slice(2)).catch((error) => {
  console.error(`batchwise: ${(error as Error).message}`);
  process.exit(1);
});
