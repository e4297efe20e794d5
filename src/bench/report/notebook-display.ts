import { createRequire } from "node:module";
import { escapeHtml, type Figure } from "./figures/plotly.js";
import { errorBars, formatSpread, type RepeatedLevel, type Spread } from "./spread.js";

/**
 * What the tutorial notebooks show a learner, kept out of their cells: short HTML tables (at most six columns; the
 * full data goes to the notebook's JSON), the few /info fields the text discusses, charts of repeated measurements
 * with their min–max range, and the `This run:` lines that state a conclusion from the run's own numbers.
 */

const MAX_COLUMNS = 6;
/** A number, a median with its range, a percentage, a ratio, or nothing: what a right-aligned column holds. */
const NUMERIC = /^(-?[\d.,]+( \(-?[\d.,]+–-?[\d.,]+\))?( %)?|×.*|—|n\/a|)$/;

/** An HTML table of at most six columns (a wider one wraps on a laptop screen: put the rest in the JSON). */
export function tableHtml(headers: string[], rows: (string | number)[][], caption?: string): string {
  if (headers.length > MAX_COLUMNS) throw new RangeError(`a notebook table has at most ${MAX_COLUMNS} columns, got ${headers.length}`);
  // Numbers align right, words (a configuration's name) left.
  const numeric = headers.map((_, i) => rows.every((r) => NUMERIC.test(String(r[i] ?? ""))));
  const style = (i: number) => `padding:2px 10px;text-align:${numeric[i] ? "right" : "left"};border-bottom:1px solid #ddd`;
  const head = headers.map((h, i) => `<th style="${style(i)}">${escapeHtml(h)}</th>`).join("");
  const body = rows.map((r) => `<tr>${r.map((c, i) => `<td style="${style(i)}">${escapeHtml(String(c))}</td>`).join("")}</tr>`).join("");
  const title = caption ? `<caption style="text-align:left;color:#555">${escapeHtml(caption)}</caption>` : "";
  return `<table style="border-collapse:collapse;font-size:13px">${title}<tr>${head}</tr>${body}</table>`;
}

/** Show an HTML table in the notebook. */
export function displayTable(headers: string[], rows: (string | number)[][], caption?: string): void {
  loadTslab().display.html(tableHtml(headers, rows, caption));
}

/** Repeated levels as the five columns a learner reads: clients, req/s, p50, p95 (median and min–max), server CPU. */
export function displayLevels(levels: RepeatedLevel[], caption?: string): void {
  const runs = levels[0] ? levels[0].requestsPerSecond.runs.length : 0;
  displayTable(
    ["clients", "req/s", "p50 ms", "p95 ms", "server CPU %", "errors"],
    levels.map((l) => [l.concurrency, formatSpread(l.requestsPerSecond), formatSpread(l.p50), formatSpread(l.p95), formatSpread(l.serverCpu, 0), l.errors]),
    caption ?? `median (min–max) of ${runs} runs per level; server CPU in percent of one core`,
  );
}

/** Only the named fields of an /info object, one per line: the ones the text around it discusses. */
export function infoFields(info: Record<string, unknown>, fields: string[]): string {
  return fields.map((f) => `${f}: ${JSON.stringify(info[f] ?? null)}`).join("\n");
}

/**
 * Print a run's conclusions, each line starting "This run:" (a test checks them against the saved JSON), and return
 * them for the notebook to save.
 */
export function thisRun(lines: string[]): string[] {
  const prefixed = lines.map((line) => `This run: ${line}`);
  console.log(prefixed.join("\n"));
  return prefixed;
}

/** One line per series of a repeated metric against concurrency, with min–max error bars. */
export function spreadVsConcurrency(
  series: { name: string; levels: RepeatedLevel[] }[],
  metric: "requestsPerSecond" | "p50" | "p95",
  title: string,
): Figure {
  const yTitle = metric === "requestsPerSecond" ? "requests / s" : `${metric} latency (ms)`;
  const ticks = [...new Set(series.flatMap((s) => s.levels.map((l) => l.concurrency)))].sort((a, b) => a - b);
  return {
    data: series.map((s) => ({
      type: "scatter",
      mode: "lines+markers",
      name: s.name,
      x: s.levels.map((l) => l.concurrency),
      y: s.levels.map((l) => l[metric].median),
      error_y: errorBars(s.levels.map((l) => l[metric])),
    })),
    layout: {
      title: { text: `${title}<br><sub>median of the runs; bars: min–max</sub>` },
      xaxis: { title: { text: "concurrent clients" }, type: "log", tickvals: ticks },
      yaxis: { title: { text: yTitle }, rangemode: "tozero" },
      legend: { orientation: "h", y: -0.25 },
      margin: { l: 70, r: 30, t: 70, b: 60 },
      font: { family: "system-ui, sans-serif", size: 13 },
    },
  };
}

