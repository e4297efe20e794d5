/**
 * `batchwise/bench`: the benchmark and plotting toolkit that the tutorial notebooks and the `batchwise bench` CLI
 * are built from. It sits above the library (it starts servers, loads models, drives load) and nothing in the
 * serving core imports it.
 *
 * - measure: raw model ({@link runBaseline}), in-process pipeline limit ({@link runPipeline}), a served API under
 *   closed-loop load ({@link runApiBench}, {@link runLoad}), framework overhead ({@link runOverhead}), precisions
 *   ({@link runPrecisionBench}), chat tokens/s ({@link runStreamLoad}), the whole suite ({@link runSuite});
 * - run servers for measuring in their own process ({@link withServerProcess});
 * - draw: plotly figures for notebooks ({@link displayFigure}) and self-contained HTML/PNG reports;
 * - notebook helpers ({@link notebookEnvironment}, {@link busyWarning}, {@link getJson}).
 *
 * @example
 * ```ts
 * import { notebookEnvironment, runApiBench, withServerProcess, displayFigure, throughputVsConcurrency } from "batchwise/bench";
 * import { imageClassifier } from "batchwise/classifier";
 * const env = notebookEnvironment();
 * const served = await withServerProcess({ kind: "batchwise", options: { api: imageClassifier() } }, (server) =>
 *   runApiBench({ url: server.url, serverPid: server.pid, imagesDir: env.imagesDir, concurrency: [1, 64], waves: 4 }));
 * displayFigure(throughputVsConcurrency([{ name: "npm start", points: served.levels }]));
 * ```
 */

// measuring
export { runBaseline, modelFile, DEFAULT_BATCH_SIZES, DEFAULT_BASELINE_MODEL } from "./runs/baseline.js";
export type { BaselineOptions, BaselineReport, BaselineResult } from "./runs/baseline.js";
export { runPipeline, DEFAULT_PIPELINE_IMAGES } from "./runs/pipeline.js";
export type { PipelineOptions, PipelineReport } from "./runs/pipeline.js";
export { runApiBench, formatApiTable, DEFAULT_CONCURRENCY } from "./runs/api-bench.js";
export type { ApiBenchOptions, ApiBenchLevel, ApiBenchReport } from "./runs/api-bench.js";
export { runLoad, imagePayloads, imageBodies, listImages, defaultImagesDir, BODY_FORMS } from "./load/load.js";
export type { LoadOptions, LoadResult, BodyForm, RequestPayload } from "./load/load.js";
export { runOverhead, formatOverheadTable } from "./runs/overhead.js";
export type { OverheadOptions, OverheadReport, OverheadRow } from "./runs/overhead.js";
export { noopApi, NoopAPI } from "./servers/noop-api.js";
export { runPrecisionBench, formatPrecisionTable } from "./runs/precision.js";
export type { PrecisionBenchOptions, PrecisionBenchReport, PrecisionRow, PrecisionAgreement, PrecisionMemory } from "./runs/precision.js";
export { measurePerformance } from "./runs/performance.js";
export type { PerformanceOptions, PerformanceReport } from "./runs/performance.js";
export { runStreamLoad, summarizeStreams, streamChatCompletion, benchLlm, formatLlmTable } from "./runs/llm.js";
export type { BenchLlmOptions, BenchLlmResult, LlmLevelResult, StreamTiming, LatencySummary } from "./runs/llm.js";
export { classifierServingConfig, resolvePrecision } from "./servers/serving-config.js";
export type { ClassifierServingConfig } from "./servers/serving-config.js";

// the suite and its report
export { runSuite, formatSuiteSummary, SUITE_CONFIGS, SUITE_TARGETS } from "./runs/suite.js";
export type { SuiteOptions } from "./runs/suite.js";
export type { SuiteConfig, SuiteResults, ConfigResult } from "./runs/suite-results.js";
export { writeReport, reportHtml, reportSections } from "./report/report.js";
export { evaluateTargets, formatTargetsTable } from "./report/targets.js";
export type { Target, TargetOutcome } from "./report/targets.js";

// servers in their own process, machine and resource readings
export { startServerProcess, withServerProcess } from "./servers/server-process.js";
export type { ServerProcess } from "./servers/server-process.js";
export type { ChildServerConfig } from "./servers/serve-child.js";
export { machineInfo, machineSummary } from "./load/machine.js";
export type { MachineInfo } from "./load/machine.js";
export { UsageSampler, withUsage, readTreeRssMiB } from "./load/usage.js";
export type { UsagePoint, UsageReport } from "./load/usage.js";
export { histogramBuckets, bucketDifference } from "./load/metrics-text.js";

// numbers and tables
export { summarize, percentile, median, mean } from "./load/stats.js";
export type { Summary } from "./load/stats.js";
export { formatTable, cell } from "./report/table.js";

// notebooks
export { notebookEnvironment, readPrevious, busyWarning, getJson, getText, withoutSeries } from "./notebook.js";
export type { NotebookEnvironment } from "./notebook.js";
export { spread, summarizeLevels, baselineSpread, compareSpreads, formatChange, pickBest, formatSpread, errorBars } from "./report/spread.js";
export type { Spread, RepeatedLevel } from "./report/spread.js";
export { repeatApiBench } from "./runs/repeat.js";
export { tableHtml, displayTable, displayLevels, infoFields, thisRun, saveWithSummary, spreadVsConcurrency, spreadBars, batchShareFigure, batchSizeSum } from "./report/notebook-display.js";
export { readSequence, displaySequence, sequenceFigure, loadNote, SEQUENCE_FILES } from "./report/notebook-sequence.js";
export type { SequenceRow, SequenceCeiling } from "./report/notebook-sequence.js";

// figures
export {
  throughputVsBatchSize,
  throughputVsConcurrency,
  latencyPercentiles,
  usageByConcurrency,
  usageOverTime,
  batchSizeHistogram,
  barChart,
  logAxis125,
  ticks125,
  displayFigure,
  figureHtml,
  pageHtml,
  plotlyScriptTag,
  escapeHtml,
  formatNumber,
} from "./report/figures/plotly.js";
export type { Figure, Series, PageSection } from "./report/figures/plotly.js";
export { precisionFigure } from "./report/figures/precision.js";
export { renderPng, renderFigurePng, findChromium, ChromiumNotFoundError } from "./report/figures/png.js";
export type { PngOptions } from "./report/figures/png.js";
