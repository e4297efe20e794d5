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

// ---------------------------------------------------------------------------------------------------------------
// The `This run:` summaries: each measuring notebook ends with conclusions printed from its own measurements. Check
// that they exist, that the JSON saved them, and that their figures are the saved measurements — recomputed here
// from the measurement fields (not from the saved summary text), so a summary that drifts from its numbers fails.

const SUMMARIES: Record<string, string> = {
  "02-measure.ipynb": "02-measure.json",
  "03-dynamic-batching.ipynb": "03-batching.json",
  "04-workers.ipynb": "04-workers.json",
  "05-precision.ipynb": "05-precision.json",
  "06-llm-openai.ipynb": "06-llm.json",
};

interface Spread {
  median: number;
  min: number;
  max: number;
}

/** The notebooks' "within noise" rule, restated: the two min–max ranges overlap. */
function change(before: Spread, after: Spread): string {
  const noise = after.min <= before.max && before.min <= after.max;
  return `×${(after.median / before.median).toFixed(2)} (within noise: ${noise ? "yes" : "no"})`;
}

/** Lines of stream output starting "This run:", from the last code cell that printed any. */
function printedSummary(cells: Cell[]): string[] {
  const lines = cells
    .filter((c) => c.cell_type === "code")
    .flatMap((c) => (c.outputs ?? []).filter((o) => o.output_type === "stream").map((o) => joined(o.text)))
    .join("\n")
    .split("\n");
  return lines.filter((l) => l.startsWith("This run: "));
}

const byConcurrency = (levels: any[], c: number) => levels.find((l) => l.concurrency === c);