/** Bars with min–max error bars, e.g. requests/s per configuration. */
export function spreadBars(bars: { label: string; value: Spread }[], title: string, yTitle: string): Figure {
  return {
    data: [
      {
        type: "bar",
        x: bars.map((b) => b.label),
        y: bars.map((b) => b.value.median),
        error_y: errorBars(bars.map((b) => b.value)),
        marker: { color: "#636efa" },
      },
    ],
    layout: {
      title: { text: `${title}<br><sub>median of the runs; bars: min–max</sub>` },
      yaxis: { title: { text: yTitle }, rangemode: "tozero" },
      margin: { l: 70, r: 30, t: 70, b: 80 },
      font: { family: "system-ui, sans-serif", size: 13 },
    },
  };
}

/**
 * Each batch-size bucket's share of the IMAGES a level sent (not of the batches: one client's many single-image
 * batches would dwarf everything else). /metrics counts batches per bucket; images per bucket are estimated as
 * batches × the bucket's middle size, scaled so the level's total matches the histogram's exact `_sum`.
 */
export function batchShareFigure(levels: { concurrency: number; buckets: { le: string; count: number }[]; images: number }[]): Figure {
  // Buckets above the largest one any level used are empty for all of them: leave them off the axis.
  const used = levels.flatMap((l) => l.buckets.filter((b) => b.count > 0 && b.le !== "+Inf").map((b) => Number(b.le)));
  const largest = used.length ? Math.max(...used) : 1;
  const data = levels.map((level) => {
    const buckets = level.buckets.filter((b) => b.le !== "+Inf" && Number(b.le) <= largest);
    let lower = 0;
    const estimates = buckets.map((b) => {
      const upper = Number(b.le);
      const mid = (lower + 1 + upper) / 2;
      lower = upper;
      return b.count * mid;
    });
    const total = estimates.reduce((a, b) => a + b, 0);
    const scale = total > 0 && level.images > 0 ? level.images / total : 1;
    let below = 0;
    const labels = buckets.map((b) => {
      const label = below + 1 === Number(b.le) ? b.le : `${below + 1}–${b.le}`;
      below = Number(b.le);
      return label;
    });
    return {
      type: "bar",
      name: `${level.concurrency} client${level.concurrency > 1 ? "s" : ""}`,
      x: labels,
      y: estimates.map((e) => (total > 0 ? (100 * e * scale) / Math.max(1, level.images) : 0)),
    };
  });
  return {
    data,
    layout: {
      title: { text: "Where the images went: share of each level's images by batch size" },
      barmode: "group",
      xaxis: { title: { text: "batch size (bucket)" }, type: "category" },
      yaxis: { title: { text: "% of the level's images" }, range: [0, 100] },
      legend: { orientation: "h", y: -0.25 },
      font: { family: "system-ui, sans-serif", size: 13 },
    },
  };
}

/** The exact number of images in batches between two /metrics readings: the batch-size histogram's `_sum`. */
export function batchSizeSum(metricsText: string, name = "batchwise_batch_size"): number {
  let sum = 0;
  for (const line of metricsText.split("\n")) {
    if (line.startsWith(`${name}_sum`)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

function loadTslab(): { display: { html(s: string): void } } {
  try {
    return createRequire(import.meta.url)("tslab");
  } catch {
    throw new Error("this helper needs the tslab kernel (run it inside a tslab notebook)");
  }
}

/**
 * The end of a measuring notebook: print its `This run:` lines and save them inside `data` to `file`, so the test
 * can hold the printed conclusions against the measurements beside them. Returns nothing (a notebook displays a
 * last expression's value).
 */
export function saveWithSummary(save: (file: string, data: unknown) => string, file: string, data: Record<string, unknown>, lines: string[]): void {
  data.thisRun = thisRun(lines);
  save(file, data);
}
