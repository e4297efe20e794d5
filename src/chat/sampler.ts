/**
 * Next-token choice for one sequence: greedy when temperature is 0, otherwise temperature + nucleus (top-p)
 * sampling from a seeded generator. Each sequence owns its sampler, so a seeded request draws the same numbers
 * whether it is generated alone or inside a batch.
 */

export interface SamplingParams {
  /** 0 = greedy (argmax). */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 = the whole distribution. */
  topP: number;
  /** Seed of the random generator; omitted = a fresh random seed. */
  seed?: number;
}

export class TokenSampler {
  private readonly random: () => number;

  constructor(readonly params: SamplingParams) {
    this.random = mulberry32(params.seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  /** Pick a token id from one row of logits. */
  next(logits: ArrayLike<number>): number {
    if (this.params.temperature <= 0) return argmax(logits);
    const probabilities = softmax(logits, this.params.temperature);
    if (this.params.topP >= 1) return drawIndex(probabilities, this.random());
    const candidates = nucleus(probabilities, this.params.topP);
    let mass = 0;
    for (const id of candidates) mass += probabilities[id];
    let threshold = this.random() * mass;
    for (const id of candidates) {
      threshold -= probabilities[id];
      if (threshold <= 0) return id;
    }
    // Rounding can leave a sliver of mass unassigned: it belongs to the last candidate.
    return candidates[candidates.length - 1];
  }
}

/** Inverse-CDF draw over a whole distribution (probabilities sum to 1). */
function drawIndex(probabilities: Float64Array, u: number): number {
  let threshold = u;
  for (let i = 0; i < probabilities.length; i++) {
    threshold -= probabilities[i];
    if (threshold <= 0) return i;
  }
  return probabilities.length - 1;
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function softmax(logits: ArrayLike<number>, temperature: number): Float64Array {
  const out = new Float64Array(logits.length);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    out[i] = Math.exp((logits[i] - max) / temperature);
    sum += out[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/**
 * The smallest set of most likely tokens whose probabilities add up to at least `topP`, most likely first.
 *
 * Sorting a whole vocabulary per token (49k entries for SmolLM2) would cost milliseconds per row per step. Instead,
 * one pass buckets tokens by how many halvings below the most likely token they are and sums each bucket's mass;
 * the buckets down to the first one that reaches `topP` hold every nucleus token (and only a few more), so only
 * those are sorted. The result is exactly the sorted-prefix definition.
 */
export function nucleus(probabilities: Float64Array, topP: number): number[] {
  let max = 0;
  for (let i = 0; i < probabilities.length; i++) max = Math.max(max, probabilities[i]);
  const buckets = 64;
  const bucketOf = (p: number) => (p <= 0 ? buckets - 1 : Math.min(buckets - 1, Math.floor(Math.log2(max / p))));
  const mass = new Float64Array(buckets);
  for (let i = 0; i < probabilities.length; i++) mass[bucketOf(probabilities[i])] += probabilities[i];
  let last = 0;
  for (let total = mass[0]; total < topP && last < buckets - 1; ) total += mass[++last];
  const candidates: number[] = [];
  for (let i = 0; i < probabilities.length; i++) if (bucketOf(probabilities[i]) <= last) candidates.push(i);
  candidates.sort((a, b) => probabilities[b] - probabilities[a] || a - b);
  let cumulative = 0;
  let count = 0;
  while (count < candidates.length && cumulative < topP) cumulative += probabilities[candidates[count++]];
  return candidates.slice(0, Math.max(1, count));
}

/** Small, fast, seedable 32-bit PRNG (Tommy Ettinger's mulberry32): reproducible across runs and platforms. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
