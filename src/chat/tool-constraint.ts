/**
 * A forced tool call (tool_choice "required" or a named function) by constrained decoding, in two stages that share
 * the JSON constraint machinery of constrained-sampler.ts:
 *
 * 1. the function's name, as a JSON string restricted to the offered names (`{"enum": [names]}`): `"get_weather"`;
 * 2. once the name is complete, its arguments, restricted to that function's `parameters` schema.
 *
 * The output text is `"NAME"{…arguments…}` and nothing else; chat-tool-calls.ts turns it into the call. Two stages
 * rather than one schema `{name, arguments}` because arguments depend on the name, and the JSON automaton's anyOf
 * needs alternatives that begin with different characters (every object begins with `{`).
 *
 * Budget: the name stage keeps room for the shortest arguments of any tool, so max_tokens that leaves room for a
 * name and the shortest arguments yields a call that parses.
 */
import type { TokenConstraint } from "./engine.js";
import type { TokenSampler } from "./sampler.js";
import type { ToolSpec } from "./types.js";
import type { ConstraintCache } from "./json-schema/constrained-sampler.js";
import { compileSchema, completion, initialState } from "./json-schema/json-schema-constraint.js";

/** A function's arguments schema: its `parameters`, or any object when it declares none. */
export const argumentsSchema = (tool: ToolSpec): unknown => tool.parameters ?? { type: "object" };

export class ToolCallConstraint implements TokenConstraint {
  private readonly name: TokenConstraint;
  private nameText = "";
  private args: TokenConstraint | null = null;
  /** Tokens kept for the arguments while the name is generated: the shortest arguments of the longest-to-close tool. */
  private readonly reserve: number;

  constructor(private readonly cache: ConstraintCache, private readonly tools: ToolSpec[]) {
    this.name = cache.decoderFor({ type: "json_schema", schema: { enum: tools.map((t) => t.name) } })!;
    this.reserve = Math.max(...tools.map((t) => completion(initialState(compileSchema(argumentsSchema(t)))).length));
  }

  next(logits: Float32Array, sampler: TokenSampler, remaining: number): number {
    if (this.args) return this.args.next(logits, sampler, remaining);
    const token = this.name.next(logits, sampler, Math.max(1, remaining - this.reserve));
    this.nameText += this.name.text(token);
    if (this.name.complete()) {
      const chosen = JSON.parse(this.nameText.trim()) as string;
      const tool = this.tools.find((t) => t.name === chosen)!;
      this.args = this.cache.decoderFor({ type: "json_schema", schema: argumentsSchema(tool) })!;
    }
    return token;
  }

  text(id: number): string {
    return this.name.text(id);
  }

  complete(): boolean {
    return this.args?.complete() ?? false;
  }
}
