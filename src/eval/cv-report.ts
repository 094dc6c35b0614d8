/**
 * The report of group cross-validation (`phoneside cv`, schema phoneside.cv-report/1): per-group
 * and pooled figures, folds, the out-of-fold predictions, and what a model trained on all the data
 * should take from them (epochs, temperature, abstain thresholds). `readCvReport` checks a cv.json
 * before `train --from-cv` uses it.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonFile } from '../util/json.js';
import type { GroupedScores } from './group-metrics.js';
import { parseThresholds } from '../infer/onnx-meta.js';
import { RUN_FILES } from './run-folder.js';
import { crossFittedThresholds, fitThresholds, type GroupedThresholdRow, type ThresholdFit, type ThresholdOutcome } from './thresholds.js';

export const CV_REPORT_SCHEMA = 'phoneside.cv-report/1';

/** The files of a cv folder: the report, and its HTML page (named as in a run folder). */
export const CV_FILES = { report: 'cv.json', html: RUN_FILES.report } as const;

/** Abstain thresholds fitted on the out-of-fold predictions (calibrated with the pooled temperature). */
export interface CvAbstain {
  maxErrorRate: number;
  /** Fitted on every out-of-fold prediction: what a model trained on all the data should store. */
  fit: ThresholdFit;
  /** The honest figure: thresholds fitted without each group, applied to it, pooled. */
  crossFitted: ThresholdOutcome & { groups: Record<string, ThresholdOutcome> };
}

/** One image's out-of-fold prediction. */
export interface CvPrediction {
  path: string;
  label: string;
  group: string;
  fold: number;
  predicted: string;
  /** Temperature-scaled with its fold's temperature (what that fold's model would answer). */
  probabilities: number[];
  /** Raw logits: a pooled temperature, ensembles and thresholds are fitted from these. */
  logits: number[];
}

export interface CvFold {
  fold: number;
  heldOut: string[];
  trainImages: number;
  innerValImages: number;
  testImages: number;
  epochs: number;
  bestEpoch: number;
  temperature: number;
  accuracy: number;
  seconds: number;
}

export interface CvReport extends GroupedScores {
  schema: typeof CV_REPORT_SCHEMA;
  createdAt: string;
  dataDir: string;
  groupSpec: string;
  mode: 'leave-one-group-out' | 'group-k-fold';
  backbone: string;
  /** Backbone blocks fine-tuned (resolved from the backbone's default when not given). */
  topBlocks: number;
  classes: string[];
  folds: CvFold[];
  /** ECE of the out-of-fold probabilities at T = 1 (the folds' temperatures undone). */
  eceAtT1: number;
  /** Temperature fitted on all out-of-fold logits: what a model trained on all the data should store. */
  oofTemperature: number;
  /** Median best epoch over folds: the epoch count for a model trained on all the data. */
  medianBestEpoch: number;
  abstain: CvAbstain;
  /** Accuracy on the held-out images turned a quarter turn (same models), pooled and per group; null if not checked. */
  rotated: { accuracy: number; perGroup: Record<string, number> } | null;
  /** The recipe: every option of the run (TrainOptions and CvOptions fields) but progress. */
  options: Record<string, unknown>;
  timings: { featuresSeconds: number; trainSeconds: number; totalSeconds: number };
  predictions: CvPrediction[];
  /** Where cv.json and report.html were written (null when not written). */
  outDir: string | null;
}


/** What a final model takes from a cv report. */
export interface CvCarryOver {
  path: string;
  backbone: string;
  topBlocks: number;
  classes: string[];
  medianBestEpoch: number;
  oofTemperature: number;
  thresholds: Record<string, number>;
  /** Whether the folds were scored with flip test-time augmentation (the final model must be too). */
  tta: boolean;
  /** Figures for the model card and manifest (no predictions). */
  summary: Omit<CvReport, 'predictions' | 'options'>;
  /** The whole report as read (out-of-fold predictions included). */
  report: CvReport;
}

/** Reads a cv.json (or the folder holding one) and checks the fields a final model takes from it. */
export async function readCvReport(path: string): Promise<CvCarryOver> {
  const { file, report: r } = await readCvFile(path);
  const num = (x: unknown, what: string): number => {
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new Error(`${file}: ${what} is missing or not a number`);
    return x;
  };
  if (typeof r.backbone !== 'string' || !Array.isArray(r.classes)) throw new Error(`${file}: backbone or classes missing`);
  const thresholds = parseThresholds(r.abstain?.fit?.thresholds, file);
  const { predictions: _p, options: _o, ...summary } = r as CvReport;
  return {
    path: file,
    backbone: r.backbone,
    topBlocks: num(r.topBlocks, 'topBlocks'),
    classes: r.classes,
    medianBestEpoch: num(r.medianBestEpoch, 'medianBestEpoch'),
    oofTemperature: num(r.oofTemperature, 'oofTemperature'),
    thresholds,
    tta: (r.options as Record<string, unknown> | undefined)?.['tta'] === true,
    summary,
    report: r as CvReport,
  };
}

/**
 * A cv report (`path`: cv.json or the folder holding it) read and checked for its schema only;
 * readers check the fields they use (readCvReport: the recipe to carry over; review: the
 * out-of-fold predictions). The errors name the file.
 */
export async function readCvFile(path: string): Promise<{ file: string; report: Partial<CvReport> }> {
  const file = (await stat(path).catch(() => undefined))?.isDirectory() ? join(path, CV_FILES.report) : path;
  let raw: unknown;
  try {
    raw = await readJsonFile(file);
  } catch (err) {
    throw new Error(`cannot read the cv report ${file}: ${(err as Error).message}`);
  }
  const report = raw as Partial<CvReport>;
  if (typeof raw !== 'object' || raw === null || report.schema !== CV_REPORT_SCHEMA) throw new Error(`${file}: not a ${CV_REPORT_SCHEMA} report`);
  return { file, report };
}

/** Abstain thresholds fitted on out-of-fold rows, with the cross-fitted (fitted without each group) figures. */
export function cvAbstain(classes: readonly string[], rows: readonly GroupedThresholdRow[], maxErrorRate: number): CvAbstain {
  const outcome = (o: ThresholdOutcome): ThresholdOutcome => ({ coverage: o.coverage, errorRate: o.errorRate, answered: o.answered, errors: o.errors, total: o.total });
  const crossFitted = crossFittedThresholds(classes, rows, { maxErrorRate });
  return {
    maxErrorRate,
    fit: fitThresholds(classes, rows, { maxErrorRate }),
    crossFitted: { ...outcome(crossFitted), groups: Object.fromEntries(Object.entries(crossFitted.groups).map(([g, o]) => [g, outcome(o)])) },
  };
}
