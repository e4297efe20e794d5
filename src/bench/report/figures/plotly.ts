import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

/**
 * Plotly figures for benchmark results, shared by the HTML report and the notebooks.
 *
 * Figure builders are pure functions returning plotly's JSON ({data, layout}); where a figure is shown is somebody
 * else's concern: `pageHtml` writes a self-contained page, `renderPng` (./png.ts) screenshots one with headless
 * Chromium, `displayFigure` shows one in a tslab notebook. plotly.js-dist-min is a browser bundle (`require()` throws
 * "self is not defined" in Node), so it is read as text and inlined, once per page or notebook kernel, never per
 * chart (it is ~4.8 MB).
 */

export interface Figure {
  data: Record<string, unknown>[];
  layout: Record<string, unknown>;
}

/** One named line: a benchmark configuration, e.g. "batching 64 + 2 workers". */
export interface Series<P> {
  name: string;
  points: P[];
}

const BASE_LAYOUT = {
  paper_bgcolor: "#fff",
  plot_bgcolor: "#fff",
  margin: { l: 70, r: 30, t: 60, b: 60 },
  legend: { orientation: "h", y: -0.2 },
  font: { family: "system-ui, sans-serif", size: 13 },
};

/** Images/s (or any rate) against batch size, one line per series; batch sizes 1/8/32/64 on a log axis. */
export function throughputVsBatchSize(
  series: Series<{ batchSize: number; imagesPerSecond: number }>[],
  title = "Model throughput vs batch size",
): Figure {
  return {
    data: series.map((s) => ({
      type: "scatter",
      mode: "lines+markers",
      name: s.name,
      x: s.points.map((p) => p.batchSize),
      y: s.points.map((p) => p.imagesPerSecond),
      hovertemplate: "batch %{x}: %{y:.0f} images/s<extra>%{fullData.name}</extra>",
    })),
    layout: {
      ...BASE_LAYOUT,
      title: { text: title },
      xaxis: { title: { text: "batch size" }, type: "log", tickvals: batchTicks(series) },
      yaxis: { title: { text: "images / s" }, rangemode: "tozero" },
    },
  };
}

/** Requests/s against client concurrency, one line per server configuration. */
export function throughputVsConcurrency(
  series: Series<{ concurrency: number; requestsPerSecond: number }>[],
  title = "Served throughput vs concurrency",
): Figure {
  return {
    data: series.map((s) => ({
      type: "scatter",
      mode: "lines+markers",
      name: s.name,
      x: s.points.map((p) => p.concurrency),
      y: s.points.map((p) => p.requestsPerSecond),
      hovertemplate: "c=%{x}: %{y:.1f} req/s<extra>%{fullData.name}</extra>",
    })),
    layout: {
      ...BASE_LAYOUT,
      title: { text: title },
      xaxis: { title: { text: "concurrent clients" }, type: "log", tickvals: concurrencyTicks(series) },
      yaxis: { title: { text: "requests / s" }, rangemode: "tozero" },
    },
  };
}

/**
 * Latency percentiles against concurrency: per series a solid p50 line and dashed p95/p99 lines in the same colour,
 * so the gap between them (the tail) is visible at a glance.
 */
export function latencyPercentiles(
  series: Series<{ concurrency: number; p50: number; p95: number; p99: number }>[],
  title = "Latency percentiles vs concurrency",
): Figure {
  const dash = { p50: "solid", p95: "dash", p99: "dot" } as const;
  const data = series.flatMap((s, i) =>
    (["p50", "p95", "p99"] as const).map((key) => ({
      type: "scatter",
      mode: "lines+markers",
      name: `${s.name} ${key}`,
      legendgroup: s.name,
      x: s.points.map((p) => p.concurrency),
      y: s.points.map((p) => p[key]),
      line: { dash: dash[key], color: COLORS[i % COLORS.length] },
      hovertemplate: `c=%{x}: ${key} %{y:.1f} ms<extra>${escapeHtml(s.name)}</extra>`,
    })),
  );
  return {
    data,
    layout: {
      ...BASE_LAYOUT,
      title: { text: title },
      xaxis: { title: { text: "concurrent clients" }, type: "log", tickvals: concurrencyTicks(series) },
      yaxis: { title: { text: "latency (ms)" }, ...logAxis125(series.flatMap((s) => s.points.flatMap((p) => [p.p50, p.p95, p.p99]))) },
    },
  };
}

