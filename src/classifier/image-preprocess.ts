/**
 * Image preprocessing for ImageNet classifiers: base64 (JPEG/PNG/WebP) → validated bytes → float32 NCHW
 * [3,224,224] the way torchvision does it (RGB, resize the short side to 256 bilinear, centre crop 224, /255,
 * ImageNet mean/std).
 *
 * It happens in two steps: {@link preprocessLevels} makes the crop's 8-bit RGB planes (what the decoders produce,
 * a quarter of the float tensor's bytes), {@link normalizeInto} turns them into the model's floats. The classifier
 * keeps images as levels until its worker copies them into the model input, so each queued image costs 147 KiB
 * instead of 588 KiB of fresh memory; {@link preprocessImage} does both steps at once.
 *
 * Speed matters here: on a small machine decoding, not the model, bounds served images/s. JPEGs go to the native
 * path when it is built ({@link nativeJpeg}: libjpeg-turbo decodes at a DCT scale, e.g. 768×576 at 384×288, then one
 * C pass resamples the crop to 8-bit planes — about half of sharp's cost); anything it cannot decode, and every PNG
 * and WebP, takes the sharp path, which
 *  - drops JPEG APPn metadata segments (EXIF, XMP, ICC, Photoshop) before sharp sees the bytes: libvips parses them
 *    on every load (~1 ms for a typical camera JPEG) and the pixels do not depend on them (no auto-rotation here);
 *    the same walk over the header reads the frame size, which saves sharp's separate metadata call (~0.5 ms);
 *  - ignores ICC profiles like PIL/torchvision do (the colour transform alone costs ~10 ms per photo);
 *  - lets sharp shrink JPEGs on load when the image is at least 3× the target (libjpeg DCT scaling);
 *  - turns the 224×224 HWC uint8 crop into CHW planes in one typed-array loop.
 * `referencePreprocess` is the straight pipeline (full decode, no shortcuts) that tests and the bench compare with.
 */
import sharp, { type Metadata, type Sharp } from "sharp";
import { BadRequestError } from "../api/model-api.js";
import { nativeJpeg } from "./jpeg-native.js";

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
const RESIZE_SHORT_SIDE = 256;
export const CROP_SIZE = 224;
/** Values per preprocessed image: 3 × 224 × 224. */
export const IMAGE_VALUES = 3 * CROP_SIZE * CROP_SIZE;
/** Default pixel limit (width × height from the header): 40 MP, e.g. 8000 × 5000. */
export const DEFAULT_MAX_PIXELS = 40_000_000;

type ImageFormat = "jpeg" | "png" | "webp";

/** Decode `{"image": base64}`'s value to the model input. Throws BadRequestError for anything a client got wrong. */
export async function preprocessBase64(value: unknown, maxPixels = DEFAULT_MAX_PIXELS): Promise<Float32Array> {
  return preprocessImage(decodeBase64Image(value), maxPixels);
}

/** Bytes (already base64-decoded) → normalised NCHW float32 [3,224,224]. */
export async function preprocessImage(bytes: Buffer, maxPixels = DEFAULT_MAX_PIXELS): Promise<Float32Array> {
  return normalize(await preprocessLevels(bytes, maxPixels));
}

/** Validate the string and turn it into bytes. A `data:image/...;base64,` prefix is accepted. */
export function decodeBase64Image(value: unknown): Buffer {
  if (value === undefined || value === null) {
    throw new BadRequestError('Missing "image": send {"image": "<base64 JPEG, PNG or WebP>"}', "missing_image");
  }
  if (typeof value !== "string") {
    throw new BadRequestError(`"image" must be a base64 string, got ${Array.isArray(value) ? "an array" : typeof value}`, "invalid_image_type");
  }
  let text = value;
  if (text.startsWith("data:")) {
    const comma = text.indexOf(",");
    if (comma < 0 || !/;base64$/i.test(text.slice(0, comma))) {
      throw new BadRequestError('A data: URL must look like "data:image/jpeg;base64,<data>"', "invalid_base64");
    }
    text = text.slice(comma + 1);
  }
  if (text.trim() === "") throw new BadRequestError('"image" is empty', "empty_image");
  const bytes = Buffer.from(text, "base64");
  // Buffer.from silently skips characters that are not base64, which would turn typos into "not an image". The
  // length check is free; the regex (0.3 ms for a 200 KB photo) only runs when it fails, to allow whitespace.
  if (bytes.length !== Buffer.byteLength(text, "base64") && !/^[A-Za-z0-9+/\-_\s]*={0,2}\s*$/.test(text)) {
    throw new BadRequestError('"image" is not valid base64 (characters outside A-Z a-z 0-9 + / = found)', "invalid_base64");
  }
  if (bytes.length === 0) throw new BadRequestError('"image" decodes to zero bytes', "empty_image");
  return bytes;
}

