/**
 * phoneside's library API. Inference and evaluation run on ONNX Runtime alone; the training stack
 * (tfjs) is loaded only when `train` is called, so importing this module stays light.
 */
import type { TrainOptions, TrainResult } from './train/train.js';

export { env, type PhonesideEnv } from './env.js';
export { getBackbone, listBackbones, type BackboneSpec, type Preprocessing } from './backbones/registry.js';
export { loadBackbone, type LoadedBackbone } from './backbones/load.js';
export {
  Classifier,
  toPrediction,
  type ClassifierSource,
  type DecodedBatch,
  type LoadClassifierOptions,
  type Prediction,
} from './infer/classifier.js';
export { loadClassifier, defaultModelPath, NoDefaultModelError } from './infer/load.js';
export { predictFiles, decide, UNCERTAIN, type PredictionRow, type PredictOptions } from './infer/predict.js';
export { expandInputs, type ExpandedInputs, type InputProblem } from './infer/inputs.js';
export { exportClassifier, type ExportOptions, type ExportResult } from './infer/export.js';
export { readOnnxMetadata, type ClassifierInfo } from './infer/onnx-meta.js';
export { loadBundle, saveBundle, type ModelBundle, type BundleManifest } from './model/bundle.js';
export { evaluate, type EvaluateOptions, type EvaluationResult } from './eval/evaluate.js';
export {
  classificationMetrics,
  confusionMatrix,
  expectedCalibrationError,
  metricsFromConfusion,
  type ClassificationMetrics,
} from './eval/metrics.js';
export { formatClassificationReport, formatConfusionMatrix, metricsToJSON, type MetricsJSON } from './eval/report.js';
export { scanDataset, type DatasetItem, type DatasetScan } from './data/dataset.js';
export { stratifiedSplit, splitManifest, applySplitManifest, type SplitManifest } from './data/split.js';
export type { TrainOptions, TrainResult } from './train/train.js';
export type { EpochLogs, Callback } from './train/callback.js';

/** Trains a classifier on a folder-per-class dataset (see TrainOptions for every option). */
export async function train(dataDir: string, options: Partial<TrainOptions> & { backbone: string }): Promise<TrainResult> {
  const { train: run } = await import('./train/train.js');
  return run(dataDir, options);
}
