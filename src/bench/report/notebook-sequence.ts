import { displayFigure, type Figure } from "./figures/plotly.js";
import { displayTable } from "./notebook-display.js";
import { errorBars, formatSpread, type Spread } from "./spread.js";

/**
 * The blog's sequence, as this machine ran it: each measuring notebook (02 → 05) saves the rows it adds under
 * `sequence` in its JSON, 02 also the in-process ceiling (the model alone at batch 64), and this helper reads them back
 * into one running table and chart. A notebook that has not run yet is simply missing from it.
 */

/** One step of the sequence: the served figures at the top concurrency of that notebook. */
export interface SequenceRow {
  /** The notebook, e.g. "02". */
  step: string;
  /** What changed, e.g. "batching 64 / 10 ms". */
  name: string;
  concurrency: number;
  requestsPerSecond: Spread;
  p50: Spread;
}

/** The model alone in this process: no HTTP, no decoding. */
export interface SequenceCeiling {
  name: string;
  imagesPerSecond: Spread;
}

export const SEQUENCE_FILES = ["02-measure.json", "03-batching.json", "04-workers.json", "05-precision.json"];

/** Rows and ceilings saved so far by 02–05, in order (`read` is the notebook environment's `readPrevious`). */
export function readSequence(read: (file: string) => any): {
  rows: SequenceRow[];
  ceilings: SequenceCeiling[];
  missing: string[];
  /** The 1-minute load average each notebook saved with its numbers (absent from older files). */
  loads: { file: string; load: number; cores: number }[];
} {
  const rows: SequenceRow[] = [];
  const ceilings: SequenceCeiling[] = [];
  const missing: string[] = [];
  const loads: { file: string; load: number; cores: number }[] = [];
  for (const file of SEQUENCE_FILES) {
    const saved = read(file);
    if (!saved?.sequence) {
      missing.push(file);
      continue;
    }
    rows.push(...(saved.sequence.rows ?? []));
    ceilings.push(...(saved.sequence.ceilings ?? []));
    if (typeof saved.loadAverage1m === "number") loads.push({ file, load: saved.loadAverage1m, cores: saved.cores ?? 1 });
  }
  return { rows, ceilings, missing, loads };
}

/**
 * One line on how busy the machine was at each step, with a warning when other work competed for the cores and
 * another when the steps ran under different loads (then a difference between steps may be the machine's).
 */
export function loadNote(loads: { file: string; load: number; cores: number }[]): string | null {
  if (!loads.length) return null;
  const cores = loads[0].cores;
  const lines = [`1-minute load average when each notebook saved its numbers: ${loads.map((l) => `${l.file.slice(0, 2)} ${l.load.toFixed(1)}`).join(" · ")} (${cores} cores)`];
  const values = loads.map((l) => l.load);
  const [low, high] = [Math.min(...values), Math.max(...values)];
  if (high > cores) lines.push("⚠ the machine was busy: other work competed for the cores during these steps");
  // A change of half the cores, or of a third of the highest load, is more than a busy machine's usual drift.
  if (high - low > Math.max(cores / 2, 0.3 * high)) lines.push("⚠ the steps ran under different loads: a difference between them may be the machine, not the step");
  return lines.join("\n");
}

/**
 * The ceiling a row is measured against: the model alone in the row's own precision when one was saved (05's int8
 * rows against the int8 model), else the first one (02's fp32 model).
 */
function ceilingOf(row: SequenceRow, ceilings: SequenceCeiling[]): SequenceCeiling | undefined {
  const precision = /\b(int8|fp16|bf16|fp32)\b/.exec(row.name)?.[1];
  return (precision && ceilings.find((c) => c.name.includes(precision))) || ceilings[0];
}

/** The running table (≤ 6 columns) and a two-panel chart: req/s against the ceiling, and p50. */
export function displaySequence(read: (file: string) => any): void {
  const { rows, ceilings, missing, loads } = readSequence(read);
  if (missing.length) console.log(`not in the table yet (notebook not run): ${missing.join(", ")}`);
  if (!rows.length) return;
  const note = loadNote(loads);
  if (note) console.log(note);
  displayTable(
    ["notebook", "configuration", "clients", "req/s", "p50 ms", "% of ceiling"],
    [
      ...rows.map((r) => [
        r.step,
        r.name,
        r.concurrency,
        formatSpread(r.requestsPerSecond),
        formatSpread(r.p50),
        ceilingOf(r, ceilings) ? `${((100 * r.requestsPerSecond.median) / ceilingOf(r, ceilings)!.imagesPerSecond.median).toFixed(0)} %` : "n/a",
      ]),
      ...ceilings.map((c) => ["ceiling", c.name, "—", formatSpread(c.imagesPerSecond), "—", "—"]),
    ],
    "median (min–max) of each step's runs; a ceiling is the model alone in-process at batch 64 (images/s), and each row's % is of the ceiling in its own precision (fp32 unless named)",
  );
  displayFigure(sequenceFigure(rows, ceilings), { height: 440 });
}

/** Left: requests/s per step with the ceilings as dotted lines; right: p50 per step. Two panels, no shared axis. */
export function sequenceFigure(rows: SequenceRow[], ceilings: SequenceCeiling[]): Figure {
  const labels = rows.map((r) => `${r.step}: ${r.name}`);
  const data: Record<string, unknown>[] = [
    { type: "bar", name: "req/s", x: labels, y: rows.map((r) => r.requestsPerSecond.median), error_y: errorBars(rows.map((r) => r.requestsPerSecond)), xaxis: "x", yaxis: "y", marker: { color: "#636efa" }, showlegend: false },
    { type: "bar", name: "p50 ms", x: labels, y: rows.map((r) => r.p50.median), error_y: errorBars(rows.map((r) => r.p50)), xaxis: "x2", yaxis: "y2", marker: { color: "#ef553b" }, showlegend: false },
  ];
  // Each ceiling as a line across the whole left panel, labelled at its right end.
  const top = Math.max(...rows.map((r) => r.requestsPerSecond.max), ...ceilings.map((c) => c.imagesPerSecond.median));
  const shapes = ceilings.map((c, i) => ({
    type: "line", xref: "x domain", x0: 0, x1: 1, yref: "y", y0: c.imagesPerSecond.median, y1: c.imagesPerSecond.median,
    line: { dash: i ? "dash" : "dot", color: i ? "#00a37a" : "#444", width: 2 },
  }));
  const annotations = ceilings.map((c) => ({
    xref: "x domain", x: 1, xanchor: "right", yref: "y", y: c.imagesPerSecond.median, yanchor: "bottom", showarrow: false,
    text: `ceiling: ${c.name} (${c.imagesPerSecond.median.toFixed(0)})`, font: { size: 11 },
  }));
  return {
    data,
    layout: {
      title: { text: "The sequence on this machine: requests/s (left) and p50 latency (right)<br><sub>median; bars: min–max</sub>" },
      grid: { rows: 1, columns: 2, pattern: "independent" },
      xaxis: { domain: [0, 0.47], tickangle: -30, automargin: true },
      yaxis: { title: { text: "requests / s (ceiling: images / s)" }, range: [0, top * 1.15] },
      xaxis2: { domain: [0.55, 1], tickangle: -30, automargin: true },
      yaxis2: { title: { text: "p50 latency (ms)" }, rangemode: "tozero", anchor: "x2" },
      shapes,
      annotations,
      margin: { l: 70, r: 30, t: 70, b: 40 },
      font: { family: "system-ui, sans-serif", size: 12 },
    },
  };
}
