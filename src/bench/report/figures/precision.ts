import type { PrecisionBenchReport } from "../../runs/precision.js";
import { escapeHtml, formatNumber, type Figure } from "./plotly.js";

/**
 * The `bench precision` result as one chart: per precision, grouped bars of raw images/s at the largest measured
 * batch and served requests/s (left axis), and the model file size in MB (right axis, hatched). A precision the
 * provider cannot run has no bars (not zero bars) and says why above its place on the axis.
 *
 * @example
 * ```ts
 * import { displayFigure, precisionFigure, runPrecisionBench } from "batchwise/bench";
 * displayFigure(precisionFigure(await runPrecisionBench({ quick: true })));
 * ```
 */
export function precisionFigure(result: PrecisionBenchReport, title = "Precision: throughput and model size"): Figure {
  const { rows, settings } = result;
  const x = rows.map((r) => r.precision);
  const batch = Math.max(...settings.batchSizes);
  const raw = rows.map((r) => r.raw.find((b) => b.batchSize === batch)?.imagesPerSecond ?? null);
  const served = rows.map((r) => r.served?.requestsPerSecond ?? null);
  const megabytes = rows.map((r) => (r.fileBytes === null ? null : r.fileBytes / 1e6));
  const label = (values: (number | null)[], unit: string) => values.map((v) => (v === null ? "" : `${formatNumber(v)}${unit}`));
  // Bars on two y axes only sit side by side when each has its own offset group.
  const data: Record<string, unknown>[] = [
    {
      type: "bar",
      name: `raw images/s (batch ${batch})`,
      x,
      y: raw,
      text: label(raw, ""),
      textposition: "auto",
      offsetgroup: "raw",
      marker: { color: "#636efa" },
    },
    {
      type: "bar",
      name: `served requests/s (${settings.concurrency} clients)`,
      x,
      y: served,
      text: label(served, ""),
      textposition: "auto",
      offsetgroup: "served",
      marker: { color: "#00cc96" },
    },
    {
      type: "bar",
      name: "model file (MB)",
      x,
      y: megabytes,
      yaxis: "y2",
      text: label(megabytes, " MB"),
      textposition: "auto",
      textangle: 0,
      offsetgroup: "size",
      marker: { color: "#ffa15a", pattern: { shape: "/" } },
    },
  ];
  const annotations = rows
    .filter((r) => !r.runnable)
    .map((r) => ({
      x: r.precision,
      // above the bf16 file-size bar, which is half fp32's height
      y: 0.8,
      yref: "paper",
      text: `does not run here:<br>${escapeHtml(r.reason ?? "unknown reason")}`,
      showarrow: false,
      font: { size: 11, color: "#b3261e" },
    }));
  return {
    data,
    layout: {
      paper_bgcolor: "#fff",
      plot_bgcolor: "#fff",
      margin: { l: 70, r: 70, t: 60, b: 60 },
      legend: { orientation: "h", y: -0.15 },
      font: { family: "system-ui, sans-serif", size: 13 },
      title: { text: title },
      barmode: "group",
      xaxis: { title: { text: "precision" }, type: "category" },
      yaxis: { title: { text: "images / s, requests / s" }, rangemode: "tozero" },
      yaxis2: { title: { text: "file size (MB)" }, overlaying: "y", side: "right", rangemode: "tozero", showgrid: false, tickmode: "auto" },
      annotations,
    },
  };
}
