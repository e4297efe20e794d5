import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The package as a user gets it: `npm pack`, installed into an empty project, every entry point imported with its
// types (tsc on a consumer file), internals not importable, and a one-file server from the installed package.

const root = path.resolve(".");
let dir: string;
const npm = (args: string[], cwd: string) => execFileSync("npm", args, { cwd, stdio: "pipe", encoding: "utf8", env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: "skip" } });
const node = (code: string) => execFileSync(process.execPath, ["--input-type=module", "-e", code], { cwd: dir, encoding: "utf8", stdio: "pipe" });

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "batchwise-consumer-"));
  // dist/ is built by the test setup; --ignore-scripts keeps prepack from rebuilding it under other running tests
  npm(["pack", "--ignore-scripts", "--pack-destination", dir], root);
  const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"))!;
  writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  npm(["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", `./${tarball}`, "@types/node@20"], dir);
}, 600_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the packed package", () => {
  it("type-checks a consumer that imports every entry point", () => {
    writeFileSync(
      path.join(dir, "consumer.ts"),
      `import { ModelAPI, BadRequestError, HttpError, errorCodes, Upload, createServer, serve, plainSpec, OPTIONS, type ServerOptions, type ErrorCode } from "batchwise";
import { openAISpec, type OpenAISpecOptions } from "batchwise/openai";
import { imageClassifier, ImageClassifierAPI, type ImageClassifierOptions } from "batchwise/classifier";
import { chatModel, type ChatOptions } from "batchwise/chat";
import { embeddingModel, openAIEmbeddingSpec, type EmbeddingOptions } from "batchwise/embeddings";
import { runApiBench } from "batchwise/bench";

export class Doubler extends ModelAPI<{ x: number }, number, number, { y: number }> {
  override decodeRequest(request: { x: number } | Upload) {
    if (request instanceof Upload || typeof request.x !== "number") throw new BadRequestError("x must be a number", "invalid_body");
    return request.x;
  }
  predict(batch: number[]) { return batch.map((x) => 2 * x); }
  override encodeResponse(y: number) { return { y }; }
}
const code: ErrorCode = "queue_full";
export const status: number = errorCodes[code].status + new HttpError("not_found").status;
export const options: ServerOptions = { api: Doubler, maxBatchSize: 8, spec: plainSpec() };
export const classifier: ImageClassifierOptions = { labels: "imagenet" };
export const chat: ChatOptions = {};
export const openai: OpenAISpecOptions = {};
export const embeddings: EmbeddingOptions = { model: "aidreams260K" };
export const uses = [createServer, serve, openAISpec, imageClassifier, ImageClassifierAPI, chatModel, runApiBench, OPTIONS.length, embeddingModel, openAIEmbeddingSpec];
`,
    );
    writeFileSync(
      path.join(dir, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, types: ["node"], skipLibCheck: false }, files: ["consumer.ts"] }),
    );
    const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
    // Our declarations are checked too (no skipLibCheck); other packages' own typing slips (transformers.js's
    // declarations do not compile under NodeNext) are theirs, so only errors in the consumer or in batchwise count.
    const result = spawnSync(process.execPath, [tsc, "-p", "."], { cwd: dir, encoding: "utf8" });
    const ours = (result.stdout + result.stderr).split("\n").filter((line) => /^(consumer\.ts|node_modules\/batchwise\/)/.test(line));
    expect(ours).toEqual([]);
    expect(result.stdout).toMatch(/^$|error TS/); // tsc ran (it prints nothing, or errors)
  });

  it("every entry point loads at run time; an internal path is not importable", () => {
    const loaded = node(`
      const names = {};
      for (const entry of ["batchwise", "batchwise/openai", "batchwise/classifier", "batchwise/chat", "batchwise/embeddings", "batchwise/bench"]) {
        names[entry] = Object.keys(await import(entry)).length;
      }
      let internal;
      try { await import("batchwise/server/batcher"); internal = "importable"; } catch (error) { internal = error.code; }
      console.log(JSON.stringify({ names, internal }));
    `);
    const { names, internal } = JSON.parse(loaded);
    for (const count of Object.values(names)) expect(count).toBeGreaterThan(0);
    expect(internal).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED");
  });

  it("serves a one-file API from the installed package", async () => {
    expect(await serveOneFile()).toEqual({ y: 42 });
  }, 120_000);

  // Last in this file: it deletes packages from the consumer's node_modules.
  it("import \"batchwise\", /openai, /classifier and /chat load no module of plotly.js-dist-min, undici or tsx", async () => {
    for (const name of TOOLKIT_ONLY) rmSync(path.join(dir, "node_modules", name), { recursive: true, force: true });
    const loaded = node(`
      const gone = {};
      for (const name of ${JSON.stringify(TOOLKIT_ONLY)}) gone[name] = await import(name).then(() => false, (error) => error.code === "ERR_MODULE_NOT_FOUND");
      const names = {};
      for (const entry of ["batchwise", "batchwise/openai", "batchwise/classifier", "batchwise/chat"]) names[entry] = Object.keys(await import(entry)).length;
      console.log(JSON.stringify({ gone, names }));
    `);
    const { gone, names } = JSON.parse(loaded) as { gone: Record<string, boolean>; names: Record<string, number> };
    expect(gone).toEqual(Object.fromEntries(TOOLKIT_ONLY.map((name) => [name, true])));
    for (const [entry, count] of Object.entries(names)) expect(count, entry).toBeGreaterThan(0);
    // and a compiled one-file model is served, its workers included, with none of them installed
    expect(await serveOneFile()).toEqual({ y: 42 });
  }, 120_000);
});

/** The toolkit's (batchwise/bench) heavy dependencies: what is served must not need them. */
const TOOLKIT_ONLY = ["plotly.js-dist-min", "undici", "tsx"];

/** Run a one-file server (a plain .mjs: a class and a serve call, two worker threads) and ask it once. */
async function serveOneFile(): Promise<unknown> {
  writeFileSync(
    path.join(dir, "server.mjs"),
    `import { ModelAPI, serve } from "batchwise";
export class Doubler extends ModelAPI { predict(batch) { return batch.map((r) => ({ y: 2 * r.x })); } }
const server = await serve({ api: Doubler, port: 0, workersPerDevice: 2, drainPeriod: 0, log: false });
console.log("URL " + server.url);`,
  );
  const child = spawn(process.execPath, ["server.mjs"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (c) => {
        out += c;
        const m = /URL (\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.stderr.on("data", (c) => (out += c));
      child.on("exit", (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    const response = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"x": 21}' });
    return await response.json();
  } finally {
    child.kill("SIGKILL");
  }
}

