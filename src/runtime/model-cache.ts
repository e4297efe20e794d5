/**
 * Model files batchwise derives from another (converted to fp16/bf16, quantized to int8) are cached next to the
 * source, or in BATCHWISE_CACHE_DIR (default ~/.cache/batchwise) when the model folder is read-only, named by a hash
 * of the source bytes and of how the file was derived, so a changed source never reuses a stale file.
 */
import { createHash, randomBytes } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/**
 * The path of the file derived from `source` by `derive`, deriving (and caching) it on first use. `recipe` names
 * the derivation and its version: it is part of the file name's hash.
 */
export async function derivedModelFile(
  source: string,
  suffix: string,
  recipe: string,
  derive: (bytes: Uint8Array) => Uint8Array | Promise<Uint8Array>,
): Promise<string> {
  const bytes = readFileSync(source);
  const key = createHash("sha256").update(bytes).update(`\0${recipe}`).digest("hex").slice(0, 16);
  const name = `${path.basename(source, ".onnx")}.${suffix}.${key}.onnx`;
  const dir = writable(path.dirname(source)) ? path.dirname(source) : cacheDir();
  const file = path.join(dir, name);
  if (existsSync(file)) return file;
  const derived = await derive(bytes);
  mkdirSync(dir, { recursive: true });
  const temp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    writeFileSync(temp, derived);
    renameSync(temp, file); // atomic: a parallel worker deriving the same model reads a whole file or none
  } finally {
    rmSync(temp, { force: true });
  }
  return file;
}

function cacheDir(): string {
  return path.resolve(process.env.BATCHWISE_CACHE_DIR ?? path.join(os.homedir(), ".cache", "batchwise"));
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    // root passes access() on any folder: a folder without write bits is read-only by intent (shared models)
    return (statSync(dir).mode & 0o222) !== 0;
  } catch {
    return false;
  }
}
