/**
 * Turns generated token ids into text deltas as they arrive, the way a streaming client must see them:
 *
 * - A token can be half a character (byte-fallback tokenizers split UTF-8 sequences): text is only released once
 *   it no longer ends in U+FFFD.
 * - SentencePiece tokenizers drop a word's leading space when a token is decoded alone, so each delta is the
 *   difference between decoding a short window with and without the newest tokens (the offsets trick of
 *   Hugging Face's TextStreamer), which keeps deltas concatenating to exactly the full decode.
 * - Stop strings: text that could still be the start of a stop string is held back; when one completes, the text
 *   before it is released and generation ends with finish_reason "stop". The stop string itself is never sent.
 */

export type Decode = (ids: number[]) => string;

export interface TextDelta {
  /** Text safe to send now (may be ""). */
  text: string;
  /** A stop string completed: the sequence is finished. */
  stopped: boolean;
}

export class StreamingDetokenizer {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  /** Decoded text not yet released (may hide the beginning of a stop string). */
  private pending = "";
  /** How far into the released text a stop string may still begin (to search across deltas). */
  private readonly longestStop: number;

  constructor(private readonly decodeIds: Decode, private readonly stop: string[] = []) {
    this.longestStop = stop.reduce((max, s) => Math.max(max, s.length), 0);
  }

  push(id: number): TextDelta {
    this.ids.push(id);
    const prefix = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.decode(this.ids.slice(this.prefixOffset));
    if (full.length <= prefix.length || full.endsWith("\uFFFD")) return { text: "", stopped: false };
    this.pending += full.slice(prefix.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return this.release();
  }

  private decode(ids: number[]): string {
    return ids.length === 0 ? "" : this.decodeIds(ids);
  }

  /**
   * The sequence ended for another reason (EOS, length): what is held back is real text, and so are tokens that
   * never completed a character (they decode to U+FFFD, as in a full decode). Send it all.
   */
  flush(): string {
    const prefix = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.decode(this.ids.slice(this.prefixOffset));
    const rest = this.pending + (full.length > prefix.length ? full.slice(prefix.length) : "");
    this.pending = "";
    this.prefixOffset = this.readOffset = this.ids.length;
    return rest;
  }

  private release(): TextDelta {
    if (this.longestStop === 0) {
      const text = this.pending;
      this.pending = "";
      return { text, stopped: false };
    }
    let cut = -1;
    for (const s of this.stop) {
      const at = this.pending.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      const text = this.pending.slice(0, cut);
      this.pending = "";
      return { text, stopped: true };
    }
    const keep = this.heldBackLength();
    const text = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return { text, stopped: false };
  }

  /** Length of the longest tail of `pending` that is a proper prefix of some stop string. */
  private heldBackLength(): number {
    const max = Math.min(this.pending.length, this.longestStop - 1);
    for (let n = max; n > 0; n--) {
      const tail = this.pending.slice(this.pending.length - n);
      if (this.stop.some((s) => s.startsWith(tail))) return n;
    }
    return 0;
  }
}
