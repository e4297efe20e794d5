/**
 * The seed's image classifier as a served API: `{"image": base64}` → `{"predictions": [{label, probability}]}`.
 *
 * decodeRequest (main thread; the decoding itself runs on the libuv pool) turns the image into the 224×224 crop's
 * 8-bit RGB planes; the worker normalises them into the model's [N,3,224,224] float input a sub-batch at a time and
 * runs onnxruntime + softmax; unbatch turns each row
 * into labelled predictions (the worker has the class names, and a few labels cross the thread instead of 1000
 * floats); encodeResponse wraps them.
 *
 * @example
 * ```ts
 * import { createServer } from "batchwise";
 * import { imageClassifier } from "batchwise/classifier";
 *
 * const server = await createServer({ api: imageClassifier({ labels: "imagenet" }), maxBatchSize: 32, batchTimeout: 0.01 });
 * ```
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BadRequestError, ModelAPI, type ApiSource, type Device, type PrecisionChoice, type RequestContext, type ServingDefaults, type SetupContext } from "../api/model-api.js";
import { DEFAULT_CHUNK_SIZE, runChunked } from "../runtime/chunked-run.js";
import { availableCores } from "../runtime/device.js";
import { providerName, settingsFor, type Session } from "../runtime/onnx.js";
import { resolveModel, type ResolvedModel } from "../runtime/models.js";
import { isPrecisionChoice, openModel, type OpenedModel } from "../runtime/precision.js";
import { Upload } from "../api/upload.js";
import { CROP_SIZE, DEFAULT_MAX_PIXELS, IMAGE_VALUES, decodeBase64Image, normalizeInto, preprocessLevels } from "./image-preprocess.js";
import { nativeJpegStatus } from "./jpeg-native.js";
import { calibrationBatch, classifierCalibration } from "./classifier-calibration.js";
import { catDogOther, LABEL_MODES, loadClassNames, softmaxRows, topK, type LabelMode, type Prediction } from "./labels.js";

export const DEFAULT_CLASSIFIER_MODEL = "mobilenetv2-12";

export interface ImageClassifierOptions {
  /** Model id (a folder under BATCHWISE_MODELS_DIR) or a path to a folder or .onnx file. */
  model?: string;
  precision?: PrecisionChoice;
  /** `cat-dog` (default): Cat, Dog, Other. `imagenet`: the top-k ImageNet class names. */
  labels?: LabelMode;
  /** How many ImageNet classes to return in `imagenet` mode (default 5). */
  topK?: number;
  /** Largest accepted width × height (header check before decoding). */
  maxPixels?: number;
}

export interface ClassifierRequest {
  image?: unknown;
}

export interface ClassifierResponse {
  predictions: Prediction[];
}

const CLASSES = 1000;

const CLASSIFIER_REQUEST_SCHEMA = {
  type: "object",
  required: ["image"],
  properties: {
    image: {
      type: "string",
      contentEncoding: "base64",
      description: 'the JPEG, PNG or WebP image in base64, as {"image": "<base64>"}; or send the image itself as the body (image/jpeg, image/png, image/webp) or as a multipart/form-data file',
    },
  },
};

const CLASSIFIER_RESPONSE_SCHEMA = {
  type: "object",
  required: ["predictions"],
  properties: {
    predictions: {
      type: "array",
      description: "Sorted by probability, highest first: Cat, Dog and Other, or the ImageNet top-k",
      items: {
        type: "object",
        required: ["label", "probability"],
        properties: { label: { type: "string" }, probability: { type: "number", minimum: 0, maximum: 1 } },
      },
    },
  },
};

/** One image for the model: the crop's 8-bit RGB planes (what decodeRequest makes) or already-normalised floats. */
export type ImageInput = Uint8Array | Float32Array;

function fillImage(image: ImageInput, into: Float32Array): void {
  if (image instanceof Float32Array) into.set(image);
  else normalizeInto(image, into);
}

