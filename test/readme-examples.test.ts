import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { imagesDir } from "./helpers/paths.js";

// Every TypeScript and shell block of the README and of docs/*.md runs as written, against real servers: each carries
// a `<!-- readme-test: ROLE -->` line saying how (or `skip (why)`), and a block without one fails this test. Servers
// listen on a free port instead of 8000 (the only change made to a block, with the sample photos standing in for
// `dog.jpg`), so runs never collide. `npx batchwise` in a block runs this checkout's dist/cli.js (test/global-setup.ts builds it), as the package's bin.

interface Block {
  role: string;
  lang: string;
  code: string;
  /** file:line */
  where: string;
}

const documents = ["README.md", ...readdirSync("docs").filter((f) => f.endsWith(".md")).map((f) => path.join("docs", f))];
const blocks: Block[] = [];
const unmarked: string[] = [];
for (const file of documents) {
  const text = readFileSync(file, "utf8");
  for (const match of text.matchAll(/(?:<!-- readme-test: ([^\n]*?) -->\n)?```(\w*)\n([\s\S]*?)```/g)) {
    const where = `${file}:${text.slice(0, match.index).split("\n").length}`;
    const [, role, lang, code] = match;
    if (!["sh", "bash", "ts", "typescript"].includes(lang)) continue;
    if (!role) unmarked.push(`${where} (${lang})`);
    else blocks.push({ role, lang, code, where });
  }
}
const block = (role: string) => {
  const found = blocks.find((b) => b.role === role);
  if (!found) throw new Error(`No block of README.md or docs/ is marked <!-- readme-test: ${role} -->`);
  return found;
};

const workDir = path.resolve(".readme-test"); // inside the package, so `import "batchwise"` is the built package
mkdirSync(workDir, { recursive: true });
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) stop(child);
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const onPort = (code: string, port: number) => code.replace(/(localhost|127\.0\.0\.1):8000/g, `$1:${port}`);

/** Start a long-running block (a server) in its own process group; resolves once /readyz says it is ready. */
async function startServer(command: string[], port: number): Promise<ChildProcess> {
  const child = spawn(command[0], command.slice(1), { env: { ...process.env, PORT: String(port) }, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let log = "";
  child.stdout!.on("data", (c) => (log += c));
  child.stderr!.on("data", (c) => (log += c));
  const deadline = Date.now() + 240_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}): ${log.slice(-2000)}`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
    if (ready) return child;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`server not ready on ${port}: ${log.slice(-2000)}`);
}

function stop(child: ChildProcess) {
  try {
    process.kill(-child.pid!, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Run a block to completion: bash for shell, tsx for TypeScript (from .readme-test/). */
function run(command: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command[0], command.slice(1), { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
const bash = (code: string, port: number) => run(["bash", "-c", `set -euo pipefail\n${code}`], { PORT: String(port) });
const tsxFile = (name: string, code: string) => {
  const file = path.join(workDir, name);
  writeFileSync(file, code);
  return [path.resolve("node_modules/.bin/tsx"), file];
};

describe("README examples", () => {
  it("every TypeScript and shell block of README.md and docs/*.md says how it is tested", () => {
    expect(documents.length).toBeGreaterThan(1);
    expect(unmarked).toEqual([]);
    // the blocks that run are the README's, each once
    for (const b of blocks.filter((x) => !x.role.startsWith("skip"))) expect(b.where, b.role).toMatch(/^README\.md:/);
    expect(new Set(blocks.filter((x) => !x.role.startsWith("skip")).map((b) => b.role)).size).toBe(blocks.filter((x) => !x.role.startsWith("skip")).length);
    for (const b of blocks) expect(b.role).toMatch(/^(skip \(.+\)|server classifier|calls classifier|own-model|calls own-model|server chat|openai-client)$/);
  });

  it("the classifier quick start: npx batchwise serve classifier, then curl (raw, multipart, base64 JSON from stdin) and the client, for every sample photo", async () => {
    const port = await freePort();
    const server = await startServer(["bash", "-c", block("server classifier").code], port);
    const calls = onPort(block("calls classifier").code, port);
    const photos = readdirSync(imagesDir).filter((f) => /\.(jpe?g|png)$/i.test(f));
    expect(photos.length).toBeGreaterThanOrEqual(5);
    for (const photo of photos) {
      expect(calls).toMatch(/\bdog\.jpg\b/);
      const result = await bash(calls.replace(/\bdog\.jpg\b/g, path.join(imagesDir, photo)), port);
      expect(result.stderr, photo).not.toMatch(/Argument list too long|ERR|Error/);
      expect(result.code, photo).toBe(0);
      const answers = result.stdout.split("\n").filter((l) => l.startsWith("{"));
      expect(answers, photo).toHaveLength(3);
      for (const answer of answers) expect(JSON.parse(answer).predictions[0].label, photo).toMatch(/^(Cat|Dog|Other)$/);
      expect(new Set(answers).size, photo).toBe(1); // the three body forms answer the same
      expect(result.stdout, photo).toMatch(/^(Cat|Dog|Other) +\d+\.\d%$/m); // the client's lines
    }
    stop(server);
  }, 600_000);

  it("serve your own model: the one-file example runs with tsx and answers the curl shown under it", async () => {
    const port = await freePort();
    const server = await startServer(tsxFile("doubler.ts", block("own-model").code), port);
    const result = await bash(onPort(block("calls own-model").code, port), port);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe('{"y":42}');
    stop(server);
  }, 300_000);

  it("the OpenAI client call against `serve chat`", async () => {
    const port = await freePort();
    const server = await startServer(["bash", "-c", block("server chat").code], port);
    const result = await run(tsxFile("openai-client.ts", onPort(block("openai-client").code, port)));
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/\{[\s\S]*\}/); // the parsed JSON object, printed
    stop(server);
  }, 300_000);
});
