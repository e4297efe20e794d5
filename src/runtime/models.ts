/**
 * Model resolution: an explicit path, else a folder `<BATCHWISE_MODELS_DIR>/<id>` (default `data/models`), else a
 * download of the files `data/models.json` lists for that id (sha256-checked). Offline, resolution fails fast with
 * a message that says where it looked and how to get the files.
 */
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";

interface ManifestFile {
  name: string;
  /** Where a user with internet access downloads it; absent for files derived locally. */
  url?: string;
  repo?: string;
  revision?: string;
  path?: string;
  sha256: string;
  size: number;
  /** How to make a file that has no download. */
  derive?: string;
}

export interface ManifestEntry {
  task: string;
  description: string;
  files: ManifestFile[];
}

export interface ResolvedModel {
  /** The id, or the folder name for a path. */
  id: string;
  /** Folder holding the model files. */
  dir: string;
  /** Set when the user pointed at one .onnx file rather than a folder. */
  file?: string;
  origin: "path" | "models-dir" | "downloaded";
}

export interface ResolveOptions {
  modelsDir?: string;
  /** Try the manifest's URLs when the folder is missing (default: on, unless BATCHWISE_OFFLINE=1). */
  download?: boolean;
  manifest?: Record<string, ManifestEntry>;
}

export class ModelNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelNotFoundError";
  }
}

export function modelsDir(): string {
  return path.resolve(process.env.BATCHWISE_MODELS_DIR ?? path.join("data", "models"));
}

/** The project's data/models.json, found by walking up from this module (works from src/ and from dist/). */
export function loadManifest(): Record<string, ManifestEntry> {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, "data", "models.json");
    if (existsSync(candidate)) return (JSON.parse(readFileSync(candidate, "utf8")) as { models: Record<string, ManifestEntry> }).models;
    const parent = path.dirname(dir);
    if (parent === dir) return {};
    dir = parent;
  }
}

const ID_PATTERN = /^[A-Za-z0-9][\w.-]*(?:\/[A-Za-z0-9][\w.-]*)?$/;

function looksLikePath(value: string): boolean {
  return path.isAbsolute(value) || value.startsWith("./") || value.startsWith("../") || value.endsWith(".onnx");
}

/** Resolve a model id or path to a folder of model files; downloads listed ids when allowed. */
export async function resolveModel(idOrPath: string, options: ResolveOptions = {}): Promise<ResolvedModel> {
  if (typeof idOrPath !== "string" || idOrPath.trim() === "") throw new ModelNotFoundError("Model id or path is empty");
  if (looksLikePath(idOrPath)) {
    const full = path.resolve(idOrPath);
    if (!existsSync(full)) throw new ModelNotFoundError(`Model path ${full} does not exist`);
    return statSync(full).isDirectory()
      ? { id: path.basename(full), dir: full, origin: "path" }
      : { id: path.basename(full, ".onnx"), dir: path.dirname(full), file: full, origin: "path" };
  }
  const root = path.resolve(options.modelsDir ?? modelsDir());
  if (!ID_PATTERN.test(idOrPath) || idOrPath.split("/").includes("..")) {
    throw new ModelNotFoundError(
      `"${idOrPath}" is not a valid model id (letters, digits, ".", "_", "-", at most one "/"); pass a path starting with ./ or / for a folder elsewhere`,
    );
  }
  const dir = path.join(root, idOrPath);
  if (path.relative(root, dir).startsWith("..")) throw new ModelNotFoundError(`Model id "${idOrPath}" escapes ${root}`);
  if (existsSync(dir)) return { id: idOrPath, dir, origin: "models-dir" };

  const manifest = options.manifest ?? loadManifest();
  const entry = manifest[idOrPath];
  if (!entry) {
    throw new ModelNotFoundError(
      `Model "${idOrPath}" not found: no folder ${dir} (BATCHWISE_MODELS_DIR=${root}) and no entry in data/models.json ` +
        `(known ids: ${Object.keys(manifest).join(", ") || "none"}). Put the model files in that folder or pass a path.`,
    );
  }
  const download = options.download ?? process.env.BATCHWISE_OFFLINE !== "1";
  if (!download) throw new ModelNotFoundError(`Model "${idOrPath}" not found in ${dir}, and downloads are off (BATCHWISE_OFFLINE=1). ${howToGet(idOrPath, true)}`);
  try {
    await downloadModel(entry, dir);
  } catch (error) {
    throw new ModelNotFoundError(`Model "${idOrPath}" not found in ${dir}, and downloading it failed: ${(error as Error).message}. ${howToGet(idOrPath, false)}`);
  }
  return { id: idOrPath, dir, origin: "downloaded" };
}

/**
 * What a package user can do about a missing model, in one sentence that fits a few terminal lines (a worker's
 * setup error travels as one line) and names nothing the package lacks.
 */
function howToGet(id: string, offline: boolean): string {
  return (
    `To serve it: ${offline ? "unset BATCHWISE_OFFLINE to download it, " : ""}put its files there (names and URLs: data/models.json in the ` +
    `batchwise package), set BATCHWISE_MODELS_DIR to a folder that holds ${id}/, or pass a model file or folder (--model ./model.onnx, or \`model\` in code).`
  );
}

/** Download every file with a url into `dir` (the folder appears only once all files are verified). */
async function downloadModel(entry: ManifestEntry, dir: string): Promise<void> {
  const staging = `${dir}.partial-${process.pid}-${randomBytes(4).toString("hex")}`;
  mkdirSync(staging, { recursive: true });
  try {
    for (const file of entry.files) {
      if (file.url) await downloadFile({ url: file.url, dest: path.join(staging, file.name), sha256: file.sha256, size: file.size });
    }
    try {
      renameSync(staging, dir);
    } catch (error) {
      // another worker finished the same download first: its copy is as good as ours
      if (!existsSync(dir)) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

export interface DownloadSpec {
  url: string;
  dest: string;
  sha256: string;
  size?: number;
  /** Give up when the server has not answered within this many ms (default 15 s): offline must fail fast. */
  connectTimeoutMs?: number;
}

/** Stream a URL to a temp file beside `dest`, hashing on the way; rename into place only when sha256 matches. */
export async function downloadFile(spec: DownloadSpec): Promise<void> {
  const temp = `${spec.dest}.download-${randomBytes(4).toString("hex")}`;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), spec.connectTimeoutMs ?? 15_000);
  let response: Response;
  try {
    response = await fetch(spec.url, { signal: controller.signal, redirect: "follow" });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`cannot reach ${spec.url} (${cause?.code ?? cause?.message ?? (error as Error).message})`);
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok || !response.body) throw new Error(`GET ${spec.url} answered ${response.status} ${response.statusText}`);
  const hash = createHash("sha256");
  let bytes = 0;
  try {
    const body = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream<Uint8Array>);
    body.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    await pipeline(body, createWriteStream(temp));
    const digest = hash.digest("hex");
    if (spec.size !== undefined && bytes !== spec.size) {
      throw new Error(`${spec.url}: got ${bytes} bytes, expected ${spec.size}`);
    }
    if (digest !== spec.sha256.toLowerCase()) {
      throw new Error(`${spec.url}: sha256 ${digest} does not match the expected ${spec.sha256}`);
    }
    renameSync(temp, spec.dest);
  } finally {
    rmSync(temp, { force: true });
  }
}
