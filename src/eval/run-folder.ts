/**
 * The layout of a training run folder, for its writer (`train`) and its readers (evaluate, report,
 * compare): the one place that knows the files' names and formats. A bare model folder or ONNX
 * file has none of it.
 *
 *   model/             the model bundle (manifest.json + weights.bin)
 *   config.json        every option used (its presence marks a run folder)
 *   split.json         which image trained and which validated
 *   metrics.jsonl      one JSON line per epoch (appended by the JsonlLogger training callback)
 *   evaluation.txt     confusion matrix and classification report of the validation split
 *   evaluation.json    the same figures, the epoch kept and the calibration
 *   data-report.json   class counts, skipped files, duplicates, near-duplicates, stage timings
 *   report.html        the evaluation report of the validation split
 *
 * A new run goes into a folder that does not exist or is empty; `train --overwrite` reuses one
 * after clear() has removed these files (and only these). A run whose training diverged leaves
 * metrics.jsonl alone (the epochs up to the divergence): no model/, no config.json.
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseSplitManifest, SplitManifestError, type SplitManifest } from '../data/split.js';
import { loadBundle, saveBundle, type ModelBundle } from '../model/bundle.js';
import { isFile } from '../util/fs.js';
import { parseJsonText } from '../util/json.js';
import type { EvaluationReport } from './evaluation-report.js';
import { writeEvaluationHtml } from './html-report.js';
import type { GalleryHeatmap } from './html/evaluation-page.js';
import type { ClassificationMetrics } from './metrics.js';
import { formatClassificationReport, formatConfusionMatrix, metricsToJSON, type MetricsJSON } from './report.js';

/** The files of a training run folder. */
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

export type RunFile = keyof typeof RUN_FILES;

/** One line of metrics.jsonl. */
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

/** data-report.json, less the stage timings stored beside these fields. */
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

/** Temperature scaling fitted on the validation split (ECE NaN when there was none). */
export interface RunCalibration {
  temperature: number;
  eceBefore: number;
  eceAfter: number;
}

/** evaluation.json: the validation figures of the weights kept. */
export interface RunEvaluation extends MetricsJSON {
  split: 'val';
  bestEpoch: number;
  calibration: RunCalibration;
}

/** What the reports read from a run folder. */
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

const json = (value: unknown, indent: number): string => JSON.stringify(value, null, indent) + '\n';

/** Reads a split.json (a run's, or one given to reproduce a split). */
export async function readSplitFile(path: string): Promise<SplitManifest> {
  const raw = parseJsonText(await readFile(path, 'utf8'), path);
  try {
    return parseSplitManifest(raw);
  } catch (err) {
    if (err instanceof SplitManifestError) throw new SplitManifestError(`${path}: ${err.message}`);
    throw err;
  }
}

