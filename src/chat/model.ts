/**
 * Where a chat model comes from and how it is loaded with transformers.js.
 *
 * `model` is, in order: a folder path (containing config.json); an id under BATCHWISE_MODELS_DIR (default
 * data/models), one folder per id; otherwise a Hugging Face Hub id, downloaded by transformers.js into
 * BATCHWISE_MODELS_DIR/.cache. Local folders are loaded with remote access off, so a typo never turns into a
 * download. Without network a hub id fails fast with an error that lists every place that was tried.
 */
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  env,
  type PreTrainedModel,
  type PreTrainedTokenizer,
} from "@huggingface/transformers";
import type { Accelerator, PrecisionChoice } from "../api/model-api.js";

/** What users with internet get by default: a small instruction-tuned model with a chat template. */
export const DEFAULT_CHAT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct";

export interface ResolvedModel {
  /** The id as given (shown in /info and answered as `model`). */
  id: string;
  /** The local folder, or undefined for a hub download. */
  folder?: string;
  /** Every place looked at, for error messages. */
  searched: string[];
}

function modelsDir(): string {
  return path.resolve(process.env.BATCHWISE_MODELS_DIR ?? path.join("data", "models"));
}

export function resolveModel(model: string): ResolvedModel {
  const candidates = [path.resolve(model), path.join(modelsDir(), model)];
  const folder = candidates.find((dir) => existsSync(path.join(dir, "config.json")) && statSync(dir).isDirectory());
  return { id: model, folder, searched: candidates };
}

/**
 * Point transformers.js at the model: a local folder (remote off) or the hub (remote on, cache beside the local
 * models). transformers.js reads these globals during from_pretrained, so each load sets them right before.
 */
function configureHub(model: ResolvedModel, allowRemote: boolean): string {
  if (model.folder) {
    env.allowLocalModels = true;
    env.allowRemoteModels = false;
    env.localModelPath = path.dirname(model.folder) + path.sep;
    return path.basename(model.folder);
  }
  if (!allowRemote || !/^[\w.-]+\/[\w.-]+$/.test(model.id)) {
    throw new Error(
      `Chat model "${model.id}" not found: looked for a folder with config.json at ${model.searched.join(" and ")}` +
        (allowRemote ? " (and it is not a Hugging Face Hub id like owner/name)" : "; remote downloads are off"),
    );
  }
  env.allowRemoteModels = true;
  env.cacheDir = path.join(modelsDir(), ".cache");
  return model.id;
}

/** Wrap a failed hub download into one line that says where we looked and what to do offline. */
function loadError(model: ResolvedModel, error: unknown): Error {
  const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
  if (model.folder) return new Error(`Could not load chat model from ${model.folder}: ${reason}`);
  return new Error(
    `Chat model "${model.id}" is not available locally (looked in ${model.searched.join(" and ")}) and downloading ` +
      `it from the Hugging Face Hub failed: ${reason}. Offline, put the model folder under BATCHWISE_MODELS_DIR ` +
      `(${modelsDir()}) or pass a folder path.`,
  );
}

export async function loadTokenizer(model: ResolvedModel, allowRemote: boolean): Promise<PreTrainedTokenizer> {
  const name = configureHub(model, allowRemote);
  try {
    return await AutoTokenizer.from_pretrained(name);
  } catch (error) {
    throw loadError(model, error);
  }
}

/** transformers.js model file variant for a precision: fp32 model.onnx, fp16 model_fp16.onnx, int8 model_quantized.onnx. */
function transformersDtype(precision: PrecisionChoice): "fp32" | "fp16" | "q8" | undefined {
  switch (precision) {
    case "auto":
      return undefined; // the model's transformers.js_config.dtype, else fp32
    case "fp32":
    case "fp16":
      return precision;
    case "int8":
      return "q8";
    case "bf16":
      throw new Error("bf16 is not a transformers.js model variant; use fp32, fp16 or int8 for the chat model");
  }
}

export interface LoadOptions {
  precision: PrecisionChoice;
  accelerator: Accelerator;
  threads: number;
  allowRemote: boolean;
}

export async function loadCausalLM(model: ResolvedModel, options: LoadOptions): Promise<PreTrainedModel> {
  const name = configureHub(model, options.allowRemote);
  try {
    return await AutoModelForCausalLM.from_pretrained(name, {
      device: options.accelerator,
      dtype: transformersDtype(options.precision),
      session_options: {
        intraOpNumThreads: options.threads,
        interOpNumThreads: 1,
        // Several workers share the cores: spinning between decode steps would steal them from each other.
        extra: { session: { intra_op: { allow_spinning: "0" } } },
      },
    });
  } catch (error) {
    throw loadError(model, error);
  }
}
