import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { chatModel, CHAT_SERVING_DEFAULTS } from "../src/chat/chat-api.js";
import { CLASSIFIER_SERVING_DEFAULTS, imageClassifier } from "../src/classifier/image-classifier.js";
import { availableCores } from "../src/runtime/device.js";
import { ENDPOINT_DEFAULTS, OptionError, SERVER_DEFAULTS } from "../src/server/options.js";
import { resolveOptions } from "../src/server/resolve-options.js";
import { createServer, type BatchwiseServer } from "../src/server/server.js";
import { startChild, type ChildServer } from "./fixtures/child-server.js";
import { sumApi } from "./fixtures/sum-api.js";
import { image } from "./helpers/paths.js";

// What runs is what is shown: one resolver turns code options, flags and environment into configs; an API's own
// serving defaults (the classifier's batching and workers) apply when served from a user's file, and `--help` prints
// the defaults of the command it documents.

const cores = availableCores();

describe("resolveOptions: code over flags over environment over the API's serving defaults over the declared defaults", () => {
  it("fills every default from the declarations when nothing is set", () => {
    const { server, endpoints } = resolveOptions({ api: sumApi() });
    expect(server).toMatchObject(SERVER_DEFAULTS);
    expect(server.apiKey).toBeUndefined();
    expect(endpoints[0]).toMatchObject({ ...ENDPOINT_DEFAULTS, batchTimeout: 0 }); // no batching: nothing waits
    expect(resolveOptions({ api: sumApi(), maxBatchSize: 4 }).endpoints[0].batchTimeout).toBe(ENDPOINT_DEFAULTS.batchTimeout);
  });

  it("takes flags over environment over serving defaults, and the code over all of them", () => {
    const environment = { BATCHWISE_MAX_BATCH_SIZE: "16", BATCHWISE_BATCH_TIMEOUT: "0.05", PORT: "9001", BATCHWISE_DRAIN_PERIOD: "2" };
    const flags = { "max-batch-size": "32" };
    const sources = { flags, environment, scopes: ["server", "endpoint"] as const };
    const { server, endpoints } = resolveOptions({ api: imageClassifier() }, { ...sources, scopes: [...sources.scopes] });
    expect(endpoints[0]).toMatchObject({ maxBatchSize: 32, batchTimeout: 0.05, workersPerDevice: cores, idempotent: true });
    expect(server).toMatchObject({ port: 9001, drainPeriod: 2 });
    const code = resolveOptions({ api: imageClassifier(), maxBatchSize: 2, port: 0 }, { ...sources, scopes: [...sources.scopes] });
    expect(code.endpoints[0].maxBatchSize).toBe(2);
    expect(code.server.port).toBe(0);
  });

  it("reads no environment variable unless asked, but the API key's always", () => {
    const environment = { BATCHWISE_MAX_BATCH_SIZE: "16", BATCHWISE_API_KEY: "k1" };
    const { server, endpoints } = resolveOptions({ api: sumApi() }, { environment });
    expect(endpoints[0].maxBatchSize).toBe(ENDPOINT_DEFAULTS.maxBatchSize);
    expect(server.apiKey).toBe("k1");
    expect(() => resolveOptions({ api: sumApi() }, { environment: { BATCHWISE_API_KEY: "" } })).toThrow(/API key is empty/);
  });

  it("with `endpoints`, environment variables set only server-wide options", () => {
    const environment = { BATCHWISE_MAX_BATCH_SIZE: "16", BATCHWISE_HOST: "0.0.0.0" };
    const { server, endpoints } = resolveOptions({ endpoints: [{ api: sumApi(), path: "/a" }] }, { environment, scopes: ["server", "endpoint"] });
    expect(server.host).toBe("0.0.0.0");
    expect(endpoints[0].maxBatchSize).toBe(1);
  });

  it("checks serving defaults and options alike, naming the option", () => {
    expect(() => resolveOptions({ api: { ...imageClassifier(), servingDefaults: { maxBatchSize: 0 } } })).toThrow(OptionError);
    expect(() => resolveOptions({ api: sumApi(), drainPeriod: -1 })).toThrow(/drainPeriod must be a number ≥ 0/);
  });

  it("the chat API carries its own serving defaults, its payload limit included when it is the only endpoint", () => {
    const { server, endpoints } = resolveOptions({ api: chatModel() });
    expect(endpoints[0]).toMatchObject({ maxBatchSize: CHAT_SERVING_DEFAULTS.maxBatchSize, maxBatchesPerWorker: CHAT_SERVING_DEFAULTS.maxBatchesPerWorker });
    expect(server.maxPayloadSize).toBe(CHAT_SERVING_DEFAULTS.maxPayloadSize);
    expect(resolveOptions({ endpoints: [{ api: chatModel(), path: "/chat" }] }).server.maxPayloadSize).toBe(SERVER_DEFAULTS.maxPayloadSize);
  });
});

