import { summarizeLevels, type RepeatedLevel } from "../report/spread.js";
import { runApiBench, type ApiBenchLevel, type ApiBenchOptions } from "./api-bench.js";

/**
 * `runApiBench` `repeats` times over the same levels, interleaved (1, 8, 32, 64, then again), so a slow patch of a
 * busy machine spreads over every level instead of landing on one.
 */
export async function repeatApiBench(options: ApiBenchOptions & { repeats: number }): Promise<RepeatedLevel[]> {
  const { repeats, ...bench } = options;
  const runs: ApiBenchLevel[] = [];
  for (let r = 0; r < repeats; r++) runs.push(...(await runApiBench(bench)).levels);
  return summarizeLevels(runs);
}
