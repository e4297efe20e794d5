import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// Checks what `npm run notebooks` produced: every tutorial notebook was executed from its current source, shows at
// least one plotly chart, loads plotly.js once, and has no error output. Executing the notebooks takes minutes, so
// this test only reads notebooks/out/; CI runs it right after `npm run notebooks`.
const notebooksDir = path.resolve("notebooks");
const outDir = path.join(notebooksDir, "out");
const sources = existsSync(notebooksDir)
  ? readdirSync(notebooksDir).filter((name) => /^\d.*\.ipynb$/.test(name)).sort()
  : [];

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  ename?: string;
  evalue?: string;
}
interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: Output[];
}

const joined = (text: string | string[] | undefined) => (Array.isArray(text) ? text.join("") : (text ?? ""));
const readCells = (file: string): Cell[] => JSON.parse(readFileSync(file, "utf8")).cells;
const htmlOutputs = (cells: Cell[]) =>
  cells.flatMap((cell) => cell.outputs ?? []).map((output) => joined(output.data?.["text/html"]));

/** The package's public entry points (package.json exports): notebooks import as users would, nothing deeper. */
const ENTRY_POINTS = ["batchwise", "batchwise/bench", "batchwise/classifier", "batchwise/chat", "batchwise/openai"];

const codeOf = (file: string) =>
  readCells(file)
    .filter((c) => c.cell_type === "code")
    .map((c) => joined(c.source))
    .join("\n");

describe("notebook sources", () => {
  for (const name of sources) {
    const code = codeOf(path.join(notebooksDir, name));

    it(`${name} imports batchwise only through its public entry points`, () => {
      const specifiers = [...code.matchAll(/from\s+"(batchwise[^"]*)"/g)].map((m) => m[1]);
      expect(specifiers.length).toBeGreaterThan(0);
      expect(specifiers.filter((s) => !ENTRY_POINTS.includes(s))).toEqual([]);
    });

    it(`${name} uses the toolkit's helpers instead of its own copies`, () => {
      // These were copied into every notebook once; they live in batchwise/bench now.
      const copies = [...code.matchAll(/(?:const|function)\s+(readPrevious|busyWarning|getJson|getText|histogram)\b/g)].map((m) => m[1]);
      expect(copies).toEqual([]);
      expect(code).not.toMatch(/path\.resolve\("\.\.", "\.\.", "shared"\)/);
    });
  }
});

/** The figure specs a notebook's HTML outputs draw (the JSON displayFigure embeds), parsed back. */
const figureSpecs = (cells: Cell[]) =>
  htmlOutputs(cells).flatMap((html) =>
    [...html.matchAll(/var spec=(.*?),tries=0;/g)].map((m) => JSON.parse(m[1]) as { layout: Record<string, any> }),
  );

describe.skipIf(!existsSync(outDir))("executed notebooks in notebooks/out (run `npm run notebooks` first)", () => {
  it("has a source notebook to check", () => {
    expect(sources.length).toBeGreaterThan(0);
  });

  for (const name of sources) {
    describe(name, () => {
      const executed = path.join(outDir, name);

      it("was executed from the current source", () => {
        expect(existsSync(executed), `${executed} is missing: run npm run notebooks`).toBe(true);
        const code = (cells: Cell[]) => cells.filter((c) => c.cell_type === "code").map((c) => joined(c.source));
        expect(code(readCells(executed)), "the source changed since it ran: run npm run notebooks").toEqual(
          code(readCells(path.join(notebooksDir, name))),
        );
      });

      it("shows at least one plotly chart and loads plotly.js exactly once", () => {
        const html = htmlOutputs(readCells(executed));
        expect(html.filter((h) => /Plotly\.(newPlot|react)\(/.test(h)).length).toBeGreaterThan(0);
        // The library bundle starts with its licence header; inlining it per chart would add ~4.8 MB each time.
        expect(html.filter((h) => h.includes("* plotly.js v")).length).toBe(1);
      });

      it("labels every log axis at chosen ticks (1-2-5 or the measured levels), not every minor step", () => {
        for (const spec of figureSpecs(readCells(executed))) {
          for (const [key, axis] of Object.entries(spec.layout)) {
            if (!/^[xy]axis\d*$/.test(key) || axis?.type !== "log") continue;
            expect(axis.tickvals ?? axis.dtick, `${spec.layout.title?.text}: ${key} is a log axis without tickvals/dtick`).toBeDefined();
          }
        }
      });

      it("has an HTML export whose code and text outputs wrap instead of running off the page", () => {
        const html = path.join(outDir, name.replace(/\.ipynb$/, ".html"));
        expect(existsSync(html), `${html} is missing: run npm run notebooks`).toBe(true);
        expect(readFileSync(html, "utf8")).toMatch(/white-space:\s*pre-wrap\s*!important/);
      });

      it("has no error output and no type errors", () => {
        const problems = readCells(executed)
          .flatMap((cell) => cell.outputs ?? [])
          .filter(
            (o) =>
              o.output_type === "error" ||
              // tslab reports compile errors as stderr text such as "3:7 - Type 'string' is not assignable…".
              (o.output_type === "stream" && o.name === "stderr" && /^\d+:\d+ - |Error\b/m.test(joined(o.text))),
          )
          .map((o) => (o.output_type === "error" ? `${o.ename}: ${o.evalue}` : joined(o.text)));
        expect(problems).toEqual([]);
      });
    });
  }
});
