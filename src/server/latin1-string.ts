/**
 * `latin1String(bytes, start, end)`: the bytes as a string, as `bytes.toString("latin1", start, end)` gives it.
 *
 * Where the optional native addon is built (native/latin1_string.c, by `npm run build:native` with the JPEG path), the
 * string is V8 "external": it reads the bytes in place instead of copying them into a fresh string, which for a string
 * over 128 KiB (a base64 image) means a fresh mapping whose pages fault in one by one — on a virtual machine that copy
 * cost more than the rest of the request's main-thread work. The bytes must not change while the string lives (the
 * addon keeps them alive). `printableAscii(bytes, start, end)` says whether a range may be such a string in JSON, natively
 * too (a vectorised loop). BATCHWISE_NATIVE_STRINGS=0 turns both off.
 */
import { loadNativeAddon } from "../runtime/native.js";

type Latin1String = (bytes: Uint8Array, start: number, end: number) => string;
type PrintableAscii = (bytes: Uint8Array, start: number, end: number) => boolean;

// Not loaded (off, not built, or built for another Node ABI): the fallbacks below give the same answers.
const native = loadNativeAddon<{ latin1String: Latin1String; printableAscii: PrintableAscii }>("latin1_string", "BATCHWISE_NATIVE_STRINGS").addon;

/** Whether strings are made over the bytes in place (the native addon) or copied. */
export const latin1StringsInPlace = native !== undefined;

export const latin1String: Latin1String =
  native?.latin1String ?? ((bytes, start, end) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1", start, end));

/** Every byte in [start, end) is 0x20–0x7f: printable ASCII, which may stand in a JSON string as it is. */
export const printableAscii: PrintableAscii =
  native?.printableAscii ??
  ((bytes, start, end) => {
    for (let i = start; i < end; i++) if (bytes[i] < 0x20 || bytes[i] >= 0x80) return false;
    return true;
  });
