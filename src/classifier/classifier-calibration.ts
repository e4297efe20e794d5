/**
 * What the classifier checks a reduced-precision model on (and calibrates batchwise's own int8 model with): sample
 * photos, preprocessed exactly as requests are. Photos are looked for in the model folder's `calibration/`, then in
 * an `images/` folder beside the models folder (where this project's sample photos sit). Without photos, a few
 * synthetic images stand in: enough to catch a precision that breaks the model, too few to calibrate one.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import path from "node:path";
import { CROP_SIZE, IMAGE_VALUES, normalize, preprocessLevels } from "./image-preprocess.js";

export interface ClassifierCalibration {
  /** The inputs as the worker's batch takes them: the crops' 8-bit RGB planes. */
  images: Uint8Array[];
  /** "5 photos in images/" or "4 synthetic images". */
  description: string;
  /** Whether the inputs are real photos, which a quantizer may calibrate on. */
  photos: boolean;
}

const PHOTO = /\.(jpe?g|png|webp)$/i;
const MAX_PHOTOS = 8;

export async function classifierCalibration(modelDir: string): Promise<ClassifierCalibration> {
  const real = existsSync(modelDir) ? realpathSync(modelDir) : modelDir;
  for (const dir of [path.join(real, "calibration"), path.join(path.dirname(real), "..", "images")]) {
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => PHOTO.test(f)).sort().slice(0, MAX_PHOTOS) : [];
    if (files.length === 0) continue;
    const images = await Promise.all(files.map((f) => preprocessLevels(readFileSync(path.join(dir, f)))));
    return { images, description: `${files.length} photos in ${path.basename(dir)}/` /* no absolute path: /info is public */, photos: true };
  }
  return { images: syntheticImages(), description: "4 synthetic images (no sample photos found)", photos: false };
}

/** The calibration images as one model input batch [N, 3, 224, 224]. */
export function calibrationBatch(images: readonly Uint8Array[]): { data: Float32Array; dims: number[] } {
  const data = new Float32Array(images.length * IMAGE_VALUES);
  images.forEach((image, i) => data.set(normalize(image), i * IMAGE_VALUES));
  return { data, dims: [images.length, 3, CROP_SIZE, CROP_SIZE] };
}

/** Gradients, stripes and a disc in strong colours: deterministic inputs with photo-like ranges of values. */
function syntheticImages(): Uint8Array[] {
  const plane = CROP_SIZE * CROP_SIZE;
  const pattern = (value: (x: number, y: number, channel: number) => number) => {
    const out = new Uint8Array(IMAGE_VALUES);
    for (let c = 0; c < 3; c++) for (let y = 0; y < CROP_SIZE; y++) for (let x = 0; x < CROP_SIZE; x++) out[c * plane + y * CROP_SIZE + x] = value(x, y, c);
    return out;
  };
  const r = CROP_SIZE / 2;
  return [
    pattern((x, y, c) => [x, y, 255 - x][c]),
    pattern((x, y, c) => ((Math.floor(x / 16) + Math.floor(y / 16)) % 2 ? [230, 200, 40][c] : [20, 40, 120][c])),
    pattern((x, y, c) => ((x - r) ** 2 + (y - r) ** 2 < (r * 0.6) ** 2 ? [200, 60, 30][c] : [90 + y / 4, 140, 60][c])),
    pattern((x, y, c) => Math.round(127.5 + 127.5 * Math.sin((x + 2 * y) / (7 + 5 * c)))),
  ];
}
