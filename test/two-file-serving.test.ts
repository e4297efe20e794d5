import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The README's two-file serving, as written there: the class in doubler-api.ts, the server in server.ts (importing
// the class and passing it) or in server-source.ts ({ module: "./doubler-api.js", export, options }). Each runs
// under tsx from source AND compiled by tsc under plain node, with the same spelling, started from another working
// directory than the files' (the module path is relative to the calling file, as an import is).

const root = path.resolve(".");
const dir = path.join(root, ".readme-test", `two-file-${process.pid}`); // inside the package: `import "batchwise"` works
const build = path.join(dir, "build");
const children: ChildProcess[] = [];

/** The README's TypeScript blocks whose first line is `// <file> — …`, by file name. */
function readmeFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const match of readFileSync("README.md", "utf8").matchAll(/```ts\n(\/\/ ([\w-]+\.ts) — [\s\S]*?)```/g)) files.set(match[2], match[1]);
  return files;
}

beforeAll(() => {
  const files = readmeFiles();
  mkdirSync(dir, { recursive: true });
  for (const name of ["doubler-api.ts", "server.ts", "server-source.ts"]) {
    expect(files.has(name), `README block for ${name}`).toBe(true);
    writeFileSync(path.join(dir, name), files.get(name)!);
  }
  // compiled as a user compiles it: strict, nodenext, into build/ (the .js files beside each other)
  writeFileSync(
    path.join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, rootDir: ".", outDir: "build", skipLibCheck: true, types: ["node"], typeRoots: [path.join(root, "node_modules/@types")] },
      files: ["doubler-api.ts", "server.ts", "server-source.ts"],
    }),
  );
  const tsc = spawnSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", dir], { encoding: "utf8" });
  expect(tsc.stdout + tsc.stderr).toBe("");
}, 120_000);

afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Start `node [--import tsx] file` from the project root (not the files' folder); resolve once /readyz is 200. */
async function start(args: string[]): Promise<{ url: string; log: () => string }> {
  const port = await freePort();
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let log = "";
  child.stdout.on("data", (c) => (log += c));
  child.stderr.on("data", (c) => (log += c));
  const url = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 90_000; Date.now() < deadline; ) {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${log.slice(-2000)}`);
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) return { url, log: () => log };
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`not ready: ${log.slice(-2000)}`);
}

async function double(url: string, x: number) {
  const response = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ x }) });
  return { status: response.status, body: await response.json() };
}

describe("two-file serving, one spelling for tsx and compiled node", () => {
  it.each([
    ["tsx, import the class and pass it", ["--import", "tsx", path.join(dir, "server.ts")], 2],
    ["compiled, import the class and pass it", [path.join(build, "server.js")], 2],
    ["tsx, { module: './doubler-api.js' } loads doubler-api.ts", ["--import", "tsx", path.join(dir, "server-source.ts")], 3],
    ["compiled, { module: './doubler-api.js' } loads doubler-api.js", [path.join(build, "server-source.js")], 3],
  ])("%s", async (_name, args, factor) => {
    const server = await start(args as string[]);
    const answers = await Promise.all([1, 2, 21].map((x) => double(server.url, x)));
    expect(answers).toEqual([1, 2, 21].map((x) => ({ status: 200, body: { y: factor * x } })));
  }, 120_000);

  it("plain node (no tsx) with only the .ts beside: a startup error that says what to do", () => {
    const script = path.join(dir, "plain-node-server.mjs");
    writeFileSync(script, `import { serve } from "batchwise";\nawait serve({ api: { module: "./doubler-api.js", export: "Doubler" }, port: 0 });\n`);
    const run = spawnSync(process.execPath, [script], { cwd: root, encoding: "utf8", timeout: 60_000 });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/doubler-api\.ts is TypeScript and its \.js does not exist: run the server under tsx/);
  }, 60_000);
});
