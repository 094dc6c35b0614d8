/**
 * What a training run folder holds besides the model (metrics.jsonl, data-report.json,
 * evaluation.json), read for reports. A bare model folder or ONNX file has none of it.
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The files of a training run folder: the one list that `train` writes and the readers read. */
export const RUN_FILES = {
  /** The model bundle folder. */
  model: 'model',
  /** Every option used (its presence marks a run folder). */
  config: 'config.json',
  split: 'split.json',
  /** One JSON line per epoch. */
  metrics: 'metrics.jsonl',
  evaluationText: 'evaluation.txt',
  evaluation: 'evaluation.json',
  dataReport: 'data-report.json',
  report: 'report.html',
} as const;

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  /** NaN/null when the run had no validation split. */
  valLoss: number | null;
  valAccuracy: number | null;
  valMacroF1: number | null;
  lr: number;
  seconds: number;
}

export interface DataReport {
  classes: string[];
  counts: Record<string, { train: number; val: number }>;
  skipped: { path: string; reason: string }[];
  /** Byte-identical files inside a class (one kept). */
  duplicates: { label: string; kept: string; dropped: string[] }[];
  /** Byte-identical files under different classes. */
  conflicts: { files: { relPath: string; label: string }[] }[];
  nearDuplicatesAcrossSplit: { train: string; val: string; distance: number }[];
}

export interface RunArtifacts {
  runDir: string;
  epochs: EpochRecord[];
  bestEpoch: number | null;
  dataReport: DataReport | null;
  /** Whether the run has a split.json (so `--subset val` can hold out its training images). */
  hasSplit: boolean;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The run folder of `model` (a run folder, or the model/ folder inside one), if it is one. */
export async function findRunDir(model: string): Promise<string | undefined> {
  for (const dir of [model, basename(model) === 'model' ? dirname(model) : undefined]) {
    if (dir !== undefined && (await readText(join(dir, RUN_FILES.config))) !== undefined) return dir;
  }
  return undefined;
}

/** Reads a run's artifacts; undefined when `model` is not (inside) a run folder. */
export async function readRunArtifacts(model: string): Promise<RunArtifacts | undefined> {
  const runDir = await findRunDir(model);
  if (runDir === undefined) return undefined;
  const [jsonl, dataReport, evaluation, split] = await Promise.all(
    [RUN_FILES.metrics, RUN_FILES.dataReport, RUN_FILES.evaluation, RUN_FILES.split].map((f) => readText(join(runDir, f))),
  );
  const epochs: EpochRecord[] = [];
  for (const [i, line] of (jsonl ?? '').split('\n').entries()) {
    if (line.trim() === '') continue;
    try {
      epochs.push(JSON.parse(line) as EpochRecord);
    } catch {
      throw new Error(`${join(runDir, RUN_FILES.metrics)}: line ${i + 1} is not JSON`);
    }
  }
  const parse = <T>(text: string | undefined, file: string): T | null => {
    if (text === undefined) return null;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new Error(`${join(runDir, file)} is not valid JSON`);
    }
  };
  const ev = parse<{ bestEpoch?: number }>(evaluation, RUN_FILES.evaluation);
  return {
    runDir,
    epochs,
    bestEpoch: typeof ev?.bestEpoch === 'number' ? ev.bestEpoch : null,
    dataReport: parse<DataReport>(dataReport, RUN_FILES.dataReport),
    hasSplit: split !== undefined,
  };
}
