/**
 * What the classifier checks a reduced-precision model on (and calibrates batchwise's own int8 model with): sample
 * photos, preprocessed exactly as requests are. Photos are looked for in the model folder's `calibration/`, then in
 * an `images/` folder beside the models folder (where this project's sample photos sit). Without photos there is no
 * check: synthetic images give near-uniform class probabilities, on which every int8 model "differs" from fp32 (the
 * Model Zoo file: top-1 2 of 4, max |Δp| 0.28 on four patterns), so they would refuse what real photos accept.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import path from "node:path";
import { CROP_SIZE, IMAGE_VALUES, normalize, preprocessLevels } from "./image-preprocess.js";

export interface ClassifierCalibration {
  /** The photos as the worker's batch takes them: the crops' 8-bit RGB planes. */
  images: Uint8Array[];
  /** "5 photos in images/" (no absolute path: /info is public). */
  description: string;
}

const PHOTO = /\.(jpe?g|png|webp)$/i;
const MAX_PHOTOS = 8;

/** The calibration photos of a model folder, or undefined when there are none. */
export async function classifierCalibration(modelDir: string): Promise<ClassifierCalibration | undefined> {
  const real = existsSync(modelDir) ? realpathSync(modelDir) : modelDir;
  for (const dir of [path.join(real, "calibration"), path.join(path.dirname(real), "..", "images")]) {
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => PHOTO.test(f)).sort().slice(0, MAX_PHOTOS) : [];
    if (files.length === 0) continue;
    const images = await Promise.all(files.map((f) => preprocessLevels(readFileSync(path.join(dir, f)))));
    return { images, description: `${files.length} photos in ${path.basename(dir)}/` };
  }
  return undefined;
}

/** The calibration images as one model input batch [N, 3, 224, 224]. */
export function calibrationBatch(images: readonly Uint8Array[]): { data: Float32Array; dims: number[] } {
  const data = new Float32Array(images.length * IMAGE_VALUES);
  images.forEach((image, i) => data.set(normalize(image), i * IMAGE_VALUES));
  return { data, dims: [images.length, 3, CROP_SIZE, CROP_SIZE] };
}