/**
 * Mean resource use per configuration and concurrency level as grouped bars: server CPU (percent of one core) and,
 * where measured, GPU utilisation. A level without a GPU reading has no GPU bar at all (not a zero bar).
 */
export function usageByConcurrency(
  series: Series<{ concurrency: number; serverCpu: number | null; machineCpu: number | null; gpu: number | null }>[],
  title = "Resource use vs concurrency",
): Figure {
  const hasGpu = series.some((s) => s.points.some((p) => p.gpu !== null));
  const data = series.flatMap((s, i) => {
    const traces: Record<string, unknown>[] = [
      {
        type: "bar",
        name: `${s.name} server CPU`,
        legendgroup: s.name,
        x: s.points.map((p) => `c=${p.concurrency}`),
        y: s.points.map((p) => p.serverCpu),
        marker: { color: COLORS[i % COLORS.length] },
      },
    ];
    if (hasGpu) {
      traces.push({
        type: "bar",
        name: `${s.name} GPU`,
        legendgroup: s.name,
        x: s.points.map((p) => `c=${p.concurrency}`),
        y: s.points.map((p) => p.gpu),
        marker: { color: COLORS[i % COLORS.length], pattern: { shape: "/" } },
      });
    }
    return traces;
  });
  return {
    data,
    layout: {
      ...BASE_LAYOUT,
      title: { text: hasGpu ? title : `${title} (GPU: not available)` },
      barmode: "group",
      yaxis: { title: { text: "percent (CPU: of one core)" }, rangemode: "tozero" },
    },
  };
}

/** A usage time series (CPU of the server and of the machine, GPU where measured) over one run. */
export function usageOverTime(
  points: { t: number; serverCpu: number | null; machineCpu: number | null; gpu: number | null; gpuMemoryMiB?: number | null }[],
  title = "Resource use over time",
): Figure {
  const t = points.map((p) => p.t);
  const data: Record<string, unknown>[] = [
    { type: "scatter", mode: "lines", name: "server CPU (% of one core)", x: t, y: points.map((p) => p.serverCpu) },
    { type: "scatter", mode: "lines", name: "machine CPU (% of all cores)", x: t, y: points.map((p) => p.machineCpu) },
  ];
  const hasGpu = points.some((p) => p.gpu !== null);
  if (hasGpu) {
    data.push({ type: "scatter", mode: "lines", name: "GPU utilisation %", x: t, y: points.map((p) => p.gpu) });
    data.push({
      type: "scatter",
      mode: "lines",
      name: "GPU memory (MiB)",
      x: t,
      y: points.map((p) => p.gpuMemoryMiB ?? null),
      yaxis: "y2",
      line: { dash: "dot" },
    });
  }
  return {
    data,
    layout: {
      ...BASE_LAYOUT,
      title: { text: hasGpu ? title : `${title} (GPU: not available)` },
      xaxis: { title: { text: "seconds" } },
      yaxis: { title: { text: "percent" }, rangemode: "tozero" },
      ...(hasGpu ? { yaxis2: { title: { text: "MiB" }, overlaying: "y", side: "right", rangemode: "tozero" } } : {}),
    },
  };
}

/**
 * Batches per batch-size bucket, one group of bars per concurrency level: how full the batcher's batches were.
 * `buckets` are per-bucket counts (not cumulative), e.g. from {@link histogramBuckets} of two /metrics readings.
 */
