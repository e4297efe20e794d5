import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { figureHtml, plotlyScriptTag, type Figure } from "./plotly.js";

/**
 * PNG export through headless Chromium (Debian's `chromium`; `scripts/install-chromium.sh` installs it). Plotly's
 * own image export needs a browser too (kaleido bundles one); Chromium from apt is the one we can install offline.
 */

export class ChromiumNotFoundError extends Error {
  constructor() {
    super("PNG export needs Chromium: run scripts/install-chromium.sh (or set CHROMIUM_PATH); skipping PNG files");
    this.name = "ChromiumNotFoundError";
  }
}

let chromiumPath: string | null | undefined;

/** The Chromium binary: CHROMIUM_PATH, else the first of chromium / chromium-browser / google-chrome on PATH. */
export function findChromium(): string | null {
  if (chromiumPath !== undefined) return chromiumPath;
  const candidates = [process.env.CHROMIUM_PATH, "chromium", "chromium-browser", "google-chrome"].filter(
    (c): c is string => Boolean(c),
  );
  chromiumPath = null;
  for (const candidate of candidates) {
    try {
      execFileSync(candidate, ["--version"], { stdio: "ignore", timeout: 20_000 });
      chromiumPath = candidate;
      break;
    } catch {
      // not installed under this name
    }
  }
  return chromiumPath;
}

export interface PngOptions {
  width?: number;
  height?: number;
  /** Give up after this long (a wedged browser must not hang a benchmark run). Default 60 s. */
  timeoutMs?: number;
}

/**
 * Screenshot an HTML page to a PNG file. Throws ChromiumNotFoundError when no Chromium is installed. The flags are
 * the ones that keep headless Chromium offline and quiet in a container (no sandbox, no GPU, no background
 * networking), and a fresh profile directory per call so concurrent renders do not share a lock.
 */
export async function renderPng(html: string, file: string, options: PngOptions = {}): Promise<void> {
  const chromium = findChromium();
  if (!chromium) throw new ChromiumNotFoundError();
  const dir = await mkdtemp(path.join(os.tmpdir(), "batchwise-png-"));
  try {
    const page = path.join(dir, "page.html");
    await writeFile(page, html);
    const output = path.resolve(file);
    const args = [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--hide-scrollbars",
      `--user-data-dir=${path.join(dir, "profile")}`,
      `--window-size=${options.width ?? 1000},${options.height ?? 520}`,
      // Virtual time lets the page's timers (plotly's layout pass) finish before the screenshot, without waiting.
      "--virtual-time-budget=10000",
      `--screenshot=${output}`,
      pathToFileURL(page).href,
    ];
    await run(chromium, args, options.timeoutMs ?? 60_000);
    if (!(await stat(output).catch(() => null))?.size) throw new Error(`Chromium wrote no screenshot to ${output}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One figure alone on a white page, sized for a screenshot, then rendered to PNG. */
export async function renderFigurePng(figure: Figure, file: string, options: PngOptions = {}): Promise<void> {
  const height = options.height ?? 520;
  const html =
    `<!doctype html><html><head><meta charset="utf-8">${plotlyScriptTag()}` +
    `<style>body{margin:0;background:#fff}</style></head><body>` +
    `${figureHtml({ ...figure, layout: { ...figure.layout, autosize: true } }, "figure", { height, modeBar: false })}</body></html>`;
  await renderPng(html, file, { ...options, height });
}

function run(command: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${command} exited with ${signal ?? code}: ${stderr.trim().split("\n").pop() ?? ""}`));
    });
  });
}
