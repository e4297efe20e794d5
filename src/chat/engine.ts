/**
 * Batched token generation with a manual decode loop over the model's key/value cache.
 *
 * All sequences being generated share ONE forward pass per step: the cache is a single tensor per layer of shape
 * [rows, kvHeads, length, headDim] where each row's tokens are right-aligned (left padding) and the attention mask
 * hides the padding. Rows enter and leave between steps:
 *
 * - new prompts are prefilled together (left-padded to the longest), then merged into the running cache;
 * - a finished, aborted or failed row is dropped and the cache is re-laid out, trimming padding no row needs.
 *
 * So a short answer never waits for a long one, and a prompt that arrives while others are generating (another
 * predict call on the same worker) joins the running batch at the next step instead of waiting for it to end
 * (continuous batching). Each row keeps its own positions, sampler and detokenizer, so its output does not depend
 * on what else is in the batch (up to float rounding in the matrix products).
 */
import { Tensor } from "@huggingface/transformers";
import type { ChatStep, FinishReason, OutputFormat } from "./types.js";
import { TokenSampler, type SamplingParams } from "./sampler.js";
import { StreamingDetokenizer, type Decode } from "./text.js";

/** What one sequence asks for. Token ids are plain numbers so the request crosses threads cheaply. */
export interface GenerationRequest {
  promptIds: number[];
  /** Already clipped to what fits in the context window. */
  maxTokens: number;
  sampling: SamplingParams;
  stop: string[];
  /** Restrict the output (JSON object / JSON Schema) by constrained decoding; undefined = free text. */
  format?: OutputFormat;
}

/**
 * Chooses a sequence's tokens under a constraint (see constrained-sampler.ts). Its token texts are the output
 * text, so what the client receives is exactly what the constraint checked.
 */
export interface TokenConstraint {
  /** The next token from one row of logits, with `remaining` tokens of budget (this one included). */
  next(logits: Float32Array, sampler: TokenSampler, remaining: number): number;
  text(id: number): string;
  /** The output is a complete value (nothing more is needed). */
  complete(): boolean;
}

/** The part of a transformers.js causal LM the loop drives: one forward pass with explicit inputs. */
export interface CausalLM {
  forward(inputs: Record<string, Tensor>): Promise<Record<string, Tensor>>;
}

export interface EngineConfig {
  eosTokenIds: ReadonlySet<number>;
  padTokenId: number;
  decode: Decode;
  /** The constraint for a request's output format (undefined: unconstrained). */
  constrain?: (format: OutputFormat | undefined) => TokenConstraint | undefined;
}

type StepBatch = (ChatStep | undefined)[];

/** A KV cache for all running rows: tensors keyed by model input name, `length` positions per row. */
interface BatchCache {
  tensors: Record<string, Tensor>;
  length: number;
}

class Sequence {
  generated = 0;
  lastToken = -1;
  /** Leading padding positions of this row in the shared cache. */
  pad = 0;
  done = false;
  readonly sampler: TokenSampler;
  readonly text: StreamingDetokenizer;

  constructor(
    readonly request: GenerationRequest,
    readonly signal: AbortSignal,
    readonly owner: StepStream,
    readonly index: number,
    decode: Decode,
    readonly constraint: TokenConstraint | undefined,
  ) {
    this.sampler = new TokenSampler(request.sampling);
    const own = constraint ? (ids: number[]) => ids.map((id) => constraint.text(id)).join("") : decode;
    this.text = new StreamingDetokenizer(own, request.stop);
  }
}

export class GenerationEngine {
  private running: Sequence[] = [];
  private joining: Sequence[] = [];
  private cache: BatchCache | null = null;
  private loop: Promise<void> | null = null;

  constructor(private readonly model: CausalLM, private readonly config: EngineConfig) {}