export function batchSizeHistogram(
  series: { concurrency: number; buckets: { le: string; count: number }[] }[],
  title = "Batches per size bucket, by concurrency (from /metrics)",
): Figure {
  return {
    data: series.map((h, i) => ({
      type: "bar",
      name: `${h.concurrency} client${h.concurrency > 1 ? "s" : ""}`,
      x: h.buckets.filter((b) => b.le !== "+Inf").map((b) => `≤ ${b.le}`),
      y: h.buckets.filter((b) => b.le !== "+Inf").map((b) => b.count),
      marker: { color: COLORS[i % COLORS.length] },
    })),
    layout: {
      ...BASE_LAYOUT,
      title: { text: title },
      barmode: "group",
      xaxis: { title: { text: "batch size" } },
      yaxis: { title: { text: "batches" }, rangemode: "tozero" },
    },
  };
}

/**
 * A log axis labelled at 1-2-5 steps (1, 2, 5, 10, 20, 50 …) over the range the values span, instead of plotly's
 * default, which labels every minor step (2, 3, 4 … 9) once a log axis covers less than about two decades and
 * prints overlapping labels. Pass every value the axis shows; non-positive values are ignored (log axes drop them).
 */
export function logAxis125(values: (number | null | undefined)[]): { type: "log"; tickvals?: number[]; ticktext?: string[] } {
  const positive = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v) && v > 0);
  if (positive.length === 0) return { type: "log" };
  const tickvals = ticks125(Math.min(...positive), Math.max(...positive));
  return { type: "log", tickvals, ticktext: tickvals.map((v) => formatTick(v)) };
}

/** 1-2-5 ticks from the one at or below `min` to the one at or above `max`. */
export function ticks125(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let decade = Math.floor(Math.log10(min)); decade <= Math.ceil(Math.log10(max)); decade++) {
    for (const step of [1, 2, 5]) ticks.push(Number((step * 10 ** decade).toPrecision(12)));
  }
  const below = ticks.filter((t) => t <= min).pop() ?? ticks[0];
  const above = ticks.find((t) => t >= max) ?? ticks[ticks.length - 1];
  return ticks.filter((t) => t >= below && t <= above);
}

function formatTick(value: number): string {
  return value >= 1000 ? `${value / 1000}k` : String(value);
}

