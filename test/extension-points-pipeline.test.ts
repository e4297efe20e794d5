import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// Every block of docs/extension-points-pipeline.md marked `<!-- doc-test: NAME -->` runs as written (with tsx, the one
// change being that "batchwise" is this checkout's source), and prints what its `// →` comments say. Digits inside
// Server-Timing durations vary run to run: those are compared as numbers' shapes.

const doc = readFileSync("docs/extension-points-pipeline.md", "utf8");
const blocks = [...doc.matchAll(/<!-- doc-test: ([^\n]*?) -->\n```(\w*)\n([\s\S]*?)```/g)].map(([, role, lang, code]) => ({ role, lang, code }));
const workDir = path.resolve(".readme-test");
mkdirSync(workDir, { recursive: true });

function runBlock(name: string, code: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const file = path.join(workDir, `pipeline-${name}.ts`);
  writeFileSync(file, code.replace(/from "batchwise"/g, `from ${JSON.stringify(path.resolve("src/index.ts"))}`));
  return new Promise((resolve) => {
    const child = spawn(path.resolve("node_modules/.bin/tsx"), [file], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("close", (exit) => resolve({ code: exit, stdout, stderr }));
  });
}

/** The `// → …` lines of a block, as patterns: numbers after `dur=` match any number. */
function expected(code: string): RegExp[] {
  return [...code.matchAll(/^\s*\/\/ → (.*)$/gm)].map(([, line]) => {
    const escaped = line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/dur=[\d\\.]+/g, "dur=[\\d.]+");
    return new RegExp(`^${escaped}$`);
  });
}

describe("docs/extension-points-pipeline.md", () => {
  it("marks every TypeScript block", () => {
    const all = [...doc.matchAll(/```ts\n/g)].length;
    expect(blocks.filter((b) => b.lang === "ts")).toHaveLength(all);
    expect(blocks.map((b) => b.role).filter((r) => !r.startsWith("skip"))).toEqual(["deadline", "callbacks", "worker-callbacks", "metrics", "tracing"]);
  });

  for (const block of blocks.filter((b) => !b.role.startsWith("skip"))) {
    it(`the ${block.role} example prints what it says`, async () => {
      const result = await runBlock(block.role, block.code);
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      const lines = result.stdout.trim().split("\n");
      const patterns = expected(block.code);
      expect(lines).toHaveLength(patterns.length);
      lines.forEach((line, i) => expect(line).toMatch(patterns[i]));
    }, 120_000);
  }
});
