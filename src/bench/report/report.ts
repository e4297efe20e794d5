import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { DEFAULT_CHUNK_SIZE } from "../../runtime/chunked-run.js";
import {
  escapeHtml,
  latencyPercentiles,
  pageHtml,
  throughputVsBatchSize,
  throughputVsConcurrency,
  usageByConcurrency,
  usageOverTime,
  type PageSection,
} from "./figures/plotly.js";
import { ChromiumNotFoundError, renderFigurePng } from "./figures/png.js";
import { machineSummary } from "../load/machine.js";
import type { SuiteResults } from "../runs/suite-results.js";
import { cell, shorten } from "./table.js";

/**
 * The suite's outputs in `<outDir>/<timestamp>/`: results.json (everything measured, with the machine), report.html
 * (self-contained: plotly inlined once, tables, charts) and charts/<chart>.png when Chromium is installed.
 */
export async function writeReport(
  results: SuiteResults,
  outDir: string,
  log: (line: string) => void = () => {},
): Promise<string> {
  const dir = path.resolve(outDir, results.startedAt.replace(/[:.]/g, "-"));
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "results.json"), JSON.stringify(results, null, 2));
  const sections = reportSections(results);
  await writeFile(path.join(dir, "report.html"), reportHtml(results, sections));
  log(`report: ${path.join(dir, "report.html")}`);
  await writePngs(sections, path.join(dir, "charts"), log);
  return dir;
}

/** Every chart of the report, with the id it has in the page (and as a PNG file name). */
export function reportSections(results: SuiteResults): PageSection[] {
  const configs = results.configs;
  const baselineSeen = new Set<string>();
  const baselines = configs.flatMap((c) => {
    if (!c.baseline) return [];
    const key = `${c.baseline.precision}/${c.baseline.threads}`;
    if (baselineSeen.has(key)) return [];
    baselineSeen.add(key);
    return [{ name: `${c.baseline.precision}, ${c.baseline.threads} thread(s)`, points: c.baseline.results }];
  });
  const served = configs.filter((c) => c.served);
  const sections: PageSection[] = [
    {
      id: "throughput-vs-batch-size",
      figure: throughputVsBatchSize(baselines, "Raw model throughput vs batch size (no HTTP, random input)"),
      caption: "The ceiling: onnxruntime alone, per precision and intra-op thread count.",
    },
    {
      id: "throughput-vs-concurrency",
      figure: throughputVsConcurrency(
        served.map((c) => ({ name: c.config.name, points: c.served!.levels })),
        "Served throughput vs concurrency (one image per request)",
      ),
    },
    {
      id: "latency-percentiles",
      figure: latencyPercentiles(
        served.map((c) => ({
          name: c.config.name,
          points: c.served!.levels.map((l) => ({ concurrency: l.concurrency, ...l.latencyMs })),
        })),
      ),
    },
    {
      id: "usage-by-concurrency",
      figure: usageByConcurrency(
        served.map((c) => ({
          name: c.config.name,
          points: c.served!.levels.map((l) => ({
            concurrency: l.concurrency,
            serverCpu: l.usage.serverCpu,
            machineCpu: l.usage.machineCpu,
            gpu: l.usage.gpuUtilization,
          })),
        })),
        "Server CPU (and GPU) use vs concurrency",
      ),
    },
  ];
  const overTime = usageOverTimeSection(served);
  if (overTime) sections.push(overTime);
  if (results.overhead) sections.push(overheadSection(results.overhead));
  return sections;
}

/** Resource use over time of the busiest level of the last served configuration. */
function usageOverTimeSection(served: SuiteResults["configs"]): PageSection | null {
  const last = served[served.length - 1];
  const busiest = last?.served!.levels[last.served!.levels.length - 1];
  if (!last || !busiest) return null;
  const pid = Object.keys(busiest.usage.series[0]?.processCpu ?? {})[0];
  return {
    id: "usage-over-time",
    figure: usageOverTime(
      busiest.usage.series.map((p) => ({
        t: p.t,
        serverCpu: pid ? p.processCpu[pid] ?? null : null,
        machineCpu: p.machineCpu,
        gpu: p.gpuUtilization,
        gpuMemoryMiB: p.gpuMemoryMiB,
      })),
      `Resource use over time: ${last.config.name}, c=${busiest.concurrency}`,
    ),
  };
}