/** A plain bar chart (e.g. images/s per precision, or a before/after comparison). */
export function barChart(bars: { label: string; value: number }[], title: string, yTitle: string): Figure {
  return {
    data: [
      {
        type: "bar",
        x: bars.map((b) => b.label),
        y: bars.map((b) => b.value),
        text: bars.map((b) => formatNumber(b.value)),
        textposition: "auto",
        marker: { color: COLORS[0] },
      },
    ],
    layout: { ...BASE_LAYOUT, title: { text: title }, yaxis: { title: { text: yTitle }, rangemode: "tozero" } },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// HTML

let plotlySource: string | undefined;

/** plotly.js as text, read once per process from the installed plotly.js-dist-min. */
export function plotlyJs(): string {
  if (plotlySource === undefined) {
    const require = createRequire(import.meta.url);
    const file = require.resolve("plotly.js-dist-min/plotly.min.js");
    // An HTML parser ends a <script> at the first "</script", wherever it is: keep any such text out of the bundle.
    plotlySource = readFileSync(file, "utf8").replace(/<\/script/gi, "<\\/script");
  }
  return plotlySource;
}

/** A `<script>` that defines `window.Plotly`. Put it ONCE in a page, before any figure. */
export function plotlyScriptTag(): string {
  return `<script type="text/javascript">${plotlyJs()}</script>`;
}

/**
 * A `<div>` plus the script that draws `figure` into it. The script waits for `window.Plotly` (up to 20 s), because
 * in a notebook the output that loads plotly.js may be rendered after this one; if plotly never appears it says so
 * in the div rather than leaving it blank.
 */
export function figureHtml(figure: Figure, id: string, options: { height?: number; modeBar?: boolean } = {}): string {
  const safeId = id.replace(/[^\w-]/g, "-");
  const height = options.height ?? 460;
  // typesetMath: false — no chart here uses LaTeX, and a page that loads MathJax (nbconvert's does) would otherwise
  // have plotly hand it every label, with MathJax's "Loading" badge over the page.
  const config = { responsive: true, displaylogo: false, displayModeBar: options.modeBar ?? "hover", typesetMath: false };
  const spec = scriptJson({ data: figure.data, layout: figure.layout, config });
  return [
    `<div id="${safeId}" class="batchwise-figure" style="width:100%;height:${height}px"></div>`,
    `<script type="text/javascript">(function(){`,
    `var spec=${spec},tries=0;`,
    `function draw(){var el=document.getElementById(${JSON.stringify(safeId)});if(!el)return;`,
    `if(window.Plotly){window.Plotly.newPlot(el,spec.data,spec.layout,spec.config);return;}`,
    `if(++tries>400){el.textContent="plotly.js is not loaded in this page: re-run the cell that loads it";return;}`,
    `setTimeout(draw,50);}`,
    `draw();})();</script>`,
  ].join("");
}

export interface PageSection {
  /** Becomes the div id; also how tests and readers find a chart. */
  id: string;
  figure: Figure;
  /** HTML shown above the chart (already escaped by the caller). */
  caption?: string;
}

/** A self-contained page: plotly inlined once, then every figure; `bodyHtml` goes between the title and the charts. */
export function pageHtml(title: string, sections: PageSection[], bodyHtml = ""): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
  table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
  th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
  .pass { color: #137333; font-weight: 600; } .fail { color: #b3261e; font-weight: 600; }
  figure { margin: 2rem 0; } figcaption { color: #555; }
</style>
${plotlyScriptTag()}
</head>
<body>
<h1>${escapeHtml(title)}</h1>
${bodyHtml}
${sections
  .map((s) => `<figure>${s.caption ? `<figcaption>${s.caption}</figcaption>` : ""}${figureHtml(s.figure, s.id)}</figure>`)
  .join("\n")}
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------------------------
// tslab

let injectedIntoKernel = false;

/**
 * Show a figure in a tslab notebook. The first call in a kernel also emits plotly.js (once: a module-level flag),
 * later calls only the figure. JupyterLab runs `<script>`s in HTML outputs of a trusted notebook (outputs produced in
 * the current session are trusted), and every output lives in the same page, so `window.Plotly` defined by the first
 * output serves the later ones. After a kernel restart the flag resets and plotly is emitted again.
 */
export function displayFigure(figure: Figure, options: { height?: number; id?: string } = {}): void {
  const tslab = loadTslab();
  const id = options.id ?? `batchwise-figure-${Math.random().toString(36).slice(2, 10)}`;
  const html = (injectedIntoKernel ? "" : plotlyScriptTag()) + figureHtml(figure, id, options);
  tslab.display.html(html);
  injectedIntoKernel = true;
}

function loadTslab(): { display: { html(s: string): void } } {
  try {
    return createRequire(import.meta.url)("tslab");
  } catch {
    throw new Error("displayFigure() needs the tslab kernel (run it inside a tslab notebook)");
  }
}

// ---------------------------------------------------------------------------------------------------------------
// helpers

/** Plotly's default colour cycle, so related traces (p50/p95/p99 of one config) can share a colour. */
const COLORS = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880"];

function batchTicks(series: Series<{ batchSize: number }>[]): number[] {
  return uniqueSorted(series.flatMap((s) => s.points.map((p) => p.batchSize)));
}

function concurrencyTicks(series: Series<{ concurrency: number }>[]): number[] {
  return uniqueSorted(series.flatMap((s) => s.points.map((p) => p.concurrency)));
}

function uniqueSorted(values: number[]): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}

/** JSON safe to embed inside a <script>: no "</script>", no HTML comment openers, no line separators. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v))
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

export function formatNumber(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "n/a";
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(digits);
}