  /**
   * Generate every request; yields one array per step with an entry per request (undefined when that request has
   * nothing new this step). Each request's last entry carries its finishReason and usage. A request whose signal
   * aborts stops generating at the next step and gets no further entries.
   */
  generate(requests: GenerationRequest[], signals: AbortSignal[]): AsyncIterable<StepBatch> {
    const stream = new StepStream(requests.length, () => {
      for (const sequence of [...this.running, ...this.joining]) if (sequence.owner === stream) sequence.done = true;
    });
    // Built before any is queued: a schema the constraint cannot compile fails this call, not the running batch.
    const constraints = requests.map((request) => this.config.constrain?.(request.format));
    requests.forEach((request, i) =>
      this.joining.push(new Sequence(request, signals[i], stream, i, this.config.decode, constraints[i])),
    );
    this.loop ??= this.run().finally(() => (this.loop = null));
    return stream;
  }

  private async run(): Promise<void> {
    while (this.running.length > 0 || this.joining.length > 0) {
      // Let abort messages and new predict calls in between two forward passes.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const involved = [...this.running, ...this.joining];
      try {
        await this.retireAborted();
        if (this.joining.length > 0) await this.prefill(this.joining.splice(0));
        else if (this.running.length > 0) await this.decodeStep();
      } catch (error) {
        // A failed forward pass leaves no usable cache: every sequence in it fails with the error.
        for (const sequence of involved) sequence.owner.fail(error);
        this.running = [];
        this.cache = null;
      }
      for (const owner of new Set(this.running.map((s) => s.owner))) owner.flush();
    }
    this.cache = null;
  }

  /** Run the prompts of newly arrived sequences, sample their first tokens, merge them into the batch. */
  private async prefill(sequences: Sequence[]): Promise<void> {
    const live = sequences.filter((s) => !s.signal.aborted && !s.done);
    for (const s of sequences) {
      if (live.includes(s)) continue;
      s.owner.retire(s.index);
      s.owner.flush();
    }
    if (live.length === 0) return;
    // Sequences with the same prompt (a request's n choices) share one prefill row: its cache row is copied to each.
    const { unique, rowOf } = sharedPrompts(live);
    const width = Math.max(...live.map((s) => s.request.promptIds.length));
    const ids = new BigInt64Array(unique.length * width).fill(BigInt(this.config.padTokenId));
    const mask = new BigInt64Array(unique.length * width);
    const positions = new BigInt64Array(unique.length * width);
    for (const s of live) s.pad = width - s.request.promptIds.length;
    unique.forEach((s, row) => {
      const prompt = s.request.promptIds;
      for (let j = 0; j < prompt.length; j++) {
        const at = row * width + s.pad + j;
        ids[at] = BigInt(prompt[j]);
        mask[at] = 1n;
        positions[at] = BigInt(j);
      }
    });
    const out = await this.model.forward({
      input_ids: new Tensor("int64", ids, [unique.length, width]),
      attention_mask: new Tensor("int64", mask, [unique.length, width]),
      position_ids: new Tensor("int64", positions, [unique.length, width]),
    });
    const prefilled: BatchCache = { tensors: presentToPast(out), length: width };
    this.sampleAndEmit(live, out.logits, rowOf);
    for (const s of live) if (s.done) s.owner.flush();

    const rows = [
      ...this.running.map((s, row) => ({ sequence: s, cache: this.cache!, row })),
      ...live.map((s, i) => ({ sequence: s, cache: prefilled, row: rowOf[i] })).filter((r) => !r.sequence.done),
    ];
    await this.relayout(rows);
  }

