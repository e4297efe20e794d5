/**
 * Turning 1000 ImageNet probabilities into what a client sees: the seed's Cat/Dog/Other summary, or the top-k
 * ImageNet class names.
 */
import { readFileSync } from "node:fs";
import path from "node:path";

export type LabelMode = "cat-dog" | "imagenet";
export const LABEL_MODES: readonly LabelMode[] = ["cat-dog", "imagenet"];

export interface Prediction {
  label: string;
  probability: number;
}

/** ImageNet class ids (torchvision order, 0-based) of the 118 dog breeds and the 5 domestic cats. */
const DOG_IDS = { first: 151, last: 268 } as const;
const CAT_IDS = { first: 281, last: 285 } as const;

/** Cat = mass of the cat ids, Dog = mass of the dog ids, Other = everything else; sorted by probability. */
export function catDogOther(probabilities: ArrayLike<number>): Prediction[] {
  let dog = 0;
  let cat = 0;
  let total = 0;
  for (let i = 0; i < probabilities.length; i++) {
    const p = probabilities[i];
    total += p;
    if (i >= DOG_IDS.first && i <= DOG_IDS.last) dog += p;
    else if (i >= CAT_IDS.first && i <= CAT_IDS.last) cat += p;
  }
  return sortByProbability([
    { label: "Cat", probability: cat },
    { label: "Dog", probability: dog },
    { label: "Other", probability: Math.max(0, total - cat - dog) },
  ]);
}

/** The k most probable classes with their names. */
export function topK(probabilities: ArrayLike<number>, names: readonly string[], k: number): Prediction[] {
  // Sorted insertion into the k best so far: one comparison for most classes, and no re-sorting (re-sorting on every
  // insert made k = 1000 cost milliseconds per image).
  const best: Prediction[] = [];
  for (let i = 0; i < probabilities.length; i++) {
    const p = probabilities[i];
    if (best.length === k && p <= best[k - 1].probability) continue;
    let at = best.length;
    while (at > 0 && best[at - 1].probability < p) at--;
    best.splice(at, 0, { label: names[i] ?? `class ${i}`, probability: p });
    if (best.length > k) best.pop();
  }
  return best;
}

function sortByProbability(predictions: Prediction[]): Prediction[] {
  return predictions.sort((a, b) => b.probability - a.probability);
}

/** Class names, one per line, line i = class i (`imagenet_classes.txt` in the model folder). */
export function loadClassNames(modelDir: string, file = "imagenet_classes.txt"): string[] {
  const full = path.join(modelDir, file);
  let text: string;
  try {
    text = readFileSync(full, "utf8");
  } catch {
    throw new Error(`labels "imagenet" needs the class names file ${full} (one name per line, line i = class i)`);
  }
  return text.split(/\r?\n/).filter((line, i, all) => line !== "" || i < all.length - 1);
}

/** Softmax of each row of a [rows, classes] logit matrix, in place, numerically stable. */
export function softmaxRows(logits: Float32Array, classes: number): Float32Array {
  for (let start = 0; start < logits.length; start += classes) {
    let max = -Infinity;
    for (let i = start; i < start + classes; i++) if (logits[i] > max) max = logits[i];
    let sum = 0;
    for (let i = start; i < start + classes; i++) {
      const e = Math.exp(logits[i] - max);
      logits[i] = e;
      sum += e;
    }
    for (let i = start; i < start + classes; i++) logits[i] /= sum;
  }
  return logits;
}