function overheadSection(overhead: NonNullable<SuiteResults["overhead"]>): PageSection {
  const rows = overhead.rows;
  return {
    id: "overhead",
    figure: throughputVsConcurrency(
      [
        { name: "batchwise, no-op model", points: rows.map((r) => ({ concurrency: r.concurrency, ...r.batchwise })) },
        { name: "bare fastify echo", points: rows.map((r) => ({ concurrency: r.concurrency, ...r.bareFastify })) },
      ],
      `Server overhead: no-op model vs bare fastify (${overhead.bodyBytes}-byte JSON body)`,
    ),
  };
}

export function reportHtml(results: SuiteResults, sections: PageSection[]): string {
  const title = `batchwise benchmark — ${results.startedAt}${results.quick ? " (quick)" : ""}`;
  const body = [
    `<p>${escapeHtml(machineSummary(results.machine))}. At least ${results.settings.requestsPerLevel} requests and ${results.settings.waves ?? 1} waves (waves × concurrency) per concurrency level; ` +
      `photos from <code>${escapeHtml(results.settings.imagesDir)}</code>; run took ${cell(results.durationSeconds)} s.</p>`,
    `<h2>Targets</h2>`,
    `<p>Ratios to a baseline measured in the same run pass or fail for the code on any machine; machine-dependent figures were measured on <b>${escapeHtml(cpuLine(results))}</b>.</p>`,
    htmlTable(
      ["target", "measured", "wanted", "result", "basis"],
      results.targets.map((t) => [
        escapeHtml(t.name),
        `${cell(t.measured, 2)} ${escapeHtml(t.unit)}`,
        `${t.op === ">=" ? "&ge;" : "&le;"} ${cell(t.threshold, 2)} ${escapeHtml(t.unit)}${t.note ? ` <small>(${escapeHtml(t.note)})</small>` : ""}`,
        t.pass === null ? "not measured" : t.pass ? `<span class="pass">PASS</span>` : `<span class="fail">FAIL</span>`,
        t.machineDependent ? `machine-dependent <small>(${escapeHtml(cpuLine(results))})</small>` : "same-run baseline",
      ]),
    ),
    ...performanceHtml(results),
    `<h2>Configurations</h2>`,
    htmlTable(
      ["config", "precision", "max batch", "workers × threads", "baseline b64 img/s", "pipeline img/s", "decode ms/img", "served c=64 req/s", "errors"],
      results.configs.map((c) => [
        escapeHtml(c.config.name),
        c.config.precision,
        String(c.config.maxBatchSize),
        `${c.config.workers} × ${c.threadsPerWorker}`,
        cell(c.baseline?.results.find((b) => b.batchSize === 64)?.imagesPerSecond),
        cell(c.pipeline?.imagesPerSecond),
        cell(c.pipeline?.decodeMsPerImage, 2),
        cell(c.served?.levels.find((l) => l.concurrency === 64)?.requestsPerSecond),
        c.errors.length ? escapeHtml(c.errors.map(shorten).join("; ")) : String(c.served?.levels.reduce((n, l) => n + l.errorCount, 0) ?? "n/a"),
      ]),
    ),
    ...results.configs
      .filter((c) => c.served)
      .map(
        (c) =>
          `<h3>${escapeHtml(c.config.name)}</h3>` +
          htmlTable(
            ["concurrency", "requests", "req/s", "mean ms", "p50 ms", "p95 ms", "p99 ms", "errors", "server CPU % (1 core = 100)", "server RSS MiB", "GPU %"],
            c.served!.levels.map((l) => [
              String(l.concurrency),
              String(l.requests),
              cell(l.requestsPerSecond),
              cell(l.latencyMs.mean),
              cell(l.latencyMs.p50),
              cell(l.latencyMs.p95),
              cell(l.latencyMs.p99),
              String(l.errorCount),
              cell(l.usage.serverCpu, 0),
              cell(l.usage.serverRssMiB, 0),
              l.usage.gpuUtilization === null ? "not available" : cell(l.usage.gpuUtilization, 0),
            ]),
          ),
      ),
    `<h2>Charts</h2>`,
  ].join("\n");
  return pageHtml(title, sections, body);
}