  /** One token for every running row. */
  private async decodeStep(): Promise<void> {
    const cache = this.cache!;
    const count = this.running.length;
    const total = cache.length + 1;
    const ids = new BigInt64Array(count);
    const mask = new BigInt64Array(count * total);
    const positions = new BigInt64Array(count);
    this.running.forEach((s, row) => {
      ids[row] = BigInt(s.lastToken);
      mask.fill(1n, row * total + s.pad, (row + 1) * total);
      positions[row] = BigInt(cache.length - s.pad);
    });
    const out = await this.model.forward({
      input_ids: new Tensor("int64", ids, [count, 1]),
      attention_mask: new Tensor("int64", mask, [count, total]),
      position_ids: new Tensor("int64", positions, [count, 1]),
      // Under this key: transformers.js fills any cache input it does not find there with an empty one.
      past_key_values: cache.tensors as unknown as Tensor,
    });
    const next: BatchCache = { tensors: presentToPast(out), length: total };
    this.sampleAndEmit(this.running, out.logits);
    const finished = this.running.filter((s) => s.done);
    for (const s of finished) s.owner.flush();
    if (finished.length === 0) {
      this.cache = next;
      return;
    }
    const rows = this.running.map((sequence, row) => ({ sequence, cache: next, row }));
    await this.relayout(rows.filter((r) => !r.sequence.done));
  }

  /** Sample the next token of each sequence from its row's last-position logits (`rows[i]`, default i) and turn it into text. */
  private sampleAndEmit(sequences: Sequence[], logits: Tensor, rows?: number[]): void {
    const [, length, vocab] = logits.dims as number[];
    const data = logits.data as Float32Array;
    sequences.forEach((s, i) => {
      const row = rows ? rows[i] : i;
      const offset = (row * length + length - 1) * vocab;
      const scores = data.subarray(offset, offset + vocab);
      const token = s.constraint ? s.constraint.next(scores, s.sampler, s.request.maxTokens - s.generated) : s.sampler.next(scores);
      this.accept(s, token);
    });
  }

  private accept(s: Sequence, token: number): void {
    s.generated++;
    s.lastToken = token;
    let text = "";
    let finishReason: FinishReason | undefined;
    if (this.config.eosTokenIds.has(token)) {
      finishReason = "stop";
      text = s.text.flush();
    } else {
      const delta = s.text.push(token);
      text = delta.text;
      if (delta.stopped) finishReason = "stop";
      else if (s.generated >= s.request.maxTokens) {
        // A constrained output completed exactly by its last allowed token is whole: it stopped, nothing was cut.
        finishReason = s.constraint?.complete() ? "stop" : "length";
        text += s.text.flush();
      }
    }
    if (finishReason) {
      s.done = true;
      s.owner.set(s.index, {
        text,
        finishReason,
        usage: { promptTokens: s.request.promptIds.length, completionTokens: s.generated },
      });
      s.owner.retire(s.index);
    } else if (text) {
      s.owner.set(s.index, { text });
    }
  }

  /** Drop rows whose client went away before spending another step on them. */
  private async retireAborted(): Promise<void> {
    const aborted = this.running.filter((s) => s.signal.aborted || s.done);
    if (aborted.length === 0) return;
    for (const s of aborted) s.owner.retire(s.index);
    const rows = this.running.map((sequence, row) => ({ sequence, cache: this.cache!, row }));
    await this.relayout(rows.filter((r) => !aborted.includes(r.sequence)));
    for (const owner of new Set(aborted.map((s) => s.owner))) owner.flush();
  }