/** `runs/<name>-<ISO time>`, the default place of a new run (or cv) folder. */
export function timestampedRunDir(name: string): string {
  return join('runs', `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
}

export class RunFolder {
  constructor(readonly dir: string) {}

  /** The run folder that `model` is or is inside (its model/ folder); undefined when it is in none. */
  static async find(model: string): Promise<RunFolder | undefined> {
    for (const dir of [model, basename(model) === RUN_FILES.model ? dirname(model) : undefined]) {
      if (dir !== undefined && (await readText(join(dir, RUN_FILES.config))) !== undefined) return new RunFolder(dir);
    }
    return undefined;
  }

  /**
   * What a folder holds (its entry names, sorted), [] when it does not exist; throws when `dir`
   * is a file. A new run needs [] (or `clear`).
   */
  static async contents(dir: string): Promise<string[]> {
    const st = await stat(dir).catch(() => undefined);
    if (st === undefined) return [];
    if (!st.isDirectory()) throw new Error(`${dir} is a file, not a run folder`);
    return (await readdir(dir)).sort();
  }

  /** Makes the folder (and its parents); `clear: true` first removes the run files of an earlier run there (see clear()). */
  static async create(dir: string, opts: { clear?: boolean } = {}): Promise<RunFolder> {
    const run = new RunFolder(resolve(dir));
    if (opts.clear) await run.clear();
    await mkdir(run.dir, { recursive: true });
    return run;
  }

  /** Removes every file of the run layout (RUN_FILES) from the folder; other files stay. */
  async clear(): Promise<void> {
    for (const f of Object.keys(RUN_FILES) as RunFile[]) await rm(this.path(f), { recursive: true, force: true });
  }

  path(file: RunFile): string {
    return join(this.dir, RUN_FILES[file]);
  }

  /** The model bundle's folder. */
  get modelDir(): string {
    return this.path('model');
  }

  /** metrics.jsonl, where a JsonlLogger appends each epoch's record during training. */
  get metricsFile(): string {
    return this.path('metrics');
  }

  get splitFile(): string {
    return this.path('split');
  }

  // Writers (train).

  writeModel(bundle: ModelBundle): Promise<void> {
    return saveBundle(this.modelDir, bundle);
  }

  /** The options of the run, as JSON (callers leave out what does not serialise). */
  writeConfig(config: Record<string, unknown>): Promise<void> {
    return writeFile(this.path('config'), json(config, 2));
  }

  writeSplit(manifest: SplitManifest): Promise<void> {
    return writeFile(this.splitFile, json(manifest, 1));
  }

  /** evaluation.txt (confusion matrix and classification report) and evaluation.json. */
  async writeEvaluation(metrics: ClassificationMetrics, kept: { bestEpoch: number; calibration: RunCalibration }): Promise<void> {
    await writeFile(this.path('evaluationText'), `${formatConfusionMatrix(metrics)}\n\n${formatClassificationReport(metrics, 4)}\n`);
    const record: RunEvaluation = { split: 'val', bestEpoch: kept.bestEpoch, ...metricsToJSON(metrics), calibration: kept.calibration };
    await writeFile(this.path('evaluation'), json(record, 2));
  }

  writeDataReport(report: DataReport, timings: object): Promise<void> {
    return writeFile(this.path('dataReport'), json({ ...report, timings }, 2));
  }

  /** report.html; `dataDir` is where the report's image paths are relative to. */
  writeReport(report: EvaluationReport, dataDir: string, heatmaps?: ReadonlyMap<string, GalleryHeatmap>): Promise<void> {
    return writeEvaluationHtml(this.path('report'), report, { dataDir, ...(heatmaps !== undefined ? { heatmaps } : {}) });
  }

  // Readers (evaluate, report, compare); a file the run does not have reads as null (epochs: none).

  readModel(): Promise<ModelBundle> {
    return loadBundle(this.modelDir);
  }

  readConfig(): Promise<Record<string, unknown> | null> {
    return this.readJson<Record<string, unknown>>('config');
  }

  async readSplit(): Promise<SplitManifest | null> {
    return (await isFile(this.splitFile)) ? readSplitFile(this.splitFile) : null;
  }

  async readEpochs(): Promise<EpochRecord[]> {
    const jsonl = await readText(this.metricsFile);
    const epochs: EpochRecord[] = [];
    for (const [i, line] of (jsonl ?? '').split('\n').entries()) {
      if (line.trim() === '') continue;
      try {
        epochs.push(JSON.parse(line) as EpochRecord);
      } catch {
        throw new Error(`${this.metricsFile}: line ${i + 1} is not JSON`);
      }
    }
    return epochs;
  }

  readEvaluation(): Promise<Partial<RunEvaluation> | null> {
    return this.readJson<Partial<RunEvaluation>>('evaluation');
  }

  readDataReport(): Promise<DataReport | null> {
    return this.readJson<DataReport>('dataReport');
  }

  /** The figures the reports show: epochs, the epoch kept, the data report, whether there is a split. */
  async readArtifacts(): Promise<RunArtifacts> {
    const [epochs, evaluation, dataReport, hasSplit] = await Promise.all([
      this.readEpochs(),
      this.readEvaluation(),
      this.readDataReport(),
      isFile(this.splitFile),
    ]);
    return { runDir: this.dir, epochs, bestEpoch: typeof evaluation?.bestEpoch === 'number' ? evaluation.bestEpoch : null, dataReport, hasSplit };
  }

  private async readJson<T>(file: RunFile): Promise<T | null> {
    const text = await readText(this.path(file));
    if (text === undefined) return null;
    return parseJsonText(text, this.path(file)) as T;
  }
}

/** Reads a run's artifacts; undefined when `model` is not (inside) a run folder. */
export async function readRunArtifacts(model: string): Promise<RunArtifacts | undefined> {
  return (await RunFolder.find(model))?.readArtifacts();
}