/** The format from the magic bytes; only formats that cannot reference other files or run scripts are accepted. */
function sniffFormat(bytes: Uint8Array): ImageFormat {
  const ascii = (start: number, end: number) => Buffer.from(bytes.subarray(start, end)).toString("latin1");
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  if (bytes.length >= 8 && ascii(0, 8) === "\x89PNG\r\n\x1a\n") return "png";
  if (bytes.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
  const other = otherImageFormat(bytes, ascii);
  if (other) {
    throw new BadRequestError(`Unsupported image format ${other}: send JPEG, PNG or WebP`, "unsupported_image_format");
  }
  throw new BadRequestError("The data is not an image (expected JPEG, PNG or WebP)", "not_an_image");
}

function otherImageFormat(bytes: Uint8Array, ascii: (s: number, e: number) => string): string | undefined {
  const head = ascii(0, Math.min(bytes.length, 512)).trimStart().toLowerCase();
  if (head.startsWith("<svg") || (head.startsWith("<?xml") && head.includes("<svg"))) return "SVG";
  if (head.startsWith("gif8")) return "GIF";
  if (head.startsWith("ii*\0") || head.startsWith("mm\0*")) return "TIFF";
  if (ascii(4, 8) === "ftyp") return "HEIF/AVIF";
  if (head.startsWith("bm")) return "BMP";
  if (head.startsWith("%pdf")) return "PDF";
  return undefined;
}

/** Bytes (already base64-decoded) → the centre crop as 8-bit RGB planes (CHW, 3 × 224 × 224), before normalising. */
export async function preprocessLevels(bytes: Buffer, maxPixels = DEFAULT_MAX_PIXELS): Promise<Uint8Array> {
  const format = sniffFormat(bytes);
  const jpeg = format === "jpeg" ? scanJpeg(bytes) : undefined;
  const { width, height } = checkedSize(jpeg?.size ?? (await headerSize(bytes, format)), maxPixels);
  const plan = resizePlan(width, height);
  if (nativeJpeg && format === "jpeg") {
    const out = new Uint8Array(IMAGE_VALUES);
    // libjpeg-turbo skips metadata segments as it reads, so the bytes go as they came (no copy without them).
    // A JPEG the native decoder refuses (truncated, CMYK, …) goes on to sharp, which decodes it or names the problem.
    const done = await nativeJpeg.preprocess(bytes, out, nativePlan(plan)).then(() => true, () => false);
    if (done) return out;
  }
  const input = jpeg?.withoutMetadata() ?? bytes;
  try {
    // failOn "warning" (sharp's default) because libjpeg reports a truncated file only as a warning
    return await resizeCrop(sharp(input, { ignoreIcc: true, limitInputPixels: maxPixels, failOn: "warning" }), plan);
  } catch (error) {
    throw decodeError(error, format, input);
  }
}

/**
 * The straight pipeline the fast path is checked against: full-size decode (no shrink-on-load, metadata kept),
 * sharp `linear` resize of the short side to 256, centre crop, ICC ignored like PIL.
 */
export async function referencePreprocess(bytes: Buffer): Promise<Float32Array> {
  // decode to raw pixels first: a resize in the same pipeline may shrink on load even with fastShrinkOnLoad: false
  const full = await sharp(bytes, { ignoreIcc: true }).removeAlpha().raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  const plan = resizePlan(full.info.width, full.info.height);
  const raw = { width: full.info.width, height: full.info.height, channels: full.info.channels };
  return normalize(await resizeCrop(sharp(full.data, { raw }), plan));
}

/** sharp `linear` resize to the plan's size, centre crop, RGB bytes → CHW planes. */
async function resizeCrop(image: Sharp, plan: ResizePlan): Promise<Uint8Array> {
  const { data, info } = await image
    .resize(plan.width, plan.height, { kernel: "linear", fit: "fill" })
    .extract({ left: plan.left, top: plan.top, width: CROP_SIZE, height: CROP_SIZE })
    .removeAlpha()
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  return hwcToChw(data, info.channels);
}

function nativePlan(plan: ResizePlan): Float64Array {
  return new Float64Array([plan.width, plan.height, plan.left, plan.top, CROP_SIZE]);
}

/** Width and height from the header (PNG IHDR, WebP VP8/VP8L/VP8X) without decoding any pixel. */
async function headerSize(bytes: Buffer, format: ImageFormat): Promise<{ width: number; height: number }> {
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw decodeError(error, format, bytes);
  }
  if (meta.format !== format) throw new BadRequestError(`The data is not a valid ${format.toUpperCase()} image`, "invalid_image");
  if (!meta.width || !meta.height) throw new BadRequestError("The image header has no size", "invalid_image");
  return { width: meta.width, height: meta.height };
}

