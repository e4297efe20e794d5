import type { Precision } from "../../api/model-api.js";
import type { ApiBenchReport } from "./api-bench.js";
import type { BaselineReport } from "./baseline.js";
import type { MachineInfo } from "../load/machine.js";
import type { OverheadReport } from "./overhead.js";
import type { PerformanceReport } from "./performance.js";
import type { PipelineReport } from "./pipeline.js";
import type { TargetOutcome } from "../report/targets.js";

/**
 * The shape of a `bench suite` run's results.json: what ./suite.ts produces and ./report.ts draws. It lives apart
 * from both so neither imports the other (the report is a view of the results, the suite a producer of them).
 */

export interface SuiteConfig {
  id: string;
  name: string;
  precision: Precision;
  maxBatchSize: number;
  batchTimeout: number;
  workers: number;
}

export interface ConfigResult {
  config: SuiteConfig;
  threadsPerWorker: number;
  baseline: BaselineReport | null;
  pipeline: PipelineReport | null;
  served: ApiBenchReport | null;
  /** Why a part is missing, if one is. */
  errors: string[];
}

export interface SuiteResults {
  startedAt: string;
  quick: boolean;
  durationSeconds: number;
  machine: MachineInfo;
  settings: {
    concurrency: number[];
    /** Minimum requests per level; each level sends at least `waves` × its concurrency. */
    requestsPerLevel: number;
    waves: number;
    baselineRuns: number;
    pipelineImages: number;
    imagesDir: string;
    /** The photo the performance targets are measured on (the seed's 768×576 JPEG). */
    targetImage: string;
  };
  configs: ConfigResult[];
  /** The no-op model with npm start's batching and workers, vs bare fastify, at every concurrency level. */
  overhead: OverheadReport | null;
  /** The no-op model with batching off (maxBatchSize 1), npm start's workers, at c=64. */
  overheadBatchingOff: OverheadReport | null;
  /** The classifier path's target figures on one JPEG (see ./performance.ts). */
  performance: PerformanceReport | null;
  targets: TargetOutcome[];
}
