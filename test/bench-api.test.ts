import { mkdtemp, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { formatApiTable, runApiBench } from "../src/bench/runs/api-bench.js";
import { runBenchCli } from "../src/bench/cli.js";
import { formatOverheadTable, runOverhead } from "../src/bench/runs/overhead.js";
import { startServerProcess, type ServerProcess } from "../src/bench/servers/server-process.js";
import { hasNvidiaSmi } from "../src/bench/load/usage.js";
import { describeCpu } from "../src/runtime/cpu-features.js";
import { noopApi } from "./fixtures/noop-api.js";
import { imagesDir } from "./helpers/paths.js";

// A real batchwise server in its own process (as every benchmark runs it), serving the no-op model with batching on,
// so the test exercises HTTP, the batcher and a worker thread without model time.
let server: ServerProcess;

beforeAll(async () => {
  server = await startServerProcess({
    kind: "batchwise",
    options: { api: noopApi(), maxBatchSize: 8, batchTimeout: 0.005, workersPerDevice: 1 },
  });
});

afterAll(async () => {
  await server?.stop();
});

describe("bench api against a batchwise server in a child process", () => {
  it("reports every level with latencies, errors and the server's CPU", async () => {
    expect(server.pid).not.toBe(process.pid);
    const report = await runApiBench({
      url: server.url,
      concurrency: [1, 8],
      requests: 40,
      // at least 8 waves per level: c=8 sends 64 requests, c=1 still 40
      waves: 8,
      imagesDir,
      serverPid: server.pid,
      warmupRequests: 4,
    });
    const roundTripped = JSON.parse(JSON.stringify(report)) as typeof report;
    expect(roundTripped.levels.map((l) => l.concurrency)).toEqual([1, 8]);
    expect(roundTripped.levels.map((l) => l.requests)).toEqual([40, 64]);
    expect(roundTripped.body).toBe("json");
    for (const level of roundTripped.levels) {
      // the server process (a Node runtime with a worker thread) is resident: tens of MiB at least
      expect(level.usage.serverRssMiB!).toBeGreaterThan(20);
      expect(level.successes + level.errorCount).toBe(level.requests);
      expect(level.errorCount).toBe(0);
      expect(level.requestsPerSecond).toBeGreaterThan(0);
      expect(level.latencyMs.p50).toBeGreaterThan(0);
      expect(level.latencyMs.p50).toBeLessThanOrEqual(level.latencyMs.p99);
      expect(level.latencyMs.count).toBe(level.successes);
      // The server worked, so its process used CPU; the figure is a number, not "not available".
      expect(typeof level.usage.serverCpu).toBe("number");
      expect(level.usage.serverCpu!).toBeGreaterThan(0);
      // per request: the process's CPU over the level's requests, and its main thread's share of it (from /proc)
      expect(level.usage.serverCpuMicrosPerRequest!).toBeCloseTo(((level.usage.serverCpu! / 100) * level.wallSeconds * 1e6) / level.requests, 6);
      expect(level.usage.mainThreadCpuMicrosPerRequest!).toBeGreaterThanOrEqual(0);
      expect(level.usage.series.length).toBeGreaterThan(0);
      if (!hasNvidiaSmi()) {
        expect(level.usage.gpuUtilization).toBeNull();
        expect(level.usage.gpuMemoryMiB).toBeNull();
        expect(level.usage.gpuNote).toMatch(/not available/);
      }
    }
    const table = formatApiTable(report);
    expect(table).toMatch(/^concurrency\s+requests\s+req\/s/);
    expect(table).toContain("server RSS MiB");
    expect(table.split("\n").length).toBeGreaterThanOrEqual(4);
  });

  it("counts rejected requests as errors: a wrong path is a 404 for every request", async () => {
    const report = await runApiBench({ url: server.url, path: "/nope", concurrency: [4], requests: 12, bodies: [Buffer.from("{}")], warmupRequests: 0 });
    const [level] = report.levels;
    expect(level.successes).toBe(0);
    expect(level.errors).toEqual({ "404": 12 });
    expect(level.successes + level.errorCount).toBe(12);
    expect(level.firstError).toContain("not_found");
  });

  it("runs from the CLI and writes --json", async () => {
    const file = path.join(await mkdtemp(path.join(os.tmpdir(), "bench-api-")), "api.json");
    const printed: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((line: string) => void printed.push(line));
    try {
      await runBenchCli(["api", "--url", server.url, "--concurrency", "2", "--requests", "10", "--images", imagesDir, "--server-pid", String(server.pid), "--json", file]);
    } finally {
      log.mockRestore();
    }
    // the CPU line comes before the table, so a figure copied from the output carries its machine
    expect(printed[0]).toBe(`CPU: ${describeCpu()}`);
    expect(printed[1]).toMatch(/^concurrency\s+requests/);
    const written = JSON.parse(await readFile(file, "utf8"));
    expect(written.machine.cpu).toBe(describeCpu());
    expect(written.levels).toHaveLength(1);
    expect(written.levels[0].successes + written.levels[0].errorCount).toBe(10);
  });

  it("rejects an unknown bench kind and bad flags with a clear message", async () => {
    await expect(runBenchCli(["nonsense"])).rejects.toThrow(/unknown bench kind "nonsense"/);
    await expect(runBenchCli(["api", "--concurrency", "x"])).rejects.toThrow(/whole number/);
    await expect(runBenchCli(["api", "--body", "base64"])).rejects.toThrow('--body must be one of json, binary, got "base64"');
    await expect(runBenchCli(["pipeline", "--precision", "fp64"])).rejects.toThrow(/--precision must be one of auto, fp32, .*got "fp64"/);
  });
});

describe("bench overhead", () => {
  it("measures the no-op model and a bare fastify echo at each level, each in its own process", async () => {
    const report = await runOverhead({ concurrency: [1, 8], requests: 200 });
    expect(report.rows.map((r) => r.concurrency)).toEqual([1, 8]);
    for (const row of report.rows) {
      expect(row.batchwise.errors).toBe(0);
      expect(row.bareFastify.errors).toBe(0);
      expect(row.batchwise.requestsPerSecond).toBeGreaterThan(0);
      expect(row.bareFastify.requestsPerSecond).toBeGreaterThan(0);
      expect(row.throughputRatio).toBeCloseTo(row.batchwise.requestsPerSecond / row.bareFastify.requestsPerSecond, 6);
      // CPU per request of both servers, measured in the same run: their ratio is what the suite's target reads
      expect(typeof row.batchwise.cpuMicrosPerRequest).toBe("number");
      expect(typeof row.bareFastify.cpuMicrosPerRequest).toBe("number");
      if (row.bareFastify.cpuMicrosPerRequest! > 0) expect(row.cpuRatio).toBeCloseTo(row.batchwise.cpuMicrosPerRequest! / row.bareFastify.cpuMicrosPerRequest!, 6);
    }
    expect(formatOverheadTable(report)).toContain("bare fastify req/s");
  });
});
