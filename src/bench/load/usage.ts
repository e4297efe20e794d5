import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mean } from "./stats.js";

/**
 * Samples resource use while a benchmark runs: CPU of given processes and of the whole machine from /proc, and GPU
 * utilisation and memory from `nvidia-smi` where one exists. "Not available" is `null`, never 0, so a chart or a
 * table cannot mistake a missing GPU for an idle one.
 *
 * Units: process CPU is in percent of ONE core (a server saturating 2 cores reads 200%), the way `top` shows it;
 * machine CPU is in percent of ALL cores (0–100). Worker threads belong to their process, so a server's workers are
 * included in its PID's figure.
 */

export interface UsagePoint {
  /** Seconds since the sampler started. */
  t: number;
  /** Per PID, percent of one core; null when the process could not be read (it exited). */
  processCpu: Record<string, number | null>;
  /** Per PID, resident memory of the process and its descendants in MiB; null when it could not be read. */
  processRssMiB?: Record<string, number | null>;
  /** Percent of all cores. */
  machineCpu: number | null;
  /** Mean over GPUs, percent; null without nvidia-smi. */
  gpuUtilization: number | null;
  /** Sum over GPUs, MiB; null without nvidia-smi. */
  gpuMemoryMiB: number | null;
}

export interface UsageReport {
  intervalMs: number;
  cores: number;
  /** Mean over the run, per PID (percent of one core). */
  processCpu: Record<string, number | null>;
  /** Peak over the run, per PID: resident memory of the process tree (a server and any child processes), MiB. */
  processPeakRssMiB: Record<string, number | null>;
  machineCpu: number | null;
  gpuUtilization: number | null;
  gpuMemoryMiB: number | null;
  /** Why the GPU figures are null, when they are. */
  gpuNote?: string;
  series: UsagePoint[];
}

const NVIDIA_SMI_QUERY = ["--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"];

/**
 * Start sampling now; call `stop()` for the report. Sampling runs on timers in the caller's (load generator's)
 * process: each point uses the actual time since the previous one, so a late timer skews nothing.
 */
export class UsageSampler {
  private readonly clockTicks = clockTicksPerSecond();
  private readonly cores: number;
  private readonly started = process.hrtime.bigint();
  private readonly series: UsagePoint[] = [];
  private readonly timer: NodeJS.Timeout;
  private previous: { at: bigint; procTicks: Map<number, number | null>; machine: MachineTicks | null };
  private gpu: GpuReader | null;

  constructor(
    private readonly pids: number[],
    private readonly intervalMs = 100,
  ) {
    const machine = readMachineTicks();
    this.cores = machine?.cores ?? 1;
    this.previous = { at: process.hrtime.bigint(), procTicks: this.readProcTicks(), machine };
    this.gpu = GpuReader.start(intervalMs);
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  stop(): UsageReport {
    clearInterval(this.timer);
    this.sample();
    const gpuNote = this.gpu ? this.gpu.failure() : "not available (nvidia-smi not found)";
    this.gpu?.stop();
    this.gpu = null;
    const average = (pick: (p: UsagePoint) => number | null): number | null => {
      const values = this.series.map(pick).filter((v): v is number => v !== null);
      return values.length ? mean(values) : null;
    };
    const processCpu: Record<string, number | null> = {};
    for (const pid of this.pids) processCpu[pid] = average((p) => p.processCpu[pid] ?? null);
    const processPeakRssMiB: Record<string, number | null> = {};
    for (const pid of this.pids) {
      const values = this.series.map((p) => p.processRssMiB?.[pid] ?? null).filter((v): v is number => v !== null);
      processPeakRssMiB[pid] = values.length ? Math.max(...values) : null;
    }
    const gpuUtilization = average((p) => p.gpuUtilization);
    return {
      intervalMs: this.intervalMs,
      cores: this.cores,
      processCpu,
      processPeakRssMiB,
      machineCpu: average((p) => p.machineCpu),
      gpuUtilization,
      gpuMemoryMiB: average((p) => p.gpuMemoryMiB),
      ...(gpuUtilization === null && gpuNote ? { gpuNote } : {}),
      series: this.series,
    };
  }

  private sample() {
    const at = process.hrtime.bigint();
    const seconds = Number(at - this.previous.at) / 1e9;
    if (seconds <= 0) return;
    const procTicks = this.readProcTicks();
    const machine = readMachineTicks();
    const processCpu: Record<string, number | null> = {};
    for (const pid of this.pids) {
      const now = procTicks.get(pid) ?? null;
      const before = this.previous.procTicks.get(pid) ?? null;
      processCpu[pid] = now === null || before === null ? null : ((now - before) / this.clockTicks / seconds) * 100;
    }
    let machineCpu: number | null = null;
    if (machine && this.previous.machine) {
      const total = machine.total - this.previous.machine.total;
      machineCpu = total > 0 ? ((machine.busy - this.previous.machine.busy) / total) * 100 : null;
    }
    const processRssMiB: Record<string, number | null> = {};
    for (const pid of this.pids) processRssMiB[pid] = readTreeRssMiB(pid);
    const gpu = this.gpu?.latest() ?? null;
    this.series.push({
      t: Number(at - this.started) / 1e9,
      processCpu,
      processRssMiB,
      machineCpu,
      gpuUtilization: gpu?.utilization ?? null,
      gpuMemoryMiB: gpu?.memoryMiB ?? null,
    });
    this.previous = { at, procTicks, machine };
  }

  private readProcTicks(): Map<number, number | null> {
    return new Map(this.pids.map((pid) => [pid, readProcessTicks(pid)]));
  }
}

/** Run `work` while sampling; returns its result and the usage report. */
export async function withUsage<T>(pids: number[], work: () => Promise<T>): Promise<{ result: T; usage: UsageReport }> {
  const sampler = new UsageSampler(pids);
  try {
    const result = await work();
    return { result, usage: sampler.stop() };
  } catch (error) {
    sampler.stop();
    throw error;
  }
}

/** utime + stime of a process in clock ticks (all its threads), or null when it cannot be read. */
function readProcessTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may contain spaces: split after the LAST ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state), so utime (field 14) and stime (field 15) are at 11 and 12.
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

