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
import { createSession, providerName, summarizeOrtError, type Session, type SessionSettings } from "./onnx.js";

export const PRECISIONS: readonly Precision[] = ["fp32", "fp16", "bf16", "int8"];

export function isPrecisionChoice(value: unknown): value is PrecisionChoice {
  return value === "auto" || PRECISIONS.includes(value as Precision);
}

/**
 * What each provider computes fastest, best first. CPU: int8 (VNNI kernels), then fp32; fp16 "works" on the CPU EP
 * only through Casts around every op and is slower than fp32 (FACTS.md); bf16 has no CPU kernels. GPUs: fp16 first.
 */
export const PREFERRED_PRECISIONS: Record<Accelerator, readonly Precision[]> = {
  cpu: ["int8", "fp32"],
  cuda: ["fp16", "fp32", "bf16", "int8"],
  webgpu: ["fp16", "fp32"],
};

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

/** `auto` → the fastest precision the provider runs among those the folder has (or can convert to). */
export function pickAutoPrecision(accelerator: Accelerator, available: readonly Precision[]): Precision {
  const best = PREFERRED_PRECISIONS[accelerator].find((p) => available.includes(p));
  if (!best) {
    throw new Error(`No model file for any precision ${accelerator} can run (${PREFERRED_PRECISIONS[accelerator].join(", ")})`);
  }
  return best;
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
}

export interface OpenedModel {
  session: Session;
  precision: Precision;
  file: string;
  /** Set when the file was converted from fp32 at load. */
  convertedFrom?: string;
}

/**
 * Open the model at a precision and prove it runs: create the session and run one batch now, so a precision the
 * provider cannot run fails setup fast, with the provider, the precision, the missing kernel and what does run.
 * A missing fp16/bf16 file is converted from fp32 (compute mode on GPUs; weights mode on the CPU, whose
 * provider has no low-precision kernels).
 */
export async function openModel(options: OpenModelOptions): Promise<OpenedModel> {
  const variants = options.file ? explicitVariant(options.file) : listVariants(options.dir);
  const accelerator = options.settings.accelerator;
  const canConvert = variants.fp32 !== undefined;
  const available = PRECISIONS.filter((p) => variants[p] || (canConvert && (p === "fp16" || p === "bf16")));
  if (available.length === 0) throw new Error(`No .onnx model file in ${options.dir}`);
  const precision = options.precision === "auto" ? pickAutoPrecision(accelerator, available) : options.precision;
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
  const failure = await tryOpen(file, options);
  if ("session" in failure) return { session: failure.session, precision, file, convertedFrom };
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
  throw new PrecisionUnsupportedError(precision, providerName(accelerator), failure.reason, runnable);
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