export class ImageClassifierAPI extends ModelAPI<
  ClassifierRequest | Upload,
  ImageInput,
  Prediction[],
  ClassifierResponse,
  ImageInput[],
  Float32Array
> {
  readonly options: Required<ImageClassifierOptions>;
  private session?: Session;
  private classNames: string[] = [];
  private chunkSize = DEFAULT_CHUNK_SIZE;

  constructor(options: ImageClassifierOptions = {}) {
    super();
    const labels = options.labels ?? "cat-dog";
    if (!LABEL_MODES.includes(labels)) throw new Error(`labels must be one of ${LABEL_MODES.join(", ")}, got "${labels}"`);
    const precision = options.precision ?? "auto";
    if (!isPrecisionChoice(precision)) throw new Error(`precision must be auto, fp32, fp16, bf16 or int8, got "${precision}"`);
    const k = options.topK ?? 5;
    if (!Number.isInteger(k) || k < 1 || k > CLASSES) throw new Error(`topK must be an integer from 1 to ${CLASSES}`);
    this.options = {
      model: options.model ?? DEFAULT_CLASSIFIER_MODEL,
      precision,
      labels,
      topK: k,
      maxPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS,
    };
    this.info = {
      model: this.options.model,
      precisionRequested: precision,
      labels,
      inputShape: ["N", 3, CROP_SIZE, CROP_SIZE],
      jpegDecoder: nativeJpegStatus,
    };
  }

  override async setup(device: Device, _ctx?: SetupContext): Promise<void> {
    const model = await resolveModel(this.options.model);
    this.chunkSize = device.accelerator === "cpu" ? DEFAULT_CHUNK_SIZE : Infinity;
    if (this.options.labels === "imagenet") this.classNames = loadClassNames(model.dir);
    const opened = await openClassifierModel(model, this.options.precision, device, (session, images) => this.run(session, images));
    if (opened.warning) console.warn(`[batchwise] ${opened.warning}`);
    this.session = opened.session;
    this.info = {
      ...this.info,
      model: model.id,
      modelOrigin: model.origin,
      // the file name only: /info is public and absolute paths tell a caller about the host
      file: path.basename(opened.file),
      convertedFrom: opened.convertedFrom && path.basename(opened.convertedFrom),
      precision: opened.precision,
      precisionReason: opened.reason,
      precisionWarning: opened.warning,
      provider: providerName(device.accelerator),
      threads: device.threads,
    };
  }

  /** Raw image bodies and multipart files reach decodeRequest as bytes: no base64, no JSON. */
  override binaryTypes = ["image/jpeg", "image/png", "image/webp", "application/octet-stream"];

  /**
   * A JSON body is `{"image": "<base64>"}`: checked by fastify before decodeRequest (a type and a required key, no
   * length or pattern rule, which would walk a 200 kB string per request). Raw and multipart bodies are not JSON.
   */
  override requestSchema = CLASSIFIER_REQUEST_SCHEMA;
  override responseSchema = CLASSIFIER_RESPONSE_SCHEMA;

  /** The image's centre crop as 8-bit RGB planes: a quarter of the float tensor's bytes to queue and send to the worker. */
  override async decodeRequest(request: ClassifierRequest | Upload, _ctx?: RequestContext): Promise<Uint8Array> {
    if (request instanceof Upload) {
      if (request.data.length === 0) throw new BadRequestError("The uploaded image is empty", "empty_image");
      return preprocessLevels(request.data, this.options.maxPixels);
    }
    if (request === null || typeof request !== "object" || Array.isArray(request)) {
      throw new BadRequestError('The body must be a JSON object: {"image": "<base64>"}', "invalid_body");
    }
    return preprocessLevels(decodeBase64Image(request.image), this.options.maxPixels);
  }

  /**
   * The batch is the images themselves: they are normalised into the model's input a sub-batch at a time, into a
   * buffer the session keeps (see runChunked), never into a fresh batch-sized array.
   */
  override batch(inputs: ImageInput[]): ImageInput[] {
    return inputs;
  }

  /** Probabilities [count, 1000] (softmax of the logits). */
  async predict(batch: ImageInput[]): Promise<Float32Array> {
    if (!this.session) throw new Error("ImageClassifierAPI.predict called before setup");
    return softmaxRows(await this.run(this.session, batch), CLASSES);
  }

  override unbatch(probabilities: Float32Array): Prediction[][] {
    const rows: Prediction[][] = [];
    for (let start = 0; start < probabilities.length; start += CLASSES) {
      const row = probabilities.subarray(start, start + CLASSES);
      rows.push(this.options.labels === "imagenet" ? topK(row, this.classNames, this.options.topK) : catDogOther(row));
    }
    return rows;
  }

  override encodeResponse(predictions: Prediction[]): ClassifierResponse {
    return { predictions };
  }

  /** On the CPU in sub-batches of 8: faster per image, and a far smaller onnxruntime arena than one run of 64 (chunked-run.ts). */
  private async run(session: Session, images: ImageInput[]): Promise<Float32Array> {
    return runChunked(session, images, [3, CROP_SIZE, CROP_SIZE], this.chunkSize, fillImage);
  }
}