/** npm start's configuration on one photo: the figures the targets read, with how each was measured. */
function performanceHtml(results: SuiteResults): string[] {
  const p = results.performance;
  if (!p) return [];
  const c = p.config;
  const rows: [string, string][] = [
    ["configuration", `batching ${c.maxBatchSize} / ${c.batchTimeout} s, ${c.workers} worker(s) × ${c.threadsPerWorker} thread(s), precision ${c.precision} = ${c.resolvedPrecision}`],
    ["preprocessing (one core)", `${cell(p.preprocessMs, 2)} ms from JPEG bytes, ${cell(p.preprocessBase64Ms, 2)} ms from base64`],
    ["model alone, batch of 64, one thread", `${cell(p.modelMsPerImage, 2)} ms per image in chunks of ${DEFAULT_CHUNK_SIZE} as a worker runs it, ${cell(p.modelOneRunMsPerImage, 2)} as one run`],
    ["pipeline limit (no HTTP)", `${cell(p.pipelineImagesPerSecond)} img/s from base64 JSON, ${cell(p.pipelineBinary?.imagesPerSecond)} from JPEG bytes, over ${p.pipeline.images} images each`],
    ["served c=64, base64 JSON", `${cell(p.served.requestsPerSecond)} img/s, p50 ${cell(p.served.latencyMs.p50)} ms, ${p.served.errorCount} errors`],
    ["served c=64, binary body", p.servedBinary ? `${cell(p.servedBinary.requestsPerSecond)} img/s, p50 ${cell(p.servedBinary.latencyMs.p50)} ms, ${p.servedBinary.errorCount} errors` : "not measured"],
    ["rounds (alternating)", p.rounds.map((r) => `${r.body} ${cell(r.requestsPerSecond)}${r.errorCount ? ` (${r.errorCount} errors)` : ""}`).join(", ")],
    ["server RSS under c=64 (peak, process tree)", `${cell(p.serverRssMiB, 0)} MiB`],
    ["main thread CPU per image at c=64, base64 / raw", `${cell(p.mainThreadMicrosPerImage?.json, 0)} / ${cell(p.mainThreadMicrosPerImage?.binary, 0)} µs`],
    ["lone request p50, batching off / on", `${cell(p.lone.batchingOffP50Ms, 2)} / ${cell(p.lone.batchingOnP50Ms, 2)} ms`],
    ["CPU", cpuLine(results)],
  ];
  return [`<h2>npm start's configuration on ${escapeHtml(path.basename(p.image))}</h2>`, htmlTable(["measure", "value"], rows.map(([k, v]) => [escapeHtml(k), escapeHtml(v)]))];
}

async function writePngs(sections: PageSection[], dir: string, log: (line: string) => void) {
  await mkdir(dir, { recursive: true });
  for (const section of sections) {
    try {
      await renderFigurePng(section.figure, path.join(dir, `${section.id}.png`));
    } catch (error) {
      if (error instanceof ChromiumNotFoundError) {
        log(error.message);
        return;
      }
      log(`PNG export of ${section.id} failed: ${(error as Error).message}`);
    }
  }
  log(`charts: ${dir}`);
}

function htmlTable(headers: string[], rows: string[][]): string {
  return `<table><thead><tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`)
    .join("")}</tbody></table>`;
}

/** The results' CPU line (describeCpu); results written before it existed give their model name and cores. */
function cpuLine(results: SuiteResults): string {
  return results.machine.cpu ?? `${results.machine.cpuModel} · ${results.machine.cores} cores`;
}
