/**
 * Constrained decoding: at each step, only tokens whose text keeps the output a prefix of a value matching the
 * schema (json-schema-constraint.ts) may be sampled; the rest of the logits are masked to -Infinity before the
 * ordinary sampler (greedy or temperature/top-p) picks.
 *
 * Cost control:
 * - every token's text is computed once per model ({@link TokenVocabulary}), and tokens are grouped by their first
 *   character, so a state that allows few characters (after a value: `,` `}` or whitespace) rejects whole groups
 *   with one check;
 * - masks are cached per automaton state ({@link stateKey}): the state inside a string is the same object after
 *   every plain character, so a long string value costs one mask;
 * - a compiled schema and its mask cache are shared by all requests with the same schema ({@link ConstraintCache}).
 *
 * Budget: when the tokens left are no more than the characters of the shortest completion, only tokens that are a
 * prefix of that completion are allowed (every ASCII character is a token in byte-fallback and byte-level
 * vocabularies), and a sampled token that would make the completion longer than the budget left is refused and
 * sampling repeats. So the output parses whenever max_tokens leaves room for the shortest matching value.
 */
import type { TokenConstraint } from "../engine.js";
import type { OutputFormat } from "../types.js";
import { argmax, TokenSampler } from "../sampler.js";
import {
  canEnd,
  compileSchema,
  completion,
  feed,
  initialState,
  isDone,
  stateKey,
  type JsonState,
  type SchemaNode,
} from "./json-schema-constraint.js";

/** The text of every token as it appears inside generated text, or null for tokens never allowed in JSON. */
export class TokenVocabulary {
  /** First character → ids of the tokens whose text starts with it. */
  readonly groups: [string, Int32Array][];

  constructor(readonly texts: (string | null)[]) {
    const groups = new Map<string, number[]>();
    texts.forEach((text, id) => {
      if (!text) return;
      const list = groups.get(text[0]) ?? [];
      list.push(id);
      groups.set(text[0], list);
    });
    this.groups = [...groups].map(([c, ids]) => [c, Int32Array.from(ids)]);
  }

  get size(): number {
    return this.texts.length;
  }

  /**
   * Token texts from a tokenizer's decode: each token is decoded after an anchor token and the anchor's text is cut
   * off, which keeps the leading space SentencePiece drops from a lone token. Special tokens, tokens that decode to
   * nothing and partial UTF-8 bytes (U+FFFD) are never allowed.
   */
  static fromDecode(size: number, decode: (ids: number[]) => string, anchor: number, special: Iterable<number>): TokenVocabulary {
    const excluded = new Set(special);
    const base = decode([anchor]);
    const texts: (string | null)[] = [];
    for (let id = 0; id < size; id++) {
      if (excluded.has(id)) {
        texts.push(null);
        continue;
      }
      const full = decode([anchor, id]);
      const text = full.startsWith(base) ? full.slice(base.length) : "";
      texts.push(text && !text.includes("\uFFFD") ? text : null);
    }
    return new TokenVocabulary(texts);
  }
}

/** One compiled schema and the masks of the states seen so far. */
interface CompiledConstraint {
  root: SchemaNode;
  masks: Map<string, Uint8Array>;
}

/** Most states whose masks are kept per schema (a mask is one byte per vocabulary token). */
const MAX_MASKS = 2048;

/** Compiled schemas by their JSON text, least recently used evicted first. */
export class ConstraintCache {
  private readonly entries = new Map<string, CompiledConstraint>();

  constructor(readonly vocab: TokenVocabulary, readonly eosTokenIds: number[], private readonly capacity = 32) {}

  /** The constraint for one sequence, or undefined when the format does not restrict the output. */
  decoderFor(format: OutputFormat | undefined): ConstrainedDecoder | undefined {
    // A forced tool call chains two decoders of this cache (chat-tool-constraint.ts).
    if (!format || format.type === "text" || format.type === "tool_call") return undefined;
    const schema = format.type === "json_object" ? { type: "object" } : format.schema;
    const key = JSON.stringify(schema) ?? "null";
    let entry = this.entries.get(key);
    if (entry) this.entries.delete(key);
    else entry = { root: compileSchema(schema), masks: new Map() };
    this.entries.set(key, entry);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return new ConstrainedDecoder(this.vocab, entry, this.eosTokenIds);
  }
}

