/**
 * The accuracy guard: a reduced-precision model (int8, fp16, bf16) is served under `auto` only when it answers like
 * the fp32 model on calibration inputs — the same top-1 class for every input, and no class probability further
 * than {@link MAX_PROBABILITY_DIFFERENCE} from fp32's. Speed is worth nothing if the answer changes: int8 kernels
 * without VNNI, for one, saturate their 16-bit sums and turn an espresso into a consommé.
 */
import type { CalibrationBatch } from "./quantize-calibrate.js";
import type { Session } from "./onnx.js";

/** Largest |p_reduced − p_fp32| over every class of every calibration input that still counts as the same answer. */
export const MAX_PROBABILITY_DIFFERENCE = 0.05;

/** What a model-specific caller gives the guard: how to run a session on its calibration inputs. */
export interface AccuracyGuard {
  /** Probabilities [inputs × classes] the session gives for the calibration inputs. */
  probabilities(session: Session): Promise<Float32Array>;
  classes: number;
  /** What the inputs are, for messages: "5 photos in /models/images". */
  inputs: string;
  /** The same inputs as model input batches, for calibrating a model built by the quantizer. */
  calibration?: readonly CalibrationBatch[];
}

export interface Agreement {
  rows: number;
  /** Inputs whose top-1 class is the same as fp32's. */
  sameTop1: number;
  maxDifference: number;
  ok: boolean;
  /** "top-1 5/5, max |Δp| 0.026 vs fp32 on 5 photos in …" */
  summary: string;
}

/** Compare a candidate's probabilities with fp32's, row by row. */
export function compareProbabilities(reference: Float32Array, candidate: Float32Array, classes: number, inputs: string): Agreement {
  if (reference.length !== candidate.length || reference.length % classes !== 0) {
    throw new Error(`The guard compares equal shapes: ${reference.length} vs ${candidate.length} values of ${classes} classes`);
  }
  const rows = reference.length / classes;
  let sameTop1 = 0;
  let maxDifference = 0;
  for (let r = 0; r < rows; r++) {
    let [bestRef, bestCand] = [r * classes, r * classes];
    for (let i = r * classes; i < (r + 1) * classes; i++) {
      maxDifference = Math.max(maxDifference, Math.abs(reference[i] - candidate[i]));
      if (reference[i] > reference[bestRef]) bestRef = i;
      if (candidate[i] > candidate[bestCand]) bestCand = i;
    }
    if (bestRef === bestCand) sameTop1++;
  }
  const ok = sameTop1 === rows && maxDifference <= MAX_PROBABILITY_DIFFERENCE;
  const limit = maxDifference > MAX_PROBABILITY_DIFFERENCE ? ` > ${MAX_PROBABILITY_DIFFERENCE}` : "";
  return { rows, sameTop1, maxDifference, ok, summary: `top-1 ${sameTop1}/${rows}, max |Δp| ${maxDifference.toFixed(3)}${limit} vs fp32 on ${inputs}` };
}
