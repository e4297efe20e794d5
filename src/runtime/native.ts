/**
 * The one place that loads the project's optional N-API addons (native/*.c, built into native/build/Release by
 * `npm run build:native` at install time). Each addon can be switched off with its environment variable set to "0";
 * when one is off, not built, or built for another Node ABI, its caller falls back to a JavaScript path that gives the
 * same answers, and `status` says why.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export interface NativeAddon<T> {
  /** The addon's exports, or undefined when it is not in use. */
  addon?: T;
  /** Why it is or is not in use: "loaded", "off (VAR=0)", "not built", or "failed to load: …". */
  status: string;
}

/** The built file of addon `name` (e.g. "jpeg_preprocess"): native/build/Release/<name>.node at the package root. */
function nativeAddonPath(name: string): string {
  // src/runtime/ and dist/runtime/ both sit two folders below the package root.
  return fileURLToPath(new URL(`../../native/build/Release/${name}.node`, import.meta.url));
}

/** Load addon `name` unless the environment variable `switchVar` is "0". */
export function loadNativeAddon<T>(name: string, switchVar: string): NativeAddon<T> {
  if (process.env[switchVar] === "0") return { status: `off (${switchVar}=0)` };
  const file = nativeAddonPath(name);
  if (!existsSync(file)) return { status: "not built" };
  try {
    return { addon: createRequire(import.meta.url)(file) as T, status: "loaded" };
  } catch (error) {
    return { status: `failed to load: ${(error as Error).message.split("\n")[0]}` };
  }
}