/** Per-sequence state of constrained decoding. */
export class ConstrainedDecoder implements TokenConstraint {
  private state: JsonState;
  /** Statistics for the cost measurement: steps and mask computations (cache misses). */
  steps = 0;
  misses = 0;

  constructor(private readonly vocab: TokenVocabulary, private readonly compiled: CompiledConstraint, private readonly eos: number[]) {
    this.state = initialState(compiled.root);
  }

  complete(): boolean {
    return canEnd(this.state);
  }

  text(id: number): string {
    return this.vocab.texts[id] ?? "";
  }

  /** Pick the next token from one row of logits with `remaining` tokens of budget (this one included). */
  next(logits: Float32Array, sampler: TokenSampler, remaining: number): number {
    this.steps++;
    // The value is complete and nothing may follow: end the sequence.
    if (isDone(this.state)) return this.eos[0] ?? 0;
    const finish = completion(this.state);
    // Greedy fast path: when the most likely token is allowed it is the masked argmax too; no mask needed.
    if (sampler.params.temperature <= 0 && remaining > finish.length) {
      const best = argmax(logits);
      const text = this.vocab.texts[best];
      const next = text ? feedFrom(this.state, text, 0) : null;
      if (next && remaining - 1 >= completion(next).length) {
        this.state = next;
        return best;
      }
    }
    let allowed = remaining <= finish.length ? this.forced(finish) : this.maskFor(this.state);
    const endable = canEnd(this.state);
    for (let attempt = 0; ; attempt++) {
      const masked = new Float32Array(logits.length).fill(-Infinity);
      let any = false;
      const n = Math.min(logits.length, allowed.length);
      for (let id = 0; id < n; id++) {
        if (allowed[id]) {
          masked[id] = logits[id];
          any = true;
        }
      }
      if (endable) for (const id of this.eos) if (id < masked.length) masked[id] = logits[id];
      // No token can continue (a vocabulary without the characters needed): end rather than break the format.
      if (!any && !endable) return this.eos[0] ?? 0;
      const token = sampler.next(masked);
      if (this.eos.includes(token)) return token;
      const next = feedFrom(this.state, this.vocab.texts[token]!, 0);
      // Keep the shortest completion within the budget left after this token; else refuse the token and resample.
      if (next && (remaining - 1 >= completion(next).length || attempt >= 8)) {
        this.state = next;
        return token;
      }
      if (attempt >= 4) allowed = this.forced(finish);
      else {
        allowed = allowed.slice();
        allowed[token] = 0;
      }
    }
  }

  /** Tokens that are a non-empty prefix of the completion text. */
  private forced(finish: string): Uint8Array {
    const mask = new Uint8Array(this.vocab.size);
    if (finish === "") return mask;
    for (const [c, ids] of this.vocab.groups) {
      if (c !== finish[0]) continue;
      for (const id of ids) if (finish.startsWith(this.vocab.texts[id]!)) mask[id] = 1;
    }
    return mask;
  }

  private maskFor(state: JsonState): Uint8Array {
    const key = stateKey(state);
    const masks = this.compiled.masks;
    const cached = masks.get(key);
    if (cached) return cached;
    this.misses++;
    const mask = new Uint8Array(this.vocab.size);
    const texts = this.vocab.texts;
    for (const [c, ids] of this.vocab.groups) {
      const after = feed(state, c);
      if (!after) continue;
      for (const id of ids) if (feedFrom(after, texts[id]!, 1)) mask[id] = 1;
    }
    if (masks.size >= MAX_MASKS) masks.clear();
    masks.set(key, mask);
    return mask;
  }
}

function feedFrom(state: JsonState, text: string, from: number): JsonState | null {
  let s: JsonState | null = state;
  for (let i = from; s !== null && i < text.length; i++) s = feed(s, text[i]);
  return s;
}