/**
 * Open the classifier's model as its setup does: the precision `auto` picks (or the one requested), checked against
 * fp32 on the calibration photos (accuracy-guard.ts). Benchmarks call it too, so they measure the file served.
 */
export async function openClassifierModel(
  model: ResolvedModel,
  precision: PrecisionChoice,
  device: Device,
  run: (session: Session, images: Uint8Array[]) => Promise<Float32Array>,
): Promise<OpenedModel> {
  const calibration = await classifierCalibration(model.dir);
  const opened = await openModel({
    dir: model.dir,
    file: model.file,
    precision,
    settings: settingsFor(device),
    check: async (session) => {
      await run(session, [new Uint8Array(IMAGE_VALUES)]);
    },
    guard: calibration && {
      probabilities: async (session) => softmaxRows(await run(session, calibration.images), CLASSES),
      classes: CLASSES,
      inputs: calibration.description,
      calibration: [calibrationBatch(calibration.images)],
    },
  });
  if (calibration || opened.precision === "fp32") return opened;
  return { ...opened, reason: `${opened.reason}; not checked against fp32: no sample photos (put a few in the model folder's calibration/)` };
}

/** Where a worker finds this API: this module's file and the class's export name. */
export function imageClassifier(options: ImageClassifierOptions = {}): ApiSource<ImageClassifierOptions> {
  return { module: fileURLToPath(import.meta.url), export: "ImageClassifierAPI", options, servingDefaults: classifierServingDefaults() };
}

/** {@link CLASSIFIER_SERVING_DEFAULTS} as createServer applies them (under the options the code, flags or environment set). */
function classifierServingDefaults(cores = availableCores()): ServingDefaults {
  const d = CLASSIFIER_SERVING_DEFAULTS;
  return { maxBatchSize: d.maxBatchSize, batchTimeout: d.batchTimeout, workersPerDevice: d.workers(cores), idempotent: d.idempotent };
}

/**
 * How `npm start` serves the classifier, chosen from measurements on a 2-core CPU (docs/performance.md): dynamic
 * batching 64 / 10 ms, precision auto (int8 where the CPU has int8 dot products and it answers like fp32, else fp32), one single-threaded
 * model worker per core, which served more images per second than fewer workers with more threads each: one thread
 * per session scales with no synchronisation, and decoding fills whatever the sessions leave idle.
 */
export const CLASSIFIER_SERVING_DEFAULTS = {
  maxBatchSize: 64,
  batchTimeout: 0.01,
  precision: "auto" as PrecisionChoice,
  workers: (cores: number) => Math.max(1, cores),
  /** Classifying an image twice gives the same answer: a request whose worker died may be retried. */
  idempotent: true,
};