describe("imageClassifier() served from a user's own file carries the classifier's serving defaults", () => {
  let server: BatchwiseServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("createServer({ api: imageClassifier() }): /info shows batching 64 / 0.01 s, a worker per core, idempotent", async () => {
    server = await createServer({ api: imageClassifier({ precision: "int8" }), accelerator: "cpu", port: 0, log: false });
    const url = await server.listen();
    const info = (await (await fetch(`${url}/info`)).json()) as { endpoints: Record<string, unknown>[] };
    expect(info.endpoints[0]).toMatchObject({
      maxBatchSize: CLASSIFIER_SERVING_DEFAULTS.maxBatchSize,
      batchTimeout: CLASSIFIER_SERVING_DEFAULTS.batchTimeout,
      workersPerDevice: CLASSIFIER_SERVING_DEFAULTS.workers(cores),
      idempotent: true,
    });
    const response = await fetch(`${url}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ image: readFileSync(image("darknet_dog.jpg")).toString("base64") }),
    });
    expect(response.status).toBe(200);
  }, 120_000);

  it("options the code sets win over them", async () => {
    server = await createServer({ api: imageClassifier({ precision: "int8" }), maxBatchSize: 8, workersPerDevice: 1, idempotent: false, port: 0, log: false });
    const url = await server.listen();
    const info = (await (await fetch(`${url}/info`)).json()) as { endpoints: Record<string, unknown>[] };
    expect(info.endpoints[0]).toMatchObject({ maxBatchSize: 8, batchTimeout: 0.01, workersPerDevice: 1, idempotent: false });
  }, 120_000);
});

describe("batchwise serve: --help shows the defaults of the command it documents, and they are what runs", () => {
  const help = (app: string) => execFileSync(process.execPath, ["--import", "tsx", "src/cli.ts", "serve", app, "--help"], { encoding: "utf8" });
  const line = (text: string, flag: string) => text.split("\n").find((l) => l.trimStart().startsWith(`${flag} `) || l.trim() === flag || l.trimStart().startsWith(`${flag}  `)) ?? "";

  it("classifier: 64 / 0.01 s / a worker per core / idempotent", () => {
    const text = help("classifier");
    expect(line(text, "--max-batch-size")).toMatch(/\(default 64;/);
    expect(line(text, "--batch-timeout")).toMatch(/\(default 0\.01 s;/);
    expect(line(text, "--workers-per-device")).toMatch(new RegExp(`\\(default ${CLASSIFIER_SERVING_DEFAULTS.workers(cores)};`));
    expect(line(text, "--idempotent")).toMatch(/\(default true;/);
    expect(line(text, "--model")).toMatch(/\(default mobilenetv2-12;/);
  }, 60_000);

  it("chat: its own 8 / 8 batches per worker / 1 MiB bodies", () => {
    const text = help("chat");
    expect(line(text, "--max-batch-size")).toMatch(/\(default 8;/);
    expect(line(text, "--max-batches-per-worker")).toMatch(/\(default 8;/);
    expect(line(text, "--max-payload-size")).toMatch(/\(default 1 MiB;/);
    expect(line(text, "--idempotent")).toMatch(/\(default false;/);
  }, 60_000);

  let child: ChildServer | undefined;
  afterEach(() => {
    child?.child.kill("SIGINT");
    child = undefined;
  });

  it("`batchwise serve classifier` runs what its help shows; a flag and a variable override it", async () => {
    process.env.BATCHWISE_BATCH_TIMEOUT = "0.02";
    try {
      child = await startChild(["src/cli.ts", "serve", "classifier", "--port", "0", "--precision", "int8", "--workers", "1"], /serving \/predict at (\S+)\/predict/, 120_000);
    } finally {
      delete process.env.BATCHWISE_BATCH_TIMEOUT;
    }
    const info = (await (await fetch(`${child.url}/info`)).json()) as { endpoints: Record<string, unknown>[] };
    expect(info.endpoints[0]).toMatchObject({ maxBatchSize: 64, batchTimeout: 0.02, workersPerDevice: 1, idempotent: true });
  }, 150_000);
});
