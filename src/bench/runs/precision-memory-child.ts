import { readFileSync } from "node:fs";
import type { Precision } from "../../api/model-api.js";
import { resolveModel } from "../../runtime/models.js";
import { ort, settingsFor } from "../../runtime/onnx.js";
import { openModel } from "../../runtime/precision.js";

/**
 * Entry point of a memory-measuring process (started by ./precision.ts, never imported). Each precision is measured
 * in its own fresh process because a session's memory (weights after graph optimisation, the arena its first run
 * allocates) never goes back to the OS when the session is released, so sessions measured one after another in one
 * process would pollute each other.
 *
 * argv[2] is a JSON {@link MemoryChildConfig}. It prints one line `BATCHWISE_MEMORY <json MemoryChildResult>`.
 */

export interface MemoryChildConfig {
  model: string;
  precision: Precision;
  threads: number;
  /** Images in the one batch run after the session is created (the arena grows with it). */
  batchSize: number;
}

export interface MemoryChildResult {
  /** Resident set size with node, onnxruntime's native library and this module loaded, before any session. */
  baseRssBytes: number;
  /** RSS after creating the session and running one single-image batch (openModel's capability check). */
  sessionRssBytes: number;
  /** RSS after one more batch of `batchSize` images. */
  afterBatchRssBytes: number;
  /** Peak RSS of the process (VmHWM): transient allocations while the graph is optimised show up here. */
  peakRssBytes: number | null;
  file: string;
}

async function main() {
  const config = JSON.parse(process.argv[2] ?? "null") as MemoryChildConfig | null;
  if (!config) throw new Error("usage: precision-memory-child '<json config>'");
  const model = await resolveModel(config.model);
  const settings = settingsFor({ accelerator: "cpu", index: 0, threads: config.threads, id: "cpu" });
  const baseRssBytes = process.memoryUsage.rss();
  const opened = await openModel({
    dir: model.dir,
    file: model.file,
    precision: config.precision,
    settings,
    check: async (session) => {
      await runBatch(session, 1);
    },
  });
  const sessionRssBytes = process.memoryUsage.rss();
  await runBatch(opened.session, config.batchSize);
  const afterBatchRssBytes = process.memoryUsage.rss();
  const result: MemoryChildResult = { baseRssBytes, sessionRssBytes, afterBatchRssBytes, peakRssBytes: peakRss(), file: opened.file };
  process.stdout.write(`BATCHWISE_MEMORY ${JSON.stringify(result)}\n`);
}

async function runBatch(session: ort.InferenceSession, batchSize: number): Promise<void> {
  const input = new ort.Tensor("float32", new Float32Array(batchSize * 3 * 224 * 224).fill(0.5), [batchSize, 3, 224, 224]);
  const outputs = await session.run({ [session.inputNames[0]]: input });
  for (const output of Object.values(outputs)) output.dispose();
  input.dispose();
}

/** VmHWM from /proc/self/status (Linux only; null elsewhere). */
function peakRss(): number | null {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

main().catch((error) => {
  process.stderr.write(`precision-memory-child: ${(error as Error).stack ?? error}\n`);
  process.exit(1);
});
