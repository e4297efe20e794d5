/**
 * Precision variants of one model: which file in the model folder holds which precision, what each execution
 * provider can run, and how a failed capability check is explained to the user.
 *
 * Why a closed list: onnxruntime picks kernels per (op, type, provider); a precision is only "supported" when every
 * op of the graph has a kernel for it on that provider, which is only known by building a session and running it.
 */
import { readdirSync } from "node:fs";
import path from "node:path";
import type { Accelerator, Precision, PrecisionChoice } from "../api/model-api.js";
import { convertedModelFile, type LowPrecision } from "./convert.js";
import { cpuFeatures, type CpuFeatures } from "./cpu-features.js";
import { createSession, providerName, summarizeOrtError, type Session, type SessionSettings } from "./onnx.js";
import { compareProbabilities, type AccuracyGuard } from "./accuracy-guard.js";
import { quantizedModelFile } from "./quantized-model.js";

export const PRECISIONS: readonly Precision[] = ["fp32", "fp16", "bf16", "int8"];

export function isPrecisionChoice(value: unknown): value is PrecisionChoice {
  return value === "auto" || PRECISIONS.includes(value as Precision);
}

/**
 * What each provider computes fastest, best first. CPU: int8 where the CPU has int8 dot-product instructions (VNNI,
 * AMX, ARM dotprod), else fp32: without them onnxruntime's int8 kernels are no faster than fp32 and saturate their
 * sums (cpu-features.ts). fp16 "works" on the CPU EP only through Casts around every op and is slower than fp32;
 * bf16 has no CPU kernels. GPUs: fp16 first.
 */
export function preferredPrecisions(accelerator: Accelerator, cpu: CpuFeatures = cpuFeatures()): readonly Precision[] {
  if (accelerator === "cpu") return cpu.int8DotProduct ? ["int8", "fp32"] : ["fp32"];
  return accelerator === "cuda" ? ["fp16", "fp32", "bf16", "int8"] : ["fp16", "fp32"];
}

/** The model files of one folder, by precision. */
export type VariantFiles = Partial<Record<Precision, string>>;

/**
 * Find the precision variants in a model folder: `<anything>-<precision>.onnx` (e.g. `mobilenetv2-12-int8.onnx`).
 * A folder whose only model is `model.onnx` (or one single .onnx without a precision suffix) is fp32.
 */
export function listVariants(dir: string): VariantFiles {
  const onnxFiles = readdirSync(dir).filter((f) => f.endsWith(".onnx")).sort();
  const variants: VariantFiles = {};
  const unlabelled: string[] = [];
  for (const file of onnxFiles) {
    const match = /[-_.](fp32|fp16|bf16|int8)\.onnx$/.exec(file);
    if (match) variants[match[1] as Precision] ??= path.join(dir, file);
    else unlabelled.push(file);
  }
  if (!variants.fp32) {
    const plain = unlabelled.includes("model.onnx") ? "model.onnx" : unlabelled.length === 1 ? unlabelled[0] : undefined;
    if (plain) variants.fp32 = path.join(dir, plain);
  }
  return variants;
}

export interface PrecisionDecision {
  precision: Precision;
  /** Why, for /info's precisionReason and the startup log. */
  reason: string;
}

/** `auto` → the fastest precision the provider runs among those the folder has (or can convert to), and why. */
export function pickAutoPrecision(accelerator: Accelerator, available: readonly Precision[], cpu: CpuFeatures = cpuFeatures()): PrecisionDecision {
  const preferred = preferredPrecisions(accelerator, cpu);
  const precision = preferred.find((p) => available.includes(p));
  if (!precision) throw new Error(`No model file for any precision ${accelerator} can run (${preferred.join(", ")})`);
  if (accelerator !== "cpu") return { precision, reason: `${precision}: the fastest precision ${providerName(accelerator)} runs that the model folder has` };
  const dot = cpu.arch === "arm64" ? "dotprod" : "VNNI/AMX";
  if (precision === "int8") return { precision, reason: `int8: the CPU has int8 dot-product instructions (${dot})` };
  return {
    precision,
    reason: cpu.int8DotProduct
      ? "fp32: the model folder has no int8 file"
      : `fp32: the CPU has no int8 dot-product instructions (${dot}), without which int8 is no faster than fp32 and less exact`,
  };
}

/** A precision the provider cannot run: raised by the capability check at setup, before any request arrives. */
export class PrecisionUnsupportedError extends Error {
  constructor(
    readonly precision: Precision,
    readonly provider: string,
    readonly reason: string,
    readonly runnable: readonly Precision[],
  ) {
    super(
      `Precision ${precision} cannot run on ${provider}: ${reason}. ` +
        (runnable.length > 0
          ? `This machine can run: ${runnable.join(", ")}.`
          : "No precision variant of this model runs on this machine.") +
        (precision === "bf16" || precision === "fp16"
          ? ` ${precision} compute needs a GPU provider (--accelerator cuda or webgpu); on the CPU use fp32 or int8.`
          : ""),
    );
    this.name = "PrecisionUnsupportedError";
  }
}

export interface OpenModelOptions {
  /** Model folder. */
  dir: string;
  /** One explicit .onnx file (its precision comes from its name; fp32 when the name has none). */
  file?: string;
  precision: PrecisionChoice;
  settings: SessionSettings;
  /** Runs one small batch: the capability check (a provider may build a session yet fail at the first run). */
  check: (session: Session) => Promise<void>;
  /** Checks a reduced-precision model against fp32 (accuracy-guard.ts); without it, no check is made. */
  guard?: AccuracyGuard;
}