/** Reject decompression bombs by their header size, before any pixel is decoded. */
function checkedSize(size: { width: number; height: number }, maxPixels: number): { width: number; height: number } {
  const { width, height } = size;
  if (width * height > maxPixels) {
    throw new BadRequestError(
      `The image is ${width}×${height} = ${width * height} pixels, over the limit of ${maxPixels}; send a smaller image`,
      "image_too_large",
      413,
    );
  }
  return size;
}

function decodeError(error: unknown, format: ImageFormat, bytes?: Uint8Array): BadRequestError {
  if (error instanceof BadRequestError) return error;
  const message = String((error as Error)?.message ?? error);
  // A JPEG that fails to decode and does not end with its end-of-image marker was cut short. The check does not rely
  // on libvips's message, which under concurrent decodes is sometimes only "Warning treated as error".
  const cutShort = format === "jpeg" && bytes !== undefined && !(bytes.at(-2) === 0xff && bytes.at(-1) === 0xd9);
  if (cutShort || /premature end|truncat|end of (?:stream|file|data)|unexpected end|not enough data|read error|EOF/i.test(message)) {
    return new BadRequestError(`The ${format.toUpperCase()} image is truncated or incomplete`, "truncated_image");
  }
  if (/pixel limit/i.test(message)) {
    return new BadRequestError("The image has more pixels than the limit", "image_too_large", 413);
  }
  return new BadRequestError(`The ${format.toUpperCase()} image could not be decoded: it is corrupt`, "invalid_image");
}

export interface ResizePlan {
  /** Size after resizing the short side to 256 (torchvision rounds the long side down). */
  width: number;
  height: number;
  /** Top-left of the centre crop (torchvision: round((size − 224) / 2), halves to even). */
  left: number;
  top: number;
}