/** What each summary must say, rebuilt from that notebook's saved measurements (and the earlier notebooks' files). */
const EXPECTED: Record<string, (saved: any, read: (f: string) => any) => string[]> = {
  "02-measure.json": (s) => {
    const b1 = s.baseline.find((r: any) => r.batchSize === 1);
    const b64 = s.baseline.find((r: any) => r.batchSize === 64);
    const first = s.served[0];
    const last = s.served[s.served.length - 1];
    return [
      `${b1.imagesPerSecond.toFixed(1)} images/s at batch 1 to ${b64.imagesPerSecond.toFixed(1)} at batch 64 (×${(b64.imagesPerSecond / b1.imagesPerSecond).toFixed(2)})`,
      `c=${first.concurrency} ${first.requestsPerSecond.median.toFixed(1)} req/s → c=${last.concurrency} ${last.requestsPerSecond.median.toFixed(1)} req/s, ${change(first.requestsPerSecond, last.requestsPerSecond)}`,
      `decoding one photo took ${s.decodeMedianMs.toFixed(1)} ms and a batch-1 inference ${b1.medianMs.toFixed(1)} ms`,
    ];
  },
  "03-batching.json": (s, read) => {
    const off = read("02-measure.json").served;
    const top = s.served[s.served.length - 1];
    const t0 = s.batchTimeouts[0];
    const t50 = s.batchTimeouts[s.batchTimeouts.length - 1];
    return [
      `a lone client's req/s ${byConcurrency(off, 1).requestsPerSecond.median.toFixed(1)} → ${s.served[0].requestsPerSecond.median.toFixed(1)}, ${change(byConcurrency(off, 1).requestsPerSecond, s.served[0].requestsPerSecond)}`,
      `req/s went ${byConcurrency(off, top.concurrency).requestsPerSecond.median.toFixed(1)} → ${top.requestsPerSecond.median.toFixed(1)}, ${change(byConcurrency(off, top.concurrency).requestsPerSecond, top.requestsPerSecond)}`,
      `decoding took ${s.budget.decodeCoreMs.toFixed(1)} core-ms and inference at batch 64 ${s.budget.inferenceCoreMs.toFixed(1)} core-ms`,
      `req/s ${t0.requestsPerSecond.median.toFixed(1)} → ${t50.requestsPerSecond.median.toFixed(1)}, ${change(t0.requestsPerSecond, t50.requestsPerSecond)}; p95 ${t0.p95.median.toFixed(1)} → ${t50.p95.median.toFixed(1)} ms, ${change(t0.p95, t50.p95)}`,
    ];
  },
  "04-workers.json": (s) => {
    const top = s.best.concurrency;
    const one = byConcurrency(s.byWorkers[0].levels, top).requestsPerSecond;
    return s.byWorkers.map((w: any, i: number) => {
      const r = byConcurrency(w.levels, top).requestsPerSecond;
      return `: ${r.median.toFixed(1)} req/s at c=${top} (${r.min.toFixed(1)}–${r.max.toFixed(1)})${i === 0 ? "" : `, ${change(one, r)} vs 1 worker`}`;
    });
  },
  "05-precision.json": (s) => {
    // The model alone: the median run's images/s, and the slowest and fastest timed runs as its range.
    const raw64 = (p: string): Spread => {
      const r = s.speed[p].find((x: any) => x.batchSize === 64);
      return { median: r.imagesPerSecond, min: (64 * 1000) / r.maxMs, max: (64 * 1000) / r.minMs };
    };
    const at64 = (p: string) => raw64(p).median;
    const served = (p: string) => s.served.find((x: any) => x.precision === p).requestsPerSecond;
    return [
      `auto chose ${s.auto.precision} on a CPU ${s.auto.cpuHasVnni ? "with" : "without"} VNNI: ${s.auto.reason}`,
      `fp32 ${at64("fp32").toFixed(1)} → int8 ${at64("int8").toFixed(1)} images/s, ${change(raw64("fp32"), raw64("int8"))}`,
      `fp32 ${served("fp32").median.toFixed(1)} → int8 ${served("int8").median.toFixed(1)} req/s, ${change(served("fp32"), served("int8"))}`,
      `on ${s.agreement.int8.sameTop1}/${s.agreement.int8.photos} photos, largest probability difference ${s.agreement.int8.maxAbsDiff.toFixed(4)}`,
    ];
  },
  "06-llm.json": (s) => {
    const [alone, batched] = s.batching.results;
    const top = alone.levels[alone.levels.length - 1];
    const topBatched = byConcurrency(batched.levels, top.concurrency);
    return [
      `streamed ${s.demo.completionTokens} tokens in ${s.demo.chunks} chunks; TTFT ${s.demo.ttftMs.toFixed(1)} ms at the client, ${s.demo.serverTtftMs.toFixed(1)} ms`,
      `${alone.levels[0].totalTokensPerSecond.median.toFixed(0)} → ${top.totalTokensPerSecond.median.toFixed(0)}, ${change(alone.levels[0].totalTokensPerSecond, top.totalTokensPerSecond)}`,
      `batching changed total tokens/s ${top.totalTokensPerSecond.median.toFixed(0)} → ${topBatched.totalTokensPerSecond.median.toFixed(0)}, ${change(top.totalTokensPerSecond, topBatched.totalTokensPerSecond)}`,
    ];
  },
};

describe.skipIf(!existsSync(outDir))("This run: summaries in notebooks/out", () => {
  const read = (file: string) => JSON.parse(readFileSync(path.join(outDir, file), "utf8"));
  for (const [notebook, file] of Object.entries(SUMMARIES)) {
    it(`${notebook} ends with a This run: summary whose figures are the measurements in ${file}`, () => {
      const executed = path.join(outDir, notebook);
      expect(existsSync(executed), `${executed} is missing: run npm run notebooks`).toBe(true);
      const cells = readCells(executed);
      const printed = printedSummary(cells);
      expect(printed.length, "no line starting 'This run:'").toBeGreaterThan(0);
      // The summary is the notebook's last word: no code cell after the one that printed it prints anything.
      const code = cells.filter((c) => c.cell_type === "code");
      const last = code.filter((c) => (c.outputs ?? []).length > 0).pop()!;
      expect(joined(last.outputs!.filter((o) => o.output_type === "stream").map((o) => joined(o.text)))).toContain("This run: ");
      const saved = read(file);
      expect(saved.thisRun, `${file} does not hold the summary it printed`).toEqual(printed);
      const text = printed.join("\n");
      for (const expected of EXPECTED[file](saved, read)) expect(text).toContain(expected);
    });
  }
});
