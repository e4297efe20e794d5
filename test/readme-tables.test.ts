import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderReadme, TABLES_FILE } from "../scripts/readme-tables.js";
import { cliFlags, OPTIONS, OptionError, readCliOptions } from "../src/server/options.js";
import { createServer } from "../src/index.js";
import { sumApi } from "./fixtures/sum-api.js";

// Options and error codes are declared once; the reference tables (docs/reference.md) are generated from them.

describe("declared once", () => {
  it("docs/reference.md's option and error tables equal their declarations (npm run readme:tables rewrites them)", () => {
    const reference = readFileSync(TABLES_FILE, "utf8");
    expect(reference).toBe(renderReadme(reference));
  });

  it("the README is a user's guide: at most 300 lines, no dated runs, `npx batchwise` for package users", () => {
    const readme = readFileSync("README.md", "utf8");
    expect(readme.split("\n").length).toBeLessThanOrEqual(300);
    expect(readme).not.toMatch(/\b20\d\d-\d\d-\d\d\b|this morning|today\b/);
    expect(readme).toMatch(/npx batchwise serve classifier/);
  });

  it("every declared option with a flag is a serve flag, every env variable is read", () => {
    const flags = cliFlags(["server", "endpoint", "app"]);
    for (const d of OPTIONS.filter((o) => o.flag)) expect(flags[d.flag!]).toBeDefined();
    const fromEnv = readCliOptions({}, ["server", "endpoint"], { PORT: "9001", BATCHWISE_MAX_BATCH_SIZE: "32", BATCHWISE_CORS_ORIGINS: "a,b" });
    expect(fromEnv).toEqual({ port: 9001, maxBatchSize: 32, corsOrigins: ["a", "b"] });
    // the flag wins over the environment; an alias works like the flag
    expect(readCliOptions({ workers: "3", "batch-timeout": "0.02" }, ["endpoint"], { BATCHWISE_WORKERS_PER_DEVICE: "1" })).toEqual({
      workersPerDevice: 3,
      batchTimeout: 0.02,
    });
    expect(() => readCliOptions({ "max-batch-size": "0" }, ["endpoint"], {})).toThrow(/--max-batch-size \(maxBatchSize must be an integer ≥ 1, got 0\)/);
    expect(() => readCliOptions({ accelerator: "tpu" }, ["endpoint"], {})).toThrow(/one of auto, cpu, cuda, webgpu/);
  });

  it("createServer checks every option against its declaration and refuses unknown names", async () => {
    await expect(createServer({ api: sumApi(), maxBatchSize: 0, log: false })).rejects.toThrow(OptionError);
    await expect(createServer({ api: sumApi(), batchTimeout: -1, log: false })).rejects.toThrow(/batchTimeout must be a number ≥ 0, got -1/);
    await expect(createServer({ api: sumApi(), drainPeriod: Number.NaN, log: false })).rejects.toThrow(/drainPeriod/);
    await expect(createServer({ api: sumApi(), timeout: 3, log: false } as never)).rejects.toThrow(/Unknown option "timeout"/);
  });
});
