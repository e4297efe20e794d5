import { existsSync } from "node:fs";
import path from "node:path";
import { defineConfig } from "vitest/config";

// Tests use the real models and photos from ../shared (CI has it beside the clone); BATCHWISE_MODELS_DIR overrides.
const sharedModels = path.resolve("..", "shared", "models");
const modelsDir = process.env.BATCHWISE_MODELS_DIR ?? (existsSync(sharedModels) ? sharedModels : "data/models");

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    globalSetup: ["test/global-setup.ts"],
    env: { BATCHWISE_MODELS_DIR: modelsDir },
  },
});
