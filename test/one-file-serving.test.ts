import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { createServer, type BatchwiseServer } from "../src/index.js";
import { SumAPI } from "./fixtures/sum-api.js";
import { startChild, type ChildServer } from "./fixtures/child-server.js";

// One-file serving as LitServe users write it: the class and `await serve({ api: MyAPI })` in one module. Workers
// import that module to find the class; serve() there must start nothing and let the worker take the class.

let child: ChildServer | undefined;
afterEach(() => {
  child?.child.kill("SIGKILL");
  child = undefined;
});

async function post(url: string, body: unknown) {
  const response = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe("serving from one file", () => {
  it.each([
    ["TypeScript through tsx, importing the source", "test/fixtures/one-file-api.ts", 2],
    ["compiled JavaScript, importing the built package by name", "test/fixtures/one-file-api.mjs", 3],
  ])("%s: answers from worker threads, and the module's top level after serve runs once", async (_name, file, factor) => {
    child = await startChild([file], /URL (\S+) from thread/, 90_000);
    const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => post(child!.url, { x: i })));
    for (const [i, answer] of answers.entries()) {
      expect(answer.status).toBe(200);
      expect(answer.body.y).toBe(factor * i);
      expect(answer.body.thread).not.toBe(0); // predicted in a worker, not on the main thread
    }
    // Workers imported the module (that is how they found the class) without printing what follows `await serve`.
    const output = child.stdout();
    expect(output.match(/^URL /gm)).toHaveLength(1);
    expect(output).toMatch(/from thread 0\n/);
  });

  it("a decodeRequest error in the one-file API is a 400 with its message", async () => {
    child = await startChild(["test/fixtures/one-file-api.ts"], /URL (\S+) from thread/, 90_000);
    const answer = await post(child.url, { x: "not a number" });
    expect(answer).toEqual({ status: 400, body: { error: { code: "bad_request", message: "x must be a number" } } });
  });

  it("an ApiSource pointing at the module that serves it fails at once with what to do, instead of hanging", async () => {
    const started = Date.now();
    const run = spawn(process.execPath, ["--import", "tsx", "test/fixtures/one-file-self-source.ts"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    run.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => run.once("exit", resolve));
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/importing it again would wait for itself\. Pass the class instead: serve\(\{ api: Echo \}\)/);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});

describe("the class-in-another-module form", () => {
  let server: BatchwiseServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("a class with the module that exports it serves from workers", async () => {
    server = await createServer({
      api: SumAPI,
      module: fileURLToPath(new URL("./fixtures/sum-api.ts", import.meta.url)),
      apiOptions: {},
      port: 0,
      log: false,
    });
    const url = await server.listen();
    const answer = await post(url, { numbers: [1, 2, 3] });
    expect(answer.status).toBe(200);
    expect(answer.body.sum).toBe(6);
    expect(answer.body.worker).toBe(0);
  });

  it("a module that neither exports nor serves the class is a clear setup error", async () => {
    server = await createServer({ api: SumAPI, module: fileURLToPath(new URL("./fixtures/echo-api.ts", import.meta.url)), port: 0, log: false });
    await expect(server.listen()).rejects.toThrow(/has no exported class "SumAPI" and does not serve it/);
  });
});
