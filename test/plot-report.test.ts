import { execFile } from "node:child_process";
import { mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import type { ApiBenchLevel } from "../src/bench/runs/api-bench.js";
import { machineInfo, machineSummary } from "../src/bench/load/machine.js";
import { reportHtml, reportSections, writeReport } from "../src/bench/report/report.js";
import { summarize } from "../src/bench/load/stats.js";
import { formatSuiteSummary, SUITE_TARGETS, type SuiteResults } from "../src/bench/runs/suite.js";
import { evaluateTargets } from "../src/bench/report/targets.js";
import { cpuFeatures, describeCpu } from "../src/runtime/cpu-features.js";
import { displayFigure, escapeHtml, latencyPercentiles, pageHtml, plotlyJs, usageByConcurrency } from "../src/bench/report/figures/plotly.js";
import { findChromium } from "../src/bench/report/figures/png.js";

const CHARTS = [
  "throughput-vs-batch-size",
  "throughput-vs-concurrency",
  "latency-percentiles",
  "usage-by-concurrency",
  "usage-over-time",
  "overhead",
];

function level(concurrency: number, rps: number): ApiBenchLevel {
  const latencies = Array.from({ length: 32 }, (_, i) => 5 + i * 0.5 + concurrency);
  return {
    concurrency,
    requests: 32,
    successes: 32,
    errors: {},
    errorCount: 0,
    wallSeconds: 32 / rps,
    requestsPerSecond: rps,
    latencyMs: summarize(latencies),
    usage: {
      serverCpu: 150,
      machineCpu: 90,
      gpuUtilization: null,
      gpuMemoryMiB: null,
      gpuNote: "not available (nvidia-smi not found)",
      series: [0.1, 0.2, 0.3].map((t) => ({ t, processCpu: { "123": 140 + t }, machineCpu: 88, gpuUtilization: null, gpuMemoryMiB: null })),
    },
  };
}

function syntheticResults(): SuiteResults {
  const config = (id: string, name: string, precision: "fp32" | "int8", workers: number) => ({
    config: { id, name, precision, maxBatchSize: 64, batchTimeout: 0.01, workers },
    threadsPerWorker: 2 / workers,
    baseline: {
      model: "m.onnx",
      precision,
      threads: 2 / workers,
      results: [1, 8, 32, 64].map((b) => ({ batchSize: b, runs: 3, medianMs: b * 3, minMs: b * 3, maxMs: b * 3, iqrMs: 0, imagesPerSecond: 333 })),
    },
    pipeline: { batchSize: 64, workers, threadsPerWorker: 2 / workers, images: 128, wallSeconds: 1, imagesPerSecond: 250, decodeMsPerImage: 6, failures: 0 },
    served: { url: "http://x", path: "/predict", requestsPerLevel: 32, levels: [1, 8, 32, 64].map((c) => level(c, 50 + c * 3)) },
    errors: [],
  });
  const results: SuiteResults = {
    startedAt: "2026-01-01T00:00:00.000Z",
    quick: true,
    durationSeconds: 12,
    machine: machineInfo(),
    settings: { concurrency: [1, 8, 32, 64], requestsPerLevel: 32, waves: 4, baselineRuns: 3, pipelineImages: 128, imagesDir: "/images", targetImage: "/images/darknet_dog.jpg" },
    configs: [config("a-no-batching", "(a) <no batching>", "fp32", 1), config("d-int8", "(d) + int8", "int8", 2)],
    overhead: {
      bodyBytes: 1024,
      requestsPerLevel: 100,
      batchwiseOptions: {},
      rows: [1, 64].map((c) => ({
        concurrency: c,
        batchwise: { requestsPerSecond: 1000 * c, p50: 1, p99: 2, errors: 0 },
        bareFastify: { requestsPerSecond: 1500 * c, p50: 1, p99: 2, errors: 0 },
        throughputRatio: 2 / 3,
      })),
    },
    overheadBatchingOff: null,
    performance: null,
    targets: [],
  };
  results.targets = evaluateTargets(
    [
      { name: "served c=64", unit: "req/s", measure: (r) => r.configs[1].served!.levels[3].requestsPerSecond, op: ">=", threshold: 200 },
      { name: "not measured", unit: "ms", measure: () => null, op: "<=", threshold: 1 },
    ],
    results,
  );
  return results;
}

/** The JSON each figure script draws, parsed back: proves the embedded figure is valid and complete. */
function embeddedFigures(html: string): { data: { name?: string }[]; layout: { title: { text: string } } }[] {
  return [...html.matchAll(/var spec=(.*?),tries=0;/g)].map((m) => JSON.parse(m[1]));
}

describe("report HTML", () => {
  const results = syntheticResults();
  const sections = reportSections(results);
  const html = reportHtml(results, sections);

  it("has every chart, each with a div and a parseable figure", () => {
    expect(sections.map((s) => s.id)).toEqual(CHARTS);
    for (const id of CHARTS) expect(html).toContain(`<div id="${id}"`);
    const figures = embeddedFigures(html);
    expect(figures).toHaveLength(CHARTS.length);
    expect(figures.every((f) => f.data.length > 0 && f.layout.title.text.length > 0)).toBe(true);
  });

  it("inlines plotly.js exactly once and keeps script tags balanced", () => {
    expect(html.split("window.Plotly = Plotly").length - 1).toBe(1);
    expect((html.match(/<script\b/g) ?? []).length).toBe((html.match(/<\/script>/g) ?? []).length);
    expect((html.match(/<script\b/g) ?? []).length).toBe(CHARTS.length + 1);
  });

  it("escapes names and shows targets with pass / not measured", () => {
    expect(html).toContain("(a) &lt;no batching&gt;");
    expect(html).not.toContain("(a) <no batching>");
    expect(html).toContain('<span class="pass">PASS</span>');
    expect(html).toContain("not measured");
  });

  it("says GPU is not available instead of drawing zero bars", () => {
    const figure = usageByConcurrency([{ name: "x", points: [{ concurrency: 1, serverCpu: 100, machineCpu: 50, gpu: null }] }]);
    expect(figure.data).toHaveLength(1);
    expect(JSON.stringify(figure.layout)).toContain("GPU: not available");
  });

  it("draws p50/p95/p99 per series in one colour", () => {
    const figure = latencyPercentiles([{ name: "a", points: [{ concurrency: 1, p50: 1, p95: 2, p99: 3 }] }]);
    expect(figure.data.map((d) => d.name)).toEqual(["a p50", "a p95", "a p99"]);
    expect(new Set(figure.data.map((d) => (d.line as { color: string }).color)).size).toBe(1);
  });
});

describe("figures carry their machine", () => {
  it("the results' machine is cpu-features' reading, with the CPU line every table is printed under", () => {
    const machine = machineInfo();
    const cpu = cpuFeatures();
    expect(machine.cpu).toBe(describeCpu());
    expect(machine.cpuModel).toBe(cpu.modelName);
    expect(machine.cpuFeatures).toMatchObject({ avx512: cpu.avx512, int8DotProduct: cpu.int8DotProduct, bf16: cpu.bf16, amx: cpu.amx });
    expect(machineSummary(machine).startsWith(describeCpu())).toBe(true);
  });

  it("the report and the terminal summary quote the CPU beside the targets, each marked by its basis", () => {
    const results = syntheticResults();
    results.targets = evaluateTargets(SUITE_TARGETS, results);
    const html = reportHtml(results, reportSections(results));
    expect(html).toContain(escapeHtml(describeCpu()));
    expect(html).toContain("same-run baseline");
    expect(html).toContain("machine-dependent");
    const summary = formatSuiteSummary(results);
    expect(summary.split("\n")[0]).toBe(`CPU: ${describeCpu()}`);
    expect(summary).toContain(`machine-dependent targets were measured on: ${describeCpu()}`);
  });

  it("every suite target is a ratio to a same-run baseline, or an absolute figure marked machine-dependent", () => {
    for (const target of SUITE_TARGETS) {
      if (target.unit === "×") expect(target.machineDependent ?? false, target.name).toBe(false);
      else if (!/batching on − off/.test(target.name)) expect(target.machineDependent, target.name).toBe(true);
    }
    const ratios = SUITE_TARGETS.filter((t) => !t.machineDependent).map((t) => t.name).join("\n");
    expect(ratios).toMatch(/served ÷ pipeline/);
    expect(ratios).toMatch(/CPU per request ÷ bare fastify/);
    expect(ratios).toMatch(/main-thread CPU per image, raw JPEG ÷ base64/);
  });

  it("the ratio targets read the same-run baselines: the framework's CPU above bare fastify, main thread raw vs base64", () => {
    const results = syntheticResults();
    results.overhead!.rows[1].cpuRatio = 1.4;
    results.overheadBatchingOff = { ...results.overhead!, rows: [{ ...results.overhead!.rows[1], cpuRatio: 3 }] };
    results.performance = syntheticPerformance({ json: 700, binary: 560 });
    const outcome = (name: RegExp) => evaluateTargets(SUITE_TARGETS, results).find((o) => name.test(o.name))!;
    expect(outcome(/npm start's batching/)).toMatchObject({ measured: 1.4, pass: true, machineDependent: false });
    expect(outcome(/batching off/)).toMatchObject({ measured: 3, pass: false });
    expect(outcome(/main-thread CPU/).measured).toBeCloseTo(0.8, 6);
    expect(outcome(/main-thread CPU/).pass).toBe(true);
    expect(outcome(/served ÷ pipeline limit at c=64 \(npm/).measured).toBeCloseTo(300 / 400, 6);
    expect(outcome(/preprocessing/)).toMatchObject({ measured: 2, pass: true, machineDependent: true });
    // a raw round that failed (a server answering 415) is not a measurement
    results.performance = { ...syntheticPerformance({ json: 700, binary: 100 }), servedBinary: { ...results.performance.servedBinary!, errorCount: 3 } };
    expect(outcome(/main-thread CPU/)).toMatchObject({ measured: null, pass: null });
  });
});

function syntheticPerformance(mainThread: { json: number; binary: number }): NonNullable<SuiteResults["performance"]> {
  const load = (rps: number) => {
    const { usage: _usage, ...result } = level(64, rps);
    return result;
  };
  const pipeline = { batchSize: 64, workers: 2, threadsPerWorker: 1, images: 1024, wallSeconds: 2.5, imagesPerSecond: 400, decodeMsPerImage: 2, failures: 0 };
  return {
    image: "/images/darknet_dog.jpg",
    config: { maxBatchSize: 64, batchTimeout: 0.01, precision: "auto", workers: 2, threadsPerWorker: 1, resolvedPrecision: "fp32" },
    preprocessMs: 2,
    preprocessBase64Ms: 2.2,
    modelMsPerImage: 3,
    modelOneRunMsPerImage: 3.2,
    pipeline,
    pipelineImagesPerSecond: 400,
    pipelineBinary: { ...pipeline, imagesPerSecond: 420 },
    served: load(300),
    servedBinary: load(330),
    rounds: [],
    mainThreadMicrosPerImage: mainThread,
    serverRssMiB: 380,
    lone: { batchingOffP50Ms: 5, batchingOnP50Ms: 5.1, requestsEach: 100 },
  };
}

describe("report files", () => {
  it("writes results.json, report.html and (with Chromium) a PNG per chart", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "bench-report-"));
    const lines: string[] = [];
    const dir = await writeReport(syntheticResults(), out, (line) => lines.push(line));
    const files = await readdir(dir);
    expect(files).toEqual(expect.arrayContaining(["results.json", "report.html"]));
    const json = JSON.parse(await readFile(path.join(dir, "results.json"), "utf8")) as SuiteResults;
    expect(json.configs).toHaveLength(2);
    if (findChromium()) {
      const pngs = (await readdir(path.join(dir, "charts"))).sort();
      expect(pngs).toEqual(CHARTS.map((c) => `${c}.png`).sort());
      const png = await readFile(path.join(dir, "charts", "overhead.png"));
      expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
      expect(png.length).toBeGreaterThan(10_000); // a drawn chart, not a blank page
    } else {
      expect(lines.join("\n")).toMatch(/PNG export needs Chromium/);
    }
  });

  it.skipIf(!findChromium())("renders every chart in a real browser (plotly draws into each div)", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "bench-dom-"));
    const results = syntheticResults();
    const file = path.join(dir, "report.html");
    await writeFile(file, reportHtml(results, reportSections(results)));
    const { stdout } = await promisify(execFile)(
      findChromium()!,
      ["--headless", "--no-sandbox", "--disable-gpu", `--user-data-dir=${path.join(dir, "profile")}`, "--virtual-time-budget=10000", "--dump-dom", pathToFileURL(file).href],
      { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
    );
    for (const id of CHARTS) {
      const div = stdout.slice(stdout.indexOf(`id="${id}"`), stdout.indexOf(`id="${id}"`) + 400);
      expect(div, id).toContain("plot-container");
    }
  });
});

