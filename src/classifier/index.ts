/** `batchwise/classifier`: the seed's image classifier (sharp or libjpeg-turbo preprocessing + onnxruntime-node). */
export {
  ImageClassifierAPI,
  imageClassifier,
  CLASSIFIER_SERVING_DEFAULTS,
  DEFAULT_CLASSIFIER_MODEL,
  type ImageClassifierOptions,
  type ClassifierRequest,
  type ClassifierResponse,
  type ImageInput,
} from "./image-classifier.js";
export { preprocessImage, preprocessLevels, normalizeInto, referencePreprocess, IMAGENET_MEAN, IMAGENET_STD, CROP_SIZE } from "./image-preprocess.js";
export { catDogOther, topK, softmaxRows, loadClassNames, LABEL_MODES, type LabelMode, type Prediction } from "./labels.js";
