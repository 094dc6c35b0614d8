/**
 * `evaluate`: a trained model on a labelled folder, through the deployed path (the whole
 * classifier as one ONNX graph), giving the confusion matrix and classification report.
 */
import { checkDecodable, scanDataset, type DatasetItem, type SkippedFile } from '../data/dataset.js';
import { applySplitManifest, type SplitManifest } from '../data/split.js';
import { Classifier } from '../infer/classifier.js';
import { EVALUATE, type EvaluateInput } from '../options/infer.js';
import { OptionConflictError, resolveOptions } from '../options/schema.js';
import { warnDeprecated } from '../util/deprecate.js';
import { resolveModelPath } from '../infer/load.js';
import { buildEvaluationReport, type EvaluationReport, type ReportPrediction } from './evaluation-report.js';
import { classificationMetrics, type ClassificationMetrics } from './metrics.js';
import { argmax } from '../util/argmax.js';
import { readRunArtifacts, readSplitFile, RunFolder } from './run-folder.js';
import { isFile } from '../util/fs.js';
import { ProgressBar, type ProgressStream } from '../util/progress.js';

export type Subset = 'train' | 'val';

/** `evaluate`'s options: the table in src/options/infer.ts (same names as the CLI's flags), and where progress goes. */
export type EvaluateOptions = EvaluateInput & { progress?: ProgressStream; cache?: boolean };

/** One evaluated image: path (relative to the data folder), true label, predicted label, probabilities. */
export type EvaluatedImage = Omit<ReportPrediction, 'group'>;

export interface EvaluationResult {
  /** The model as evaluated: its path, backbone, classes, softmax temperature and test-time augmentation (absent: none). */
  model: { path: string; backbone: string; classes: string[]; temperature: number; tta?: 'hflip' };
  dataDir: string;
  subset: 'all' | Subset;
  metrics: ClassificationMetrics;
  /** Per image: path, true label, predicted label, probabilities (for reports and galleries). */
  predictions: EvaluatedImage[];
  skipped: SkippedFile[];
  seconds: number;
}

export interface EvaluationSet {
  items: DatasetItem[];
  skipped: SkippedFile[];
  classes: string[];
}

async function readSplit(file: string, subset: Subset): Promise<SplitManifest> {
  if (!(await isFile(file))) {
    throw new OptionConflictError(['subset', 'split'], ([sub, split]) => `${sub} ${subset} needs a split file: ${file} not found (give one with ${split})`);
  }
  return readSplitFile(file);
}

/**
 * The decodable labelled images of `dataDir`; with `subset`, only those that every split file
 * puts in that subset (several files: images none of the runs trained on, for a fair comparison).
 */
export async function evaluationSet(dataDir: string, opts: { subset?: Subset; splitFiles?: string[] } = {}): Promise<EvaluationSet> {
  const scan = await scanDataset(dataDir);
  let items = scan.items;
  if (opts.subset) {
    const files = opts.splitFiles ?? [];
    if (files.length === 0) throw new Error(`subset ${opts.subset} needs a split file`);
    for (const file of files) {
      const applied = applySplitManifest(items, await readSplit(file, opts.subset), { unknown: 'train' });
      items = opts.subset === 'val' ? applied.val : applied.train;
    }
  }
  const checked = await checkDecodable(items);
  return { items: checked.ok, skipped: [...scan.skipped, ...checked.skipped], classes: scan.classes };
}

/** Runs `clf` over `items` in batches; probabilities are the model's (calibrated) output. */
export async function predictItems(clf: Classifier, items: readonly DatasetItem[], opts: { batchSize?: number; progress?: ProgressStream; label?: string } = {}): Promise<EvaluatedImage[]> {
  const classes = clf.classes;
  const bar = new ProgressBar({ total: items.length, label: opts.label ?? 'evaluate', stream: opts.progress ?? process.stderr, unit: 'img' });
  const batch = opts.batchSize ?? 16;
  const out: EvaluatedImage[] = [];
  for (let i = 0; i < items.length; i += batch) {
    const chunk = items.slice(i, i + batch);
    const probs = await clf.probabilities(chunk.map((c) => c.path));
    chunk.forEach((c, k) => out.push({ path: c.relPath, label: c.label, predicted: classes[argmax(probs[k]!)]!, probabilities: probs[k]! }));
    bar.update(out.length);
  }
  bar.done();
  return out;
}

/** The split.json of the run that `model` belongs to (a run folder or its model/ folder). */
export async function defaultSplitFile(model: string): Promise<string> {
  return ((await RunFolder.find(model)) ?? new RunFolder(model)).splitFile;
}

export function checkClasses(model: string, modelClasses: readonly string[], dataClasses: readonly string[]): void {
  const unknown = dataClasses.filter((c) => !modelClasses.includes(c));
  if (unknown.length > 0) throw new Error(`the data has classes ${model} does not know: ${unknown.join(', ')} (model classes: ${modelClasses.join(', ')})`);
}

/**
 * Evaluates `opts.model` (a shipped model's name, default the shipped default; a run, bundle or
 * ensemble folder; an exported .onnx) on the labelled images of `dataDir`.
 */
export async function evaluate(dataDir: string, options?: EvaluateOptions): Promise<EvaluationResult>;
/** @deprecated the old form, for one release: `evaluate(dataDir, { model })`. */
export async function evaluate(model: string, dataDir: string, options?: EvaluateOptions): Promise<EvaluationResult>;
export async function evaluate(first: string, second: string | EvaluateOptions = {}, third: EvaluateOptions = {}): Promise<EvaluationResult> {
  if (typeof second === 'string') {
    warnDeprecated('evaluate(model, dataDir, options)', 'evaluate(dataDir, { model, ...options })');
    return evaluate(second, { ...third, model: first });
  }
  const dataDir = first;
  const { splitFile, ...given } = second as EvaluateOptions & { splitFile?: string };
  if (splitFile !== undefined) warnDeprecated('the evaluate option splitFile', 'split');
  const opts = resolveOptions(EVALUATE.options, { ...(splitFile !== undefined ? { split: splitFile } : {}), ...given });
  const t0 = performance.now();
  const model = resolveModelPath(opts.model);
  const clf = await Classifier.load(model, opts);
  try {
    const set = await evaluationSet(dataDir, opts.subset ? { subset: opts.subset, splitFiles: [opts.split ?? (await defaultSplitFile(model))] } : {});
    checkClasses(model, clf.classes, set.classes);
    const predictions = await predictItems(clf, set.items, opts);
    const classes = clf.classes;
    const metrics = classificationMetrics(
      predictions.map((p) => classes.indexOf(p.label)),
      predictions.map((p) => classes.indexOf(p.predicted)),
      classes,
    );
    return {
      model: { path: model, backbone: clf.info.backbone.id, classes: [...classes], temperature: clf.info.temperature, ...(clf.info.tta !== undefined ? { tta: clf.info.tta } : {}) },
      dataDir,
      subset: opts.subset ?? 'all',
      metrics,
      predictions,
      skipped: set.skipped,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await clf.dispose();
  }
}

/** The full evaluation report (curves, calibration, mistakes, and the run's history if any). */
export async function evaluationReport(result: EvaluationResult): Promise<EvaluationReport> {
  return buildEvaluationReport({
    classes: result.model.classes,
    predictions: result.predictions,
    temperature: result.model.temperature,
    model: { path: result.model.path, backbone: result.model.backbone },
    data: { dir: result.dataDir, subset: result.subset, skipped: result.skipped },
    run: await readRunArtifacts(result.model.path),
  });
}