describe("displayFigure in tslab", () => {
  it("emits plotly.js with the first figure of a kernel only", () => {
    const jupyter = createRequire(import.meta.url)("tslab/dist/jupyter.js") as { lastWriteDisplayData: unknown };
    const outputs: { data: Record<string, string> }[] = [];
    jupyter.lastWriteDisplayData = (message: { data: Record<string, string> }) => outputs.push(message);
    try {
      const figure = latencyPercentiles([{ name: "a", points: [{ concurrency: 1, p50: 1, p95: 2, p99: 3 }] }]);
      displayFigure(figure, { id: "first" });
      displayFigure(figure, { id: "second" });
    } finally {
      jupyter.lastWriteDisplayData = null;
    }
    expect(outputs).toHaveLength(2);
    const [first, second] = outputs.map((o) => o.data["text/html"]);
    expect(first).toContain("window.Plotly = Plotly");
    expect(first).toContain('<div id="first"');
    expect(second).not.toContain("window.Plotly = Plotly");
    expect(second).toContain('<div id="second"');
    expect(second.length).toBeLessThan(10_000);
  });

  it("a page from pageHtml needs nothing from the network", () => {
    const html = pageHtml("t", []).replace(plotlyJs(), "");
    expect(html).not.toMatch(/<script[^>]+src=/);
    expect(html).not.toMatch(/https?:/);
  });
});