/**
 * CPU time (utime + stime) of a process's main thread in µs — its task whose id is the pid, so worker threads and
 * libuv's pool do not count — or null when it cannot be read. What one HTTP thread can serve is bounded by it.
 */
export function readMainThreadCpuMicros(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / (ticksPerSecond ??= clockTicksPerSecond());
  } catch {
    return null;
  }
}

/**
 * Resident memory of a process and all its descendants (from /proc/<pid>/status VmRSS, children from
 * /proc/<pid>/task/<tid>/children), in MiB; null when the process cannot be read. Worker threads share their
 * process's memory, so a batchwise server's workers are in its own figure; child processes are added.
 */
export function readTreeRssMiB(pid: number): number | null {
  const own = readRssKiB(pid);
  if (own === null) return null;
  let kib = own;
  const seen = new Set([pid]);
  const stack = childPids(pid);
  while (stack.length) {
    const child = stack.pop()!;
    if (seen.has(child)) continue;
    seen.add(child);
    kib += readRssKiB(child) ?? 0;
    stack.push(...childPids(child));
  }
  return kib / 1024;
}

function readRssKiB(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

function childPids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
      try {
        return readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    });
  } catch {
    return [];
  }
}

interface MachineTicks {
  busy: number;
  total: number;
  cores: number;
}

/** Aggregate CPU ticks from /proc/stat's first line; idle includes iowait. Null off Linux. */
function readMachineTicks(): MachineTicks | null {
  try {
    const lines = readFileSync("/proc/stat", "utf8").split("\n");
    const [, ...values] = lines[0].trim().split(/\s+/);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = values.map(Number);
    const total = user + nice + system + idle + iowait + irq + softirq + steal;
    const cores = lines.filter((line) => /^cpu\d+ /.test(line)).length;
    return { busy: total - idle - iowait, total, cores };
  } catch {
    return null;
  }
}

let ticksPerSecond: number | undefined;

function clockTicksPerSecond(): number {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100; // the Linux default (USER_HZ) on every mainstream architecture
  }
}

/**
 * `nvidia-smi -lms N` keeps one process running and prints a line per GPU per interval: far cheaper than spawning
 * nvidia-smi every 100 ms (each start costs tens of milliseconds of CPU, which would pollute the CPU figures).
 */
class GpuReader {
  private current = new Map<number, { utilization: number; memoryMiB: number }>();
  private error: string | null = null;

  private constructor(private readonly child: ChildProcess) {
    let buffered = "";
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) this.parse(line);
    });
    child.on("error", (error) => (this.error = `not available (${error.message})`));
    child.on("exit", (code) => {
      if (code && !this.error) this.error = `not available (nvidia-smi exited with ${code})`;
    });
  }

  static start(intervalMs: number): GpuReader | null {
    if (!hasNvidiaSmi()) return null;
    const child = spawn("nvidia-smi", [...NVIDIA_SMI_QUERY, `-lms`, String(intervalMs)], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    child.unref();
    return new GpuReader(child);
  }

  latest(): { utilization: number; memoryMiB: number } | null {
    if (this.current.size === 0) return null;
    const gpus = [...this.current.values()];
    return {
      utilization: mean(gpus.map((g) => g.utilization)),
      memoryMiB: gpus.reduce((sum, g) => sum + g.memoryMiB, 0),
    };
  }

  failure(): string | undefined {
    return this.error ?? (this.current.size === 0 ? "not available (nvidia-smi printed no samples)" : undefined);
  }

  stop() {
    this.child.kill();
  }

  private parse(line: string) {
    const [index, utilization, memory] = line.split(",").map((s) => Number(s.trim()));
    // "[N/A]" fields (e.g. MIG slices report no utilisation) parse as NaN and are skipped, not read as 0.
    if (Number.isFinite(index) && Number.isFinite(utilization) && Number.isFinite(memory)) {
      this.current.set(index, { utilization, memoryMiB: memory });
    }
  }
}

let nvidiaSmiPresent: boolean | undefined;

/** True when `nvidia-smi` runs and lists at least one GPU. Cached: the answer does not change during a run. */
export function hasNvidiaSmi(): boolean {
  if (nvidiaSmiPresent === undefined) {
    try {
      nvidiaSmiPresent = execFileSync("nvidia-smi", ["-L"], { encoding: "utf8", timeout: 10_000 }).includes("GPU");
    } catch {
      nvidiaSmiPresent = false;
    }
  }
  return nvidiaSmiPresent;
}
