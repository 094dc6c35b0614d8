/**
 * phoneside's library API. Inference and evaluation run on ONNX Runtime alone; the training stack
 * (tfjs) is loaded only when `train` is called, so importing this module stays light.
 */
import type { TrainParams, TrainResult } from './train/train.js';
import type { CvParams } from './train/cv.js';
import type { CvReport } from './eval/cv-report.js';
import type { RunningServer, ServeOptions } from './serve/server.js';

export { env, weightsEnvVar, type PhonesideEnv } from './env.js';
export { WeightsMissingError } from './backbones/weights-source.js';
export { getBackbone, listBackbones, type BackboneSpec, type Preprocessing } from './backbones/registry.js';
export { loadBackbone, type LoadedBackbone } from './backbones/load.js';
export { Classifier, NonFiniteOutputError, type ClassifierSource, type DecodedBatch, type LoadClassifierOptions, type ClassifyOptions } from './infer/classifier.js';
export { decide, UNCERTAIN, type Prediction } from './infer/prediction.js';
export { modelBackbones, defaultModelPath, listShippedModels, NoDefaultModelError, DEFAULT_MODEL, type ShippedModel } from './infer/load.js';
export { predictFiles, type PredictionRow, type PredictOptions } from './infer/predict.js';
export { reportHeatmaps, type ReportHeatmapOptions } from './explain/report-heatmaps.js';
export { explainImages, explainEach, heatmapOverlayPng, heatmapOverlayJpeg, MethodUnavailableError, type Explanation, type ExplainInput, type ExplainMethod, type ExplainOptions, type HeatMap, type OverlayOptions } from './explain/explain.js';
export { expandInputs, type ExpandedInputs, type InputProblem } from './infer/inputs.js';
export { catalog, CatalogInputError, type CatalogOptions, type CatalogHooks, type CatalogProgress, type CatalogSummary } from './catalog/catalog.js';
export { openCatalogOutput, CatalogFileError, type CatalogOutput } from './catalog/output.js';
export { CatalogLockedError } from './catalog/lock.js';
export { parseRecordLine, recordLine, type CatalogRecord } from './catalog/record.js';
export type { CatalogInput } from './options/catalog.js';
export { reviewDataset, readOutOfFold, ReviewInputError, ReviewOutputError, REVIEW_SCHEMA, type ReviewParams, type ReviewResult } from './review/review.js';
export { findSuspects, classThresholds, SuspectInputError, type OutOfFoldRow, type Suspect, type SuspectReport, type RankBy } from './review/suspects.js';
export { findDuplicates, type DuplicateReport } from './review/duplicates.js';
export { applyReview, readReviewLog, type ApplyResult, type ReviewMove } from './review/apply.js';
export { formatReviewCsv, parseReviewCsv, ReviewCsvError, type ReviewCsvRow, type ReviewDecision } from './review/review-csv.js';
export type { ReviewInput } from './options/review.js';
export type { ModelIdentity } from './infer/identity.js';
export { displayPath, type FsPath } from './util/list-dir.js';
export { checkFormat, SUPPORTED_TYPES, REFUSALS, type FormatCheck, type ImageType, type RefusalCode } from './data/formats.js';
export { exportClassifier, type ExportOptions, type ExportResult } from './infer/export.js';
export { readOnnxMetadata, type ClassifierInfo, type EnsembleMemberInfo } from './infer/onnx-meta.js';
export { loadBundle, saveBundle, type ModelBundle, type BundleManifest, type TtaMode } from './model/bundle.js';
export {
  createEnsemble,
  readEnsemble,
  ENSEMBLE_FORMAT,
  ENSEMBLE_VERSION,
  type CreateEnsembleOptions,
  type CreatedEnsemble,
  type EnsembleDescription,
  type EnsembleManifest,
} from './infer/ensemble.js';
export { evaluate, evaluationReport, type EvaluateOptions, type EvaluationResult } from './eval/evaluate.js';
export { buildEvaluationReport, reportToJSON, type EvaluationReport } from './eval/evaluation-report.js';
export { evaluationHtml, writeEvaluationHtml } from './eval/html-report.js';
export { compareModels, type CompareOptions, type ComparisonReport, type ModelComparison } from './eval/compare.js';
export { formatComparisonTable } from './eval/compare-format.js';
export { precisionRecallCurve, reliabilityDiagram, mostConfusedPairs } from './eval/curves.js';
export {
  classificationMetrics,
  confusionMatrix,
  expectedCalibrationError,
  metricsFromConfusion,
  type ClassificationMetrics,
} from './eval/metrics.js';
export {
  fitThresholds,
  applyThresholds,
  crossFittedThresholds,
  type ThresholdFit,
  type ThresholdFitOptions,
  type ThresholdOutcome,
  type ThresholdRow,
  type GroupedThresholdRow,
  type ClassThreshold,
  type CrossFitResult,
  type GroupCrossFit,
} from './eval/thresholds.js';
export { formatClassificationReport, formatConfusionMatrix, metricsToJSON, type MetricsJSON } from './eval/report.js';
export { scanDataset, type DatasetItem, type DatasetScan } from './data/dataset.js';
export { stratifiedSplit, splitManifest, applySplitManifest, type SplitManifest } from './data/split.js';
export type { TrainParams, TrainOptions, TrainResult, RecipeExtras } from './train/train.js';
export type { CvParams, CvOptions } from './train/cv.js';
export { readCvReport, CV_REPORT_SCHEMA, type CvReport, type CvPrediction, type CvFold, type CvAbstain } from './eval/cv-report.js';
export { groupedScores, formatGroupTable, type GroupScore, type GroupedScores, type GroupedPrediction } from './eval/group-metrics.js';
export { parseGroupSpec, assignGroups, groupFolds, type GroupSpec } from './data/groups.js';
export type { EpochLogs, BatchLogs, Callback, TrainerControl } from './train/callback.js';

/** Trains a classifier on a folder-per-class dataset (options: `phoneside train --help`, in camelCase). */
export async function train(dataDir: string, options: TrainParams = {}): Promise<TrainResult> {
  const { train: run } = await import('./train/train.js');
  return run(dataDir, options);
}

/**
 * Group cross-validation of a recipe (see CvOptions): every image predicted by a model trained
 * without its group (source). Loads the training stack only when called.
 */
export async function crossValidate(dataDir: string, options: CvParams): Promise<CvReport> {
  const { crossValidate: run } = await import('./train/cv.js');
  return run(dataDir, options);
}

export type { RunningServer, ServeOptions } from './serve/server.js';

/**
 * Starts the web service (HTTP API + web page); fastify is loaded only when this is called.
 * Resolves once it listens; `close()` stops it after the requests in flight.
 */
export async function startServer(options: ServeOptions = {}): Promise<RunningServer> {
  const { startServer: start } = await import('./serve/server.js');
  return start(options);
}

// One option table per verb: the names, defaults and ranges of every option of the CLI and the library.
export { OptionError, OptionConflictError, resolveOptions, type OptionSpec, type OptionTable, type VerbSpec, type OptionsInput, type ResolvedOptions } from './options/schema.js';
export { VERBS, TRAIN, CV, EVALUATE, PREDICT, EXPORT, COMPARE, ENSEMBLE, SERVE, MODELS, BACKBONES } from './options/index.js';
export { EXPLAIN } from './options/explain.js';
