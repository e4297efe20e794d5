import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidRequestError, parseChatRequest, parseCompletionRequest, UNSUPPORTED_CHAT, UNSUPPORTED_COMPLETION } from "../src/openai/spec.js";

// docs/openai.md: its own-model example runs as written (tsx, the built package, the official openai client), and its
// compatibility table says what the code does for every field the spec refuses or ignores.
const docs = readFileSync("docs/openai.md", "utf8");
const block = (role: string) => {
  const match = new RegExp(`<!-- readme-test: ${role} -->\\n\`\`\`ts\\n([\\s\\S]*?)\`\`\``).exec(docs);
  if (!match) throw new Error(`docs/openai.md has no block marked ${role}`);
  return match[1];
};

const workDir = path.resolve(".readme-test"); // inside the package, so `import "batchwise"` is the built package
mkdirSync(workDir, { recursive: true });
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function tsx(name: string, code: string, port: number, detached: boolean) {
  const file = path.join(workDir, name);
  writeFileSync(file, code.replace(/localhost:8000/g, `localhost:${port}`));
  const child = spawn(path.resolve("node_modules/.bin/tsx"), [file], { env: { ...process.env, PORT: String(port) }, detached, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c) => (stdout += c));
  child.stderr!.on("data", (c) => (stderr += c));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
  return { child, done, log: () => stdout + stderr };
}

describe("docs/openai.md", () => {
  it("the own-model example (an async generator of words) is served and answers the openai client's calls", async () => {
    const port = await freePort();
    const server = tsx("openai-words.ts", block("openai-own-model"), port, true);
    children.push(server.child);
    const deadline = Date.now() + 120_000;
    while (!(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false))) {
      if (server.child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start: ${server.log()}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    const client = await tsx("openai-words-client.ts", block("calls openai-own-model"), port, false).done;
    expect(client.stderr).toBe("");
    expect(client.code).toBe(0);
    const [line, streamed] = client.stdout.split("\n");
    expect(line).toBe('You said: hello there  {"prompt_tokens":2,"completion_tokens":5,"total_tokens":7}');
    expect(streamed).toBe("You said: hello there ");
    expect(docs).toContain('`{"prompt_tokens":2,"completion_tokens":5,"total_tokens":7}`');
  }, 300_000);

  /** A value of each refused field that is not its neutral value. */
  const SAMPLES: Record<string, unknown> = {
    logprobs: true, top_logprobs: 3, logit_bias: { "5": 1 }, presence_penalty: 0.5, frequency_penalty: 0.5, functions: [{ name: "f" }],
    function_call: { name: "f" }, audio: { voice: "alloy", format: "wav" }, modalities: ["text", "audio"], prediction: { type: "content", content: "x" },
    web_search_options: {}, reasoning_effort: "high", verbosity: "low", suffix: "end", best_of: 3,
  };
  const completionSample = (field: string) => (field === "logprobs" ? 2 : SAMPLES[field]);

  it("every refused field of the table is a 400 naming it, and reaches decodeRequest when declared", () => {
    const rows = docs.split("\n").filter((l) => l.startsWith("| `"));
    const chatTable = docs.slice(docs.indexOf("### `POST /v1/chat/completions`"), docs.indexOf("### `POST /v1/completions`"));
    const completionTable = docs.slice(docs.indexOf("### `POST /v1/completions`"));
    expect(rows.length).toBeGreaterThan(30);
    const cases: [string, string, Record<string, unknown>, typeof parseChatRequest | typeof parseCompletionRequest, unknown][] = [
      ...Object.keys(UNSUPPORTED_CHAT).map((f) => [f, chatTable, { messages: [{ role: "user", content: "x" }] }, parseChatRequest, SAMPLES[f]] as const),
      ...Object.keys(UNSUPPORTED_COMPLETION).map((f) => [f, completionTable, { prompt: "x" }, parseCompletionRequest, completionSample(f)] as const),
    ] as never;
    for (const [field, table, base, parse, value] of cases) {
      const row = table.split("\n").find((l) => l.startsWith("|") && l.split("|")[1].includes(`\`${field}\``));
      expect(row, `a row for ${field}`).toBeDefined();
      expect(row!.split("|")[3], field).toContain("`request.extra` if declared");
      const refused = (() => {
        try {
          parse({ ...base, [field]: value });
          return null;
        } catch (error) {
          return error;
        }
      })();
      expect(refused, field).toBeInstanceOf(InvalidRequestError);
      expect((refused as InvalidRequestError).param, field).toBe(field);
      expect(parse({ ...base, [field]: value }, new Set([field])).extra, field).toEqual({ [field]: value });
    }
  });

  it("every row names a test that exists (`file › test name`)", () => {
    const rows = docs.split("\n").filter((l) => l.startsWith("| `"));
    for (const row of rows) {
      const proof = row.split("|")[4].trim();
      const [file, name] = proof.split(" › ");
      const source = readFileSync(path.join("test", `${file}.test.ts`), "utf8");
      expect(source, proof).toContain(JSON.stringify(name).slice(1, -1));
    }
  });

  it("fields that do not change the answer are accepted", () => {
    const ignored = { user: "u", metadata: { a: "b" }, store: false, service_tier: "auto", prompt_cache_key: "k", safety_identifier: "s" };
    for (const field of Object.keys(ignored)) expect(docs).toContain(`\`${field}\``);
    expect(parseChatRequest({ messages: [{ role: "user", content: "x" }], ...ignored }).extra).toBeUndefined();
    expect(parseCompletionRequest({ prompt: "x", user: "u" }).extra).toBeUndefined();
  });
});