  /**
   * Build the batch cache for `rows` (each taken from some cache at some row): every row's real positions are
   * copied right-aligned into a cache just long enough for the longest row. This both merges freshly prefilled
   * rows with running ones and compacts away finished rows and padding columns nobody needs any more.
   */
  private async relayout(rows: { sequence: Sequence; cache: BatchCache; row: number }[]): Promise<void> {
    this.running = rows.map((r) => r.sequence);
    if (rows.length === 0) {
      this.cache = null;
      return;
    }
    const lengths = rows.map((r) => r.cache.length - r.sequence.pad);
    const length = Math.max(...lengths);
    const tensors: Record<string, Tensor> = {};
    for (const name of Object.keys(rows[0].cache.tensors)) {
      const [, heads, , width] = rows[0].cache.tensors[name].dims as number[];
      const template = rows[0].cache.tensors[name];
      const data = new (template.data.constructor as Float32ArrayConstructor)(rows.length * heads * length * width);
      const sources = await Promise.all(rows.map((r) => cpuData(r.cache.tensors[name])));
      rows.forEach((r, to) => {
        const src = sources[to];
        const real = lengths[to];
        for (let h = 0; h < heads; h++) {
          const from = ((r.row * heads + h) * r.cache.length + r.sequence.pad) * width;
          data.set(src.subarray(from, from + real * width), ((to * heads + h) * length + length - real) * width);
        }
      });
      tensors[name] = new Tensor(template.type, data, [rows.length, heads, length, width]);
    }
    rows.forEach((r, i) => (r.sequence.pad = length - lengths[i]));
    this.cache = { tensors, length };
  }
}

/** The distinct prompts of `sequences` (first sequence of each), and for each sequence the row of its prompt. */
function sharedPrompts(sequences: Sequence[]): { unique: Sequence[]; rowOf: number[] } {
  const unique: Sequence[] = [];
  const byPrompt = new Map<string, number>();
  const rowOf = sequences.map((s) => {
    const key = s.request.promptIds.join(",");
    let row = byPrompt.get(key);
    if (row === undefined) {
      row = unique.length;
      byPrompt.set(key, row);
      unique.push(s);
    }
    return row;
  });
  return { unique, rowOf };
}

/**
 * A tensor's values on the CPU. On WebGPU, transformers.js keeps `present.*` outputs in GPU buffers (so the next
 * step can feed them back without a copy); re-laying out rows needs them here.
 */
async function cpuData(tensor: Tensor): Promise<Float32Array> {
  if (tensor.location === "cpu") return tensor.data as Float32Array;
  return (await tensor.ort_tensor.getData()) as Float32Array;
}

/** The model's `present.*` outputs renamed to the `past_key_values.*` inputs of the next step. */
function presentToPast(outputs: Record<string, Tensor>): Record<string, Tensor> {
  const past: Record<string, Tensor> = {};
  for (const [name, tensor] of Object.entries(outputs)) {
    if (name.startsWith("present")) past[name.replace("present", "past_key_values")] = tensor;
  }
  return past;
}

/**
 * The step arrays of one generate() call, as an async iterable. The engine fills the current step with `set`,
 * publishes it with `flush`, and `retire`s each request when it is finished or aborted; the stream ends when all
 * are retired.
 */
class StepStream implements AsyncIterable<StepBatch> {
  private current: StepBatch;
  private dirty = false;
  private readonly ready: StepBatch[] = [];
  private remaining: number;
  private readonly retired: boolean[];
  private error: unknown = null;
  private wake: (() => void) | null = null;

  constructor(private readonly size: number, private readonly onReturn: () => void) {
    this.current = new Array(size).fill(undefined);
    this.remaining = size;
    this.retired = new Array(size).fill(false);
  }

  set(index: number, step: ChatStep): void {
    this.current[index] = step;
    this.dirty = true;
  }

  retire(index: number): void {
    if (this.retired[index]) return;
    this.retired[index] = true;
    this.remaining--;
  }

  flush(): void {
    if (this.dirty) {
      this.ready.push(this.current);
      this.current = new Array(this.size).fill(undefined);
      this.dirty = false;
    }
    this.notify();
  }

  fail(error: unknown): void {
    this.error ??= error;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StepBatch> {
    try {
      for (;;) {
        if (this.ready.length > 0) {
          yield this.ready.shift()!;
          continue;
        }
        if (this.error) throw this.error;
        if (this.remaining === 0) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      // The consumer stopped early (e.g. the worker gave up on this batch): stop generating for it.
      if (this.remaining > 0) this.onReturn();
    }
  }
}
