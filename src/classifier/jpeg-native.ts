/**
 * The optional native JPEG path (native/jpeg_preprocess.c, built by `npm run build:native` at install time when
 * libjpeg-turbo's headers are present, e.g. Debian's libturbojpeg0-dev): decode at a DCT scale, resample the centre
 * crop to 8-bit RGB planes — one call on the libuv pool, about half of sharp's cost for a camera JPEG (docs/performance.md).
 * Without the built addon, or with BATCHWISE_NATIVE_JPEG=0, preprocessing uses sharp alone; `nativeJpegStatus` says
 * which and why (in the classifier's /info).
 */
import { loadNativeAddon } from "../runtime/native.js";

export interface NativeJpeg {
  /** plan = [resizedWidth, resizedHeight, cropLeft, cropTop, cropSize]; out gets cropSize² × 3 bytes (CHW); rejects if it cannot decode. */
  preprocess(jpeg: Uint8Array, out: Uint8Array, plan: Float64Array): Promise<void>;
}

function load(): { addon?: NativeJpeg; status: string } {
  const { addon, status } = loadNativeAddon<NativeJpeg>("jpeg_preprocess", "BATCHWISE_NATIVE_JPEG");
  if (addon) return { addon, status: "libjpeg-turbo with DCT scaling (native)" };
  if (status === "not built") return { status: "sharp (native JPEG path not built: install libturbojpeg0-dev, then npm run build:native)" };
  if (status.startsWith("off")) return { status: "sharp (native JPEG path off: BATCHWISE_NATIVE_JPEG=0)" };
  return { status: `sharp (native JPEG path ${status})` };
}

const loaded = load();
export const nativeJpeg: NativeJpeg | undefined = loaded.addon;
/** Which JPEG decoder preprocessing uses, and why. */
export const nativeJpegStatus: string = loaded.status;
