import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { availableCores } from "../runtime/device.js";
import { machineInfo, machineSummary, type MachineInfo } from "./load/machine.js";

/**
 * What every tutorial notebook needs before its first measurement, in one place instead of a block copied into each
 * notebook: where the models and photos are, where results go, quick mode, the machine, and how busy it is.
 */
export interface NotebookEnvironment {
  /** `BATCHWISE_QUICK=1`: fewer requests and runs, the same shape (CI runs the notebooks this way). */
  quick: boolean;
  /** The models folder (also set as BATCHWISE_MODELS_DIR, which the library reads). */
  modelsDir: string;
  /** The sample photos folder. */
  imagesDir: string;
  /** Image file names in imagesDir, sorted. */
  photos: string[];
  /** Where notebooks save their numbers for the next notebook (`out/` beside the notebook). */
  outDir: string;
  machine: MachineInfo;
  cores: number;
  /** The machine in one line, e.g. "AMD EPYC … · 2 cores · 7.7 GiB · Node 20 · no GPU". */
  summary: string;
  /** The JSON an earlier notebook saved in outDir, or null when that notebook has not run. */
  readPrevious(file: string): any;
  /** Save `data` as JSON in outDir (for the next notebook), an object stamped with the time and load; returns the path. */
  save(file: string, data: unknown): string;
}

/**
 * Find the models and photos, set BATCHWISE_MODELS_DIR when it is unset, create the output folder, read quick mode.
 * Folders: BATCHWISE_MODELS_DIR / BATCHWISE_IMAGES_DIR when set; else `shared/models` and `shared/images` beside
 * the project (this repository's layout); else the project's `data/models` and `data/images`.
 *
 * @example
 * ```ts
 * import { notebookEnvironment, busyWarning } from "batchwise/bench";
 * const env = notebookEnvironment();
 * console.log(env.summary, "·", busyWarning(), "· quick mode:", env.quick);
 * ```
 */
export function notebookEnvironment(options: { outDir?: string } = {}): NotebookEnvironment {
  const roots = projectRoots();
  const shared = roots.map((root) => path.resolve(root, "..", "shared"));
  const pick = (env: string | undefined, candidates: string[]) => env ?? candidates.find((dir) => existsSync(dir)) ?? candidates[candidates.length - 1];
  const modelsDir = pick(process.env.BATCHWISE_MODELS_DIR, [...shared.map((s) => path.join(s, "models")), ...roots.map((r) => path.join(r, "data", "models"))]);
  process.env.BATCHWISE_MODELS_DIR ??= modelsDir;
  const imagesDir = pick(process.env.BATCHWISE_IMAGES_DIR, [...shared.map((s) => path.join(s, "images")), ...roots.map((r) => path.join(r, "data", "images"))]);
  const outDir = path.resolve(options.outDir ?? "out");
  mkdirSync(outDir, { recursive: true });
  const photos = existsSync(imagesDir) ? readdirSync(imagesDir).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort() : [];
  const machine = machineInfo();
  return {
    quick: process.env.BATCHWISE_QUICK === "1",
    modelsDir,
    imagesDir,
    photos,
    outDir,
    machine,
    cores: availableCores(),
    summary: machineSummary(machine),
    readPrevious: (file) => readPrevious(file, outDir),
    save(file, data) {
      const target = path.join(outDir, file);
      // How busy the machine was when these numbers were taken: steps measured minutes apart on a shared machine
      // can differ because of the load alone, and the sequence table says so.
      const stamped = data !== null && typeof data === "object" && !Array.isArray(data)
        ? { ...data, savedAt: new Date().toISOString(), loadAverage1m: os.loadavg()[0], cores: availableCores() }
        : data;
      writeFileSync(target, JSON.stringify(stamped, null, 2));
      return target;
    },
  };
}

/** The JSON file `file` in `outDir` (default `out`), or null when it does not exist yet. */
export function readPrevious(file: string, outDir = "out"): any {
  const target = path.resolve(outDir, file);
  return existsSync(target) ? JSON.parse(readFileSync(target, "utf8")) : null;
}

/**
 * The 1-minute load average against the cores, with a warning when other work is running: on a shared machine a
 * benchmark's numbers include whatever else was busy, and the reader should know.
 */
export function busyWarning(): string {
  const load = os.loadavg()[0];
  const cores = availableCores();
  return load > cores
    ? `⚠ the machine is busy (load ${load.toFixed(1)} on ${cores} cores): other work is in these numbers`
    : `load ${load.toFixed(1)} on ${cores} cores`;
}

/**
 * GET a URL and parse its JSON body. (In tslab a nested top-level `await (await fetch(u)).json()` is mis-compiled;
 * a function call is not.)
 */
export async function getJson(url: string): Promise<any> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status} ${(await response.text()).slice(0, 300)}`);
  return response.json();
}

/** GET a URL and return its body as text, whatever the status (e.g. `/health` answering 503 says why). */
export async function getText(url: string): Promise<string> {
  return (await fetch(url)).text();
}

/** Levels without their usage time series: what a notebook saves for the next one (the series are large). */
export function withoutSeries<L extends { usage: { series?: unknown } }>(levels: L[]): L[] {
  return levels.map((level) => ({ ...level, usage: { ...level.usage, series: undefined } }));
}

/** Candidate project roots: the notebook's parent folder (the kernel runs in notebooks/), then this package's root. */
function projectRoots(): string[] {
  const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  return [...new Set([path.resolve(".."), packageRoot])];
}
