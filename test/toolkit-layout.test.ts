import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// The toolkit (src/bench, the batchwise/bench entry) in folders by job, each importing only below itself:
//   load/     load generation and sampling (HTTP clients, /proc and nvidia-smi readers, stats, the machine)
//   servers/  the servers a run starts in child processes (and what npm start serves by default)
//   report/   tables, targets, the HTML report and its figures — views of results (runs' result types only)
//   runs/     one benchmark per file, and the suite that strings them together
// with index.ts (the curated entry), cli.ts + flags.ts (the commands) and notebook.ts at the top.

const bench = path.resolve("src/bench");
const walk = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : []));
const files = walk(bench);
const folder = (file: string) => path.relative(bench, file).split(path.sep)[0].replace(/\.ts$/, "");

/** Relative imports of a file, with whether each is type-only. */
function importsOf(file: string): { target: string; typeOnly: boolean }[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(import\s+type\b[^"']*?from|export\s+type\b[^"']*?from|from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => ({
    target: path.resolve(path.dirname(file), m[2]).replace(/\.js$/, ".ts"),
    typeOnly: /^(import|export)\s+type\b/.test(m[1]),
  }));
}

describe("the toolkit's folders", () => {
  it("keep only the entry, the commands and the notebook helpers at the top", () => {
    const top = readdirSync(bench, { withFileTypes: true });
    expect(top.filter((e) => e.isDirectory()).map((e) => e.name).sort()).toEqual(["load", "report", "runs", "servers"]);
    expect(top.filter((e) => e.isFile()).map((e) => e.name).sort()).toEqual(["cli.ts", "flags.ts", "index.ts", "notebook.ts"]);
  });

  it("import only downward: load/ and servers/ nothing of runs/ or report/, report/ only runs' types", () => {
    const top = new Set(["cli", "flags", "index", "notebook"]);
    const offending = files.flatMap((file) =>
      importsOf(file)
        .filter(({ target, typeOnly }) => {
          if (!target.startsWith(bench)) return false;
          const from = folder(file);
          const to = folder(target);
          if (from === to) return false;
          if (from === "load" || from === "servers") return to === "runs" || to === "report" || top.has(to) || (from === "load" && to === "servers");
          if (from === "report") return (to === "runs" && !typeOnly) || top.has(to);
          if (from === "runs") return top.has(to);
          return false;
        })
        .map(({ target }) => `${path.relative(bench, file)} → ${path.relative(bench, target)}`),
    );
    expect(offending).toEqual([]);
  });
});
