/**
 * The evaluation report as data: everything the HTML page (and `--json`) shows, built from
 * predictions alone plus what a training run left on disk. Schema: docs/json-reports.md.
 */
import { classificationMetrics } from './metrics.js';
import { argmax } from '../util/argmax.js';
import { metricsToJSON, type MetricsJSON } from './report.js';
import { mostConfusedPairs, precisionRecallCurve, reliabilityDiagram, uncalibrate, type ConfusedPair, type PrPoint, type Reliability } from './curves.js';
import type { RunArtifacts } from './run-folder.js';
import type { GroupScore } from './group-metrics.js';

export const EVALUATION_REPORT_SCHEMA = 'phoneside.evaluation-report/1';
export const RELIABILITY_BINS = 15;

export interface ReportPrediction {
  /** Image path as shown (relative to the data folder). */
  path: string;
  label: string;
  predicted: string;
  /** Model output: calibrated (temperature-scaled) probabilities in class order. */
  probabilities: number[];
  /** The image's group (source), when the report comes from group cross-validation. */
  group?: string;
}

export interface Mistake {
  path: string;
  label: string;
  predicted: string;
  /** Probability of the predicted class. */
  confidence: number;
  /** Probability the model gave the true class. */
  trueClassProbability: number;
}

export interface PrCurveJSON {
  class: string;
  /** null when the class has no images in the data (undefined AP). */
  averagePrecision: number | null;
  positives: number;
  points: PrPoint[];
}

export interface EvaluationReport {
  schema: typeof EVALUATION_REPORT_SCHEMA;
  createdAt: string;
  model: { path: string; backbone: string; classes: string[]; temperature: number };
  data: { dir: string; subset: 'all' | 'train' | 'val'; images: number; perClass: Record<string, number>; skipped: { path: string; reason: string }[] };
  metrics: MetricsJSON;
  /** Mean of the per-class average precisions (classes with images only). */
  macroAveragePrecision: number | null;
  prCurves: PrCurveJSON[];
  /** Reliability before (T = 1) and after temperature scaling (the model's own T). */
  calibration: { temperature: number; before: Reliability; after: Reliability };
  confusedPairs: ConfusedPair[];
  /** Every misclassified image, most confident mistake first. */
  mistakes: Mistake[];
  /** From the run folder (null for a bare model): per-epoch figures and the epoch kept. */
  training: { epochs: RunArtifacts['epochs']; bestEpoch: number | null } | null;
  /** From the run folder's data-report.json (null for a bare model). */
  dataSummary: RunArtifacts['dataReport'];
  /** Per-group figures (group cross-validation); null otherwise. */
  groups: GroupScore[] | null;
  predictions: ReportPrediction[];
}

export interface BuildReportInput {
  classes: string[];
  predictions: ReportPrediction[];
  temperature: number;
  model: { path: string; backbone: string };
  data: { dir: string; subset: 'all' | 'train' | 'val'; skipped: { path: string; reason: string }[] };
  run?: RunArtifacts | undefined;
  /** Per-group figures, for a report of group cross-validation. */
  groups?: GroupScore[];
  /**
   * Probabilities at T = 1 for the 'before' reliability diagram, when the predictions were not all
   * scaled by `temperature` (cross-validation folds each fit their own); default: derived from it.
   */
  probabilitiesAtT1?: number[][];
}

export function buildEvaluationReport(input: BuildReportInput): EvaluationReport {
  const { classes, predictions } = input;
  const yTrue = predictions.map((p) => {
    const i = classes.indexOf(p.label);
    if (i < 0) throw new Error(`${p.path}: label '${p.label}' is not one of the model's classes (${classes.join(', ')})`);
    return i;
  });
  const probs = predictions.map((p) => p.probabilities);
  const metrics = classificationMetrics(yTrue, probs.map(argmax), classes);
  const prCurves = classes.map((c, k): PrCurveJSON => {
    const curve = precisionRecallCurve(probs.map((row) => row[k]!), yTrue.map((y) => y === k));
    return { class: c, averagePrecision: Number.isNaN(curve.averagePrecision) ? null : curve.averagePrecision, positives: curve.positives, points: curve.points };
  });
  const aps = prCurves.map((c) => c.averagePrecision).filter((x): x is number => x !== null);
  const mistakes = predictions
    .map((p, i): Mistake | undefined => {
      const predicted = argmax(p.probabilities);
      if (predicted === yTrue[i]) return undefined;
      return { path: p.path, label: p.label, predicted: classes[predicted]!, confidence: p.probabilities[predicted]!, trueClassProbability: p.probabilities[yTrue[i]!]! };
    })
    .filter((m): m is Mistake => m !== undefined)
    .sort((a, b) => b.confidence - a.confidence);
  const perClass = Object.fromEntries(classes.map((c, k) => [c, yTrue.filter((y) => y === k).length]));
  return {
    schema: EVALUATION_REPORT_SCHEMA,
    createdAt: new Date().toISOString(),
    model: { ...input.model, classes: [...classes], temperature: input.temperature },
    data: { ...input.data, images: predictions.length, perClass },
    metrics: metricsToJSON(metrics),
    macroAveragePrecision: aps.length ? aps.reduce((a, b) => a + b, 0) / aps.length : null,
    prCurves,
    calibration: {
      temperature: input.temperature,
      before: reliabilityDiagram(input.probabilitiesAtT1 ?? uncalibrate(probs, input.temperature), yTrue, RELIABILITY_BINS),
      after: reliabilityDiagram(probs, yTrue, RELIABILITY_BINS),
    },
    confusedPairs: mostConfusedPairs(metrics.confusion, classes),
    mistakes,
    training: input.run ? { epochs: input.run.epochs, bestEpoch: input.run.bestEpoch } : null,
    dataSummary: input.run?.dataReport ?? null,
    groups: input.groups ?? null,
    predictions,
  };
}

/** JSON text of a report: NaN (empty reliability bins) becomes null, as JSON has no NaN. */
export function reportToJSON(report: object): string {
  return JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n';
}
