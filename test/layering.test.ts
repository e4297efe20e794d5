import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// The house rules of src/: the serving core never imports the toolkit (benchmarks, plots) or the CLI, and no two
// modules import each other, directly or around a loop.

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
  it("the serving core (api, server, runtime, specs, apps and their entry points) imports nothing from the toolkit or the CLI", () => {
    const toolkit = /^(bench|plot|cli)(\/|\.ts$)/;
    const offending = [...graph].flatMap(([file, deps]) =>
      toolkit.test(rel(file)) ? [] : deps.filter((d) => toolkit.test(rel(d))).map((d) => `${rel(file)} → ${rel(d)}`),
    );
    expect(offending).toEqual([]);
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
