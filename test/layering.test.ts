import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// The house rules of src/, bottom to top:
//   api/                                  the contract (ModelAPI, Upload, error catalogue, Spec): imports nothing else of src/
//   server/  runtime/                     the serving core: imports api/ and each other, never what is served or the toolkit
//   chat/  classifier/  openai/ …         what is served, one folder per published entry point
//   bench/  plot/                         the toolkit
//   cli/  cli.ts                          the command line
// and no two modules import each other, directly or around a loop.

const src = path.resolve("src");
const files = (function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : []));
})(src);

/** Relative imports of a module (static, dynamic and type-only alike), as absolute .ts paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1]);
  return specifiers.map((s) => path.resolve(path.dirname(file), s).replace(/\.js$/, ".ts"));
}
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const rel = (f: string) => path.relative(src, f);

describe("layers", () => {
  const offending = (from: RegExp, to: RegExp) =>
    [...graph].flatMap(([file, deps]) => (from.test(rel(file)) ? deps.filter((d) => to.test(rel(d))).map((d) => `${rel(file)} → ${rel(d)}`) : []));

  it("the contract (src/api/) imports nothing of the project outside src/api/", () => {
    expect(files.some((f) => /^api\//.test(rel(f)))).toBe(true);
    expect(offending(/^api\//, /^(?!api\/)/)).toEqual([]);
  });

  it("the serving core (server/, runtime/) imports no entry-point folder, toolkit or CLI", () => {
    expect(offending(/^(server|runtime)\//, /^(chat|classifier|openai|embeddings|bench|plot|cli)(\/|\.ts$)/)).toEqual([]);
  });

  it("nothing outside the toolkit and the CLI imports the toolkit or the CLI", () => {
    const toolkit = /^(bench|plot|cli)(\/|\.ts$)/;
    expect(offending(/^(?!(bench|plot|cli)(\/|\.ts$))/, toolkit)).toEqual([]);
  });

  it("what was split into entry folders stays split: no src/apps, src/specs or src/api.ts", () => {
    expect(files.map(rel).filter((f) => /^(apps|specs)\//.test(f) || f === "api.ts")).toEqual([]);
  });

  it("every relative import points at a file that exists", () => {
    const missing = [...graph].flatMap(([file, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${rel(file)} → ${rel(d)}`));
    expect(missing).toEqual([]);
  });

  it("no import cycles", () => {
    const cycles: string[] = [];
    const state = new Map<string, "visiting" | "done">();
    const stack: string[] = [];
    const visit = (file: string) => {
      state.set(file, "visiting");
      stack.push(file);
      for (const dep of graph.get(file) ?? []) {
        if (state.get(dep) === "visiting") cycles.push([...stack.slice(stack.indexOf(dep)), dep].map(rel).join(" → "));
        else if (!state.has(dep) && graph.has(dep)) visit(dep);
      }
      stack.pop();
      state.set(file, "done");
    };
    for (const file of files) if (!state.has(file)) visit(file);
    expect(cycles).toEqual([]);
  });
});