export interface OpenedModel {
  session: Session;
  precision: Precision;
  file: string;
  /** Set when the file was converted or quantized from fp32 at load. */
  convertedFrom?: string;
  /** Why this precision runs: the choice, and the accuracy check's outcome where one was made. */
  reason: string;
  /** Set when an explicitly requested precision runs although it fails the accuracy check `auto` applies. */
  warning?: string;
}

/**
 * Open the model at a precision and prove it runs: create the session and run one batch now, so a precision the
 * provider cannot run fails setup fast, with the provider, the precision, the missing kernel and what does run.
 * A missing fp16/bf16 file is converted from fp32 (compute mode on GPUs; weights mode on the CPU, whose
 * provider has no low-precision kernels). With a guard, a reduced precision must then answer like fp32.
 */
export async function openModel(options: OpenModelOptions): Promise<OpenedModel> {
  const variants = options.file ? explicitVariant(options.file) : listVariants(options.dir);
  const accelerator = options.settings.accelerator;
  const canConvert = variants.fp32 !== undefined;
  const available = PRECISIONS.filter((p) => variants[p] || (canConvert && (p === "fp16" || p === "bf16")));
  if (available.length === 0) throw new Error(`No .onnx model file in ${options.dir}`);
  const decision = options.precision === "auto" ? pickAutoPrecision(accelerator, available) : { precision: options.precision, reason: `${options.precision}: requested` };
  const precision = decision.precision;
  if (!available.includes(precision)) {
    throw new Error(
      `No ${precision} model in ${options.dir}: found ${Object.values(variants).map((f) => path.basename(f!)).join(", ")}` +
        (precision === "int8" ? " (int8 needs a quantized <id>-int8.onnx file)" : " (fp16/bf16 can be converted from an fp32 file)"),
    );
  }
  let file = variants[precision];
  let convertedFrom: string | undefined;
  if (!file) {
    convertedFrom = variants.fp32!;
    file = await convertedModelFile(convertedFrom, precision as LowPrecision, accelerator === "cpu" ? "weights" : "compute");
  }
  const opened = await tryOpen(file, options);
  if (!("session" in opened)) throw await unsupported(precision, opened.reason, variants, options);
  const model: OpenedModel = { session: opened.session, precision, file, convertedFrom, reason: decision.reason };
  if (precision === "fp32" || !options.guard || !variants.fp32) return model;
  return guarded(model, variants.fp32, options.guard, options);
}

/**
 * The accuracy guard. A reduced-precision model that answers like fp32 is kept. An int8 file that does not gets one
 * more chance from batchwise's own quantizer (7-bit weights, which no CPU's int8 kernels can saturate). Otherwise
 * `auto` serves fp32, and an explicitly requested precision runs with a warning.
 */
async function guarded(model: OpenedModel, fp32File: string, guard: AccuracyGuard, options: OpenModelOptions): Promise<OpenedModel> {
  const fp32 = await createSession(fp32File, options.settings);
  let keepFp32 = false;
  try {
    const reference = await guard.probabilities(fp32);
    const compare = async (session: Session) => compareProbabilities(reference, await guard.probabilities(session), guard.classes, guard.inputs);
    const verdict = await compare(model.session);
    if (verdict.ok) return { ...model, reason: `${model.reason}; accuracy check passed (${verdict.summary})` };
    const failed = `${path.basename(model.file)} failed the accuracy check (${verdict.summary})`;
    if (model.precision === "int8" && guard.calibration) {
      const built = await quantizedModelFile(fp32File, guard.calibration, { reduceRange: true });
      const opened = await tryOpen(built, options);
      if ("session" in opened) {
        const second = await compare(opened.session);
        if (second.ok) {
          await model.session.release();
          const reason = `${model.reason}; ${failed}, so batchwise quantized ${path.basename(fp32File)} itself (${second.summary})`;
          return { session: opened.session, precision: "int8", file: built, convertedFrom: fp32File, reason };
        }
        await opened.session.release();
      }
    }
    if (options.precision === "auto") {
      await model.session.release();
      keepFp32 = true;
      return { session: fp32, precision: "fp32", file: fp32File, reason: `fp32: ${failed}` };
    }
    const warning = `--precision ${model.precision} runs as requested, but ${failed}; --precision auto would serve fp32`;
    return { ...model, reason: `${model.reason}; ${failed}`, warning };
  } finally {
    if (!keepFp32) await fp32.release();
  }
}

/** The error for a precision the provider cannot run, naming the precisions that do run. */
async function unsupported(precision: Precision, reason: string, variants: VariantFiles, options: OpenModelOptions): Promise<PrecisionUnsupportedError> {
  const runnable: Precision[] = [];
  for (const other of PRECISIONS) {
    const otherFile = variants[other];
    if (other === precision || !otherFile) continue;
    const probe = await tryOpen(otherFile, options);
    if ("session" in probe) {
      runnable.push(other);
      await probe.session.release();
    }
  }
  return new PrecisionUnsupportedError(precision, providerName(options.settings.accelerator), reason, runnable);
}

function explicitVariant(file: string): VariantFiles {
  const match = /[-_.](fp32|fp16|bf16|int8)\.onnx$/.exec(file);
  return { [(match?.[1] as Precision | undefined) ?? "fp32"]: file };
}

async function tryOpen(file: string, options: OpenModelOptions): Promise<{ session: Session } | { reason: string }> {
  let session: Session | undefined;
  try {
    session = await createSession(file, options.settings);
    await options.check(session);
    return { session };
  } catch (error) {
    await session?.release().catch(() => undefined);
    return { reason: summarizeOrtError(error) };
  }
}
