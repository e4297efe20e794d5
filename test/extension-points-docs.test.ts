import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// Every TypeScript block of docs/extension-points.md runs as written (its `"batchwise"` imports pointed at the source),
// and prints exactly the `text` block under it. A block must be marked <!-- doc-test: NAME -->.

const doc = readFileSync("docs/extension-points.md", "utf8");
const blocks = [...doc.matchAll(/<!-- doc-test: ([\w-]+) -->\n```ts\n([\s\S]*?)```\n```text\n([\s\S]*?)```/g)].map(([, name, code, output]) => ({ name, code, output }));
const workDir = path.resolve(".doc-test"); // inside the package: bare imports (fastify-plugin) resolve from node_modules
mkdirSync(workDir, { recursive: true });
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

const source = (entry: string) => path.resolve("src", entry === "batchwise" ? "index.ts" : `${entry.slice("batchwise/".length)}/index.ts`);

function run(name: string, code: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const file = path.join(workDir, `${name}.ts`);
  writeFileSync(file, code.replace(/from "(batchwise(?:\/\w+)?)"/g, (_m, entry: string) => `from ${JSON.stringify(source(entry))}`));
  return new Promise((resolve) => {
    const child = spawn(path.resolve("node_modules/.bin/tsx"), [file], { cwd: workDir, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("close", (exit) => resolve({ code: exit, stdout, stderr }));
  });
}

describe("docs/extension-points.md", () => {
  it("has its examples, each marked", () => {
    expect(blocks.map((b) => b.name)).toEqual(["typed", "openapi", "authorize", "compress", "https", "plugins"]);
    const tsBlocks = doc.match(/```ts\n/g)?.length ?? 0;
    expect(tsBlocks).toBe(blocks.length);
  });

  it("every row of the feature table names a test file that exists", () => {
    const tests = [...doc.matchAll(/\| (test\/[\w-]+\.test\.ts) \|/g)].map((m) => m[1]);
    expect(tests.length).toBeGreaterThanOrEqual(8);
    for (const test of tests) expect(() => readFileSync(test), test).not.toThrow();
  });

  it.each(blocks)("the $name example prints what the doc says", async ({ name, code, output }) => {
    if (name === "https") {
      // the certificate the text says to make with openssl
      execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { cwd: workDir, stdio: "ignore" });
    }
    const result = await run(name, code);
    expect(result.stderr.replace(/npm warn[^\n]*\n/g, "")).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(output);
  });
});