export function resizePlan(width: number, height: number): ResizePlan {
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const resizedLong = Math.max(RESIZE_SHORT_SIDE, Math.floor((RESIZE_SHORT_SIDE * long) / short));
  const [w, h] = width <= height ? [RESIZE_SHORT_SIDE, resizedLong] : [resizedLong, RESIZE_SHORT_SIDE];
  return { width: w, height: h, left: roundHalfEven((w - CROP_SIZE) / 2), top: roundHalfEven((h - CROP_SIZE) / 2) };
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

const SCALE = IMAGENET_STD.map((std) => 1 / (255 * std));
const OFFSET = IMAGENET_MEAN.map((mean, c) => mean / IMAGENET_STD[c]);

/**
 * CHW levels → normalised CHW float32, (v/255 − mean)/std, written into `into` (e.g. one item's slot in a batch
 * input). The loop is unrolled by hand: V8 does not vectorise, and eight values per iteration run at about twice
 * the speed of one (a lookup table is slower than the multiply).
 */
export function normalizeInto(levels: Uint8Array, into: Float32Array): void {
  const plane = CROP_SIZE * CROP_SIZE;
  if (levels.length !== IMAGE_VALUES || into.length < IMAGE_VALUES) {
    throw new Error(`normalizeInto takes ${IMAGE_VALUES} levels into as many floats, got ${levels.length} into ${into.length}`);
  }
  for (let c = 0; c < 3; c++) {
    const s = SCALE[c];
    const o = OFFSET[c];
    const end = (c + 1) * plane;
    let i = c * plane;
    for (; i + 8 <= end; i += 8) {
      into[i] = levels[i] * s - o;
      into[i + 1] = levels[i + 1] * s - o;
      into[i + 2] = levels[i + 2] * s - o;
      into[i + 3] = levels[i + 3] * s - o;
      into[i + 4] = levels[i + 4] * s - o;
      into[i + 5] = levels[i + 5] * s - o;
      into[i + 6] = levels[i + 6] * s - o;
      into[i + 7] = levels[i + 7] * s - o;
    }
    for (; i < end; i++) into[i] = levels[i] * s - o;
  }
}

/** CHW levels → a new normalised CHW float32 array. */
export function normalize(levels: Uint8Array): Float32Array {
  const out = new Float32Array(IMAGE_VALUES);
  normalizeInto(levels, out);
  return out;
}

/** HWC uint8 (1 or 3 channels) → CHW uint8 planes. */
export function hwcToChw(data: Uint8Array, channels: number): Uint8Array {
  const plane = CROP_SIZE * CROP_SIZE;
  const out = new Uint8Array(IMAGE_VALUES);
  if (channels === 3) {
    for (let i = 0, j = 0; i < plane; i++, j += 3) {
      out[i] = data[j];
      out[plane + i] = data[j + 1];
      out[2 * plane + i] = data[j + 2];
    }
  } else if (channels === 1) {
    // greyscale: PIL's convert("RGB") copies the grey value to all three channels
    const grey = data.subarray(0, plane);
    out.set(grey, 0);
    out.set(grey, plane);
    out.set(grey, 2 * plane);
  } else {
    throw new BadRequestError(`Images with ${channels} colour channels are not supported`, "unsupported_image_format");
  }
  return out;
}

/**
 * One walk over a JPEG's header segments, up to the first scan: the frame size (from the SOF segment, so no
 * separate metadata call is needed), and a way to get a copy without APPn metadata segments (EXIF, XMP, ICC, IPTC)
 * and comments, for sharp, which would otherwise parse them. APP0 (JFIF) and APP14 (Adobe, which says how to
 * interpret the colour channels) stay. Malformed markers leave the bytes as they are and the size unknown: the
 * decoder then reports the problem.
 */
export function scanJpeg(bytes: Buffer): { size?: { width: number; height: number }; withoutMetadata: () => Buffer } {
  const keep: Buffer[] = [bytes.subarray(0, 2)];
  let size: { width: number; height: number } | undefined;
  let dropped = false;
  let i = 2;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) break;
    const marker = bytes[i + 1];
    if (marker === 0xff) {
      i += 1; // fill byte
      continue;
    }
    if (marker === 0xda) {
      keep.push(bytes.subarray(i));
      return { size, withoutMetadata: () => (dropped ? Buffer.concat(keep) : bytes) };
    }
    const length = bytes.readUInt16BE(i + 2);
    if (length < 2) break;
    const isFrameHeader = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrameHeader && i + 9 <= bytes.length) {
      const height = bytes.readUInt16BE(i + 5); // 0 means "defined later by a DNL marker": let sharp read it
      const width = bytes.readUInt16BE(i + 7);
      if (width > 0 && height > 0) size = { width, height };
    }
    const metadata = (marker >= 0xe1 && marker <= 0xed) || marker === 0xef || marker === 0xfe;
    if (metadata) dropped = true;
    else keep.push(bytes.subarray(i, i + 2 + length));
    i += 2 + length;
  }
  return { withoutMetadata: () => bytes };
}
