import { beforeAll, describe, expect, it } from "vitest";
import { formatPrecisionTable, runPrecisionBench, type PrecisionBenchReport } from "../src/bench/runs/precision.js";
import { precisionFigure } from "../src/bench/report/figures/precision.js";
import { imagesDir } from "./helpers/paths.js";

/**
 * A quick `bench precision` over the real model and photos: every precision end to end (capability check, file,
 * memory child, raw runs, a served child process, agreement with fp32), with small counts so it fits the time budget.
 */
describe("bench precision (quick)", () => {
  let report: PrecisionBenchReport;
  const row = (precision: string) => report.rows.find((r) => r.precision === precision)!;

  beforeAll(async () => {
    report = await runPrecisionBench({ quick: true, batchSizes: [1, 8], runs: 2, requests: 16, concurrency: 8, imagesDir, log: () => {} });
    // what --json writes: the report must survive JSON unchanged in shape
    report = JSON.parse(JSON.stringify(report)) as PrecisionBenchReport;
  }, 120_000);

  it("has one row per precision with the settings it ran with", () => {
    expect(report.rows.map((r) => r.precision)).toEqual(["fp32", "fp16", "bf16", "int8"]);
    expect(report.settings).toMatchObject({ batchSizes: [1, 8], concurrency: 8, requests: 16, maxBatchSize: 64, batchTimeout: 0.01 });
    expect(report.settings.photos).toHaveLength(5);
    expect(report.quick).toBe(true);
  });

  it("reports bf16 as not runnable on the CPU with the missing Conv kernel, and still names its file", () => {
    const bf16 = row("bf16");
    expect(bf16.runnable).toBe(false);
    expect(bf16.reason).toMatch(/Could not find an implementation for Conv/);
    expect(bf16.error).toMatch(/Precision bf16 cannot run on CPUExecutionProvider/);
    expect(bf16.file).toMatch(/mobilenetv2-12-bf16\.onnx$/);
    expect(bf16.fileBytes).toBeGreaterThan(1e6);
    expect([bf16.memory, bf16.served, bf16.agreement]).toEqual([null, null, null]);
    expect(bf16.raw).toEqual([]);
  });

  it("measures every runnable precision: file, memory, raw batches, served requests", () => {
    for (const precision of ["fp32", "fp16", "int8"]) {
      const r = row(precision);
      expect(r.runnable, precision).toBe(true);
      expect(r.errors, precision).toEqual([]);
      // the file the server opens: the folder's, or for int8 batchwise's own quantized one where that failed the guard
      expect(r.file, precision).toMatch(new RegExp(`mobilenetv2-12-${precision}\\.onnx$|mobilenetv2-12-fp32\\.qdq-reduced-${precision}\\.[0-9a-f]+\\.onnx$`));
      expect(r.memory!.growthBytes, precision).toBeGreaterThan(0);
      expect(r.memory!.afterBatchRssBytes, precision).toBeGreaterThanOrEqual(r.memory!.sessionRssBytes);
      expect(r.raw.map((b) => b.batchSize), precision).toEqual([1, 8]);
      expect(r.raw.every((b) => b.imagesPerSecond > 0), precision).toBe(true);
      expect(r.served!.successes, precision).toBe(16);
      expect(r.served!.requestsPerSecond, precision).toBeGreaterThan(0);
    }
    // the int8 file is the quantized one: about a quarter of fp32's bytes
    expect(row("int8").fileBytes!).toBeLessThan(row("fp32").fileBytes! / 2);
  });

  it("fp32 agrees with itself exactly; int8 keeps every photo's top-1 class", () => {
    expect(row("fp32").agreement).toMatchObject({ photos: 5, top1Agree: 5, maxAbsProbDiff: 0 });
    const int8 = row("int8").agreement!;
    expect(int8.top1Agree).toBe(5);
    expect(int8.maxAbsProbDiff).toBeGreaterThan(0);
    expect(int8.maxAbsProbDiff).toBeLessThanOrEqual(0.05); // the int8 model served: the accuracy guard passed it
    expect(int8.top1.map((t) => t.label)).toEqual(row("fp32").agreement!.top1.map((t) => t.label));
    expect(row("fp16").agreement!.maxAbsProbDiff).toBeLessThan(0.05);
  });

  it("prints a table and builds a figure with no bars for bf16", () => {
    const table = formatPrecisionTable(report);
    expect(table).toMatch(/^fp32 +yes/m);
    expect(table).toMatch(/^bf16 +no/m);
    expect(table).toMatch(/bf16 does not run on this machine: Could not find an implementation for Conv/);
    const figure = precisionFigure(report);
    expect(figure.data.map((t) => t.name)).toEqual(["raw images/s (batch 8)", "served requests/s (8 clients)", "model file (MB)"]);
    const [raw, served, size] = figure.data as { y: (number | null)[] }[];
    expect(raw.y[2]).toBeNull();
    expect(served.y[2]).toBeNull();
    expect(size.y[2]).toBeGreaterThan(1);
    expect(raw.y[3]).toBe(row("int8").raw[1].imagesPerSecond);
    expect(JSON.stringify(figure.layout.annotations)).toContain("Conv");
  });
});
