/**
 * The optional native JPEG path (native/jpeg_preprocess.c, built by `npm run build:native` at install time when
 * libjpeg-turbo's headers are present, e.g. Debian's libturbojpeg0-dev): decode at a DCT scale, resample the centre
 * crop to 8-bit RGB planes — one call on the libuv pool, about half of sharp's cost for a camera JPEG (README, Performance).
 * Without the built addon, or with BATCHWISE_NATIVE_JPEG=0, preprocessing uses sharp alone; `nativeJpegStatus` says
 * which and why (in the classifier's /info).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export interface NativeJpeg {
  /** plan = [resizedWidth, resizedHeight, cropLeft, cropTop, cropSize]; out gets cropSize² × 3 bytes (CHW); rejects if it cannot decode. */
  preprocess(jpeg: Uint8Array, out: Uint8Array, plan: Float64Array): Promise<void>;
}

const addonPath = fileURLToPath(new URL("../../native/build/Release/jpeg_preprocess.node", import.meta.url));

function load(): { addon?: NativeJpeg; status: string } {
  if (process.env.BATCHWISE_NATIVE_JPEG === "0") return { status: "sharp (native JPEG path off: BATCHWISE_NATIVE_JPEG=0)" };
  if (!existsSync(addonPath)) return { status: "sharp (native JPEG path not built: install libturbojpeg0-dev, then npm run build:native)" };
  try {
    return { addon: createRequire(import.meta.url)(addonPath) as NativeJpeg, status: "libjpeg-turbo with DCT scaling (native)" };
  } catch (error) {
    return { status: `sharp (native JPEG path failed to load: ${(error as Error).message.split("\n")[0]})` };
  }
}

const loaded = load();
export const nativeJpeg: NativeJpeg | undefined = loaded.addon;
/** Which JPEG decoder preprocessing uses, and why. */
export const nativeJpegStatus: string = loaded.status;
