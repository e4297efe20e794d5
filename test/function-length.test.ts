import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

// House rule: no function over 80 lines in src/. A long function is split into named steps, so a reader sees the
// sequence at a glance and each step can be read (and tested) alone. Counted with the TypeScript compiler's own
// parse: every function, method, arrow and accessor with a body, from its first line to its closing brace.

const LIMIT = 80;

/**
 * Functions still longer, each with where it is and why it waits. An entry that is no longer over the limit fails
 * the test too, so the list only shrinks.
 */
const WAITING: Record<string, string> = {};

interface FunctionLength {
  where: string;
  name: string;
  lines: number;
}

function functionLengths(file: string, text: string): FunctionLength[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: FunctionLength[] = [];
  const line = (position: number) => source.getLineAndCharacterOfPosition(position).line;
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const start = line(node.getStart(source));
      found.push({ where: `${file}:${start + 1}`, name: nameOf(node, source), lines: line(node.end) - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function nameOf(node: ts.SignatureDeclaration, source: ts.SourceFile): string {
  if (node.name) return node.name.getText(source);
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) return parent.name.getText(source);
  return "(anonymous)";
}

const walk = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : []));
const all = walk("src").flatMap((file) => functionLengths(file.split(path.sep).join("/"), readFileSync(file, "utf8")));

describe("function length", () => {
  it(`no function in src/ is over ${LIMIT} lines`, () => {
    const long = all.filter((f) => f.lines > LIMIT && !WAITING[f.name]).map((f) => `${f.where} ${f.name}: ${f.lines} lines`);
    expect(long).toEqual([]);
  });

  it("every function on the waiting list is still over the limit (remove it once split)", () => {
    for (const name of Object.keys(WAITING)) {
      const found = all.filter((f) => f.name === name);
      expect(found.length, `${name} not found in src/`).toBeGreaterThan(0);
      expect(Math.max(...found.map((f) => f.lines)), `${name} is now short: remove it from WAITING`).toBeGreaterThan(LIMIT);
    }
  });

  it("counts every kind of function from its first line to its closing brace", () => {
    const body = (n: number) => Array.from({ length: n - 2 }, (_, i) => `  x += ${i};`).join("\n");
    const text = [
      `export function declared() {\n${body(81)}\n}`,
      `const arrow = () => {\n${body(80)}\n};`,
      `class C {\n  method() {\n${body(5)}\n  }\n  get value() {\n    return 1;\n  }\n}`,
      `const o = { property: function () {\n${body(3)}\n} };`,
    ].join("\n");
    const lengths = Object.fromEntries(functionLengths("x.ts", text).map((f) => [f.name, f.lines]));
    expect(lengths).toEqual({ declared: 81, arrow: 80, method: 5, value: 3, property: 3 });
  });
});
