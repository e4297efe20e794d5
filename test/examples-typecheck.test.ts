import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// Every `@example` in the public modules (the entry points and the files they re-export from) compiles under
// `strict` as a user's file would: each block is a module of its own that imports what it uses from "batchwise"
// (the built package's declarations, through the package's own name), type-checked by the project's TypeScript.

const root = path.resolve(".");
const ENTRY_POINTS = ["src/index.ts", "src/openai/index.ts", "src/classifier/index.ts", "src/chat/index.ts", "src/bench/index.ts"];

/** The entry points and every module they re-export from (`export … from "./x.js"`). */
function publicModules(): string[] {
  const files = new Set<string>();
  for (const entry of ENTRY_POINTS.filter((e) => existsSync(e))) {
    files.add(entry);
    for (const match of readFileSync(entry, "utf8").matchAll(/export\s+(?:type\s+)?\{[^}]*\}\s+from\s+"(\.[^"]+)\.js"/g)) {
      files.add(path.relative(root, path.resolve(path.dirname(entry), `${match[1]}.ts`)));
    }
  }
  return [...files].filter((file) => existsSync(file)).sort();
}

interface Example {
  file: string;
  line: number;
  code: string;
}

function examples(): Example[] {
  const found: Example[] = [];
  for (const file of publicModules()) {
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(/@example\s*\n\s*\*\s*```ts\n([\s\S]*?)\n\s*\*\s*```/g)) {
      const code = match[1].split("\n").map((line) => line.replace(/^\s*\* ?/, "")).join("\n");
      found.push({ file, line: text.slice(0, match.index).split("\n").length, code });
    }
  }
  return found;
}

const dir = path.join(root, ".readme-test", `examples-${process.pid}`); // inside the package: "batchwise" resolves
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("@example blocks of the public types", () => {
  it("each compiles under strict, importing only from the package's entry points; a mistyped predict does not", () => {
    const all = examples();
    expect(all.length).toBeGreaterThanOrEqual(10); // the scan sees them (api.ts alone has three)
    mkdirSync(dir, { recursive: true });
    const names = all.map((example, i) => {
      const name = `example-${i}.ts`;
      // a module of its own (top-level await allowed), as a user's file is
      writeFileSync(path.join(dir, name), `${example.code}\nexport {};\n`);
      return name;
    });
    // and the types check a user's predict against the class's parameters: each marked line must be an error
    writeFileSync(
      path.join(dir, "mismatched.ts"),
      `import { ModelAPI } from "batchwise";
export class WrongOutput extends ModelAPI<{ x: number }, number, number, { y: number }> {
  // @ts-expect-error -- predict must return number[] (Out), not string[]
  predict(batch: number[]) { return batch.map((x) => String(x)); }
}
export class WrongInput extends ModelAPI<{ x: number }, number, number, { y: number }> {
  // @ts-expect-error -- predict takes number[] (In[]), not string[]
  predict(batch: string[]) { return batch.map((x) => x.length); }
}
export class WrongStream extends ModelAPI<{ x: number }, number, number, { y: number }> {
  // @ts-expect-error -- a streaming predict yields (number | undefined | END_OF_STREAM)[], not strings
  async *predict(batch: number[]) { yield batch.map(() => "token"); }
}
`,
    );
    names.push("mismatched.ts");
    writeFileSync(
      path.join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, rootDir: ".", skipLibCheck: true, types: ["node"], typeRoots: [path.join(root, "node_modules/@types")] },
        files: names,
      }),
    );
    const tsc = spawnSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", dir], { encoding: "utf8" });
    const errors = (tsc.stdout + tsc.stderr)
      .split("\n")
      .filter((line) => /error TS/.test(line))
      .map((line) => {
        const i = Number(/example-(\d+)\.ts/.exec(line)?.[1]);
        return Number.isNaN(i) || !all[i] ? line : `${all[i].file}:${all[i].line} ${line.replace(/^.*?\.ts/, "")}`;
      });
    expect(errors).toEqual([]);
  }, 120_000);

  it("no relative or internal import in an example (users import the package)", () => {
    for (const example of examples()) {
      for (const match of example.code.matchAll(/from\s+"([^"]+)"/g)) {
        expect(match[1], `${example.file}:${example.line}`).toMatch(/^(batchwise(\/(openai|classifier|chat|bench))?|node:[\w/]+|openai)$/);
      }
    }
  });
});
