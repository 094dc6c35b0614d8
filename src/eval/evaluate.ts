/**
 * `evaluate`: a trained model on a labelled folder, through the deployed path (the whole
 * classifier as one ONNX graph), giving the confusion matrix and classification report.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkDecodable, scanDataset, type SkippedFile } from '../data/dataset.js';
import { applySplitManifest, parseSplitManifest } from '../data/split.js';
import { Classifier, type LoadClassifierOptions } from '../infer/classifier.js';
import { argmax, classificationMetrics, type ClassificationMetrics } from './metrics.js';
import { ProgressBar, type ProgressStream } from '../util/progress.js';

export interface EvaluateOptions extends LoadClassifierOptions {
  /** Only the images a split.json puts in this subset (e.g. a run's validation split). */
  subset?: 'train' | 'val';
  /** The split.json to use with `subset` (default: the run folder's own). */
  splitFile?: string;
  batchSize?: number;
  progress?: ProgressStream;
}

export interface EvaluationResult {
  metrics: ClassificationMetrics;
  /** Per image: path, true label, predicted label, probabilities (for reports and galleries). */
  predictions: { path: string; label: string; predicted: string; probabilities: number[] }[];
  skipped: SkippedFile[];
  seconds: number;
}

export async function evaluate(model: string, dataDir: string, opts: EvaluateOptions = {}): Promise<EvaluationResult> {
  const t0 = performance.now();
  const clf = await Classifier.load(model, opts);
  try {
    const scan = await scanDataset(dataDir);
    const classes = clf.classes;
    const unknown = scan.classes.filter((c) => !classes.includes(c));
    if (unknown.length > 0) throw new Error(`the data has classes the model does not know: ${unknown.join(', ')} (model classes: ${classes.join(', ')})`);
    let items = scan.items;
    if (opts.subset) {
      const file = opts.splitFile ?? join(model, 'split.json');
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch {
        throw new Error(`--subset ${opts.subset} needs a split file: ${file} not found (pass --split-file)`);
      }
      const applied = applySplitManifest(items, parseSplitManifest(JSON.parse(text)), { unknown: 'train' });
      items = opts.subset === 'val' ? applied.val : applied.train;
    }
    const stream = opts.progress ?? process.stderr;
    const checked = await checkDecodable(items);
    const bar = new ProgressBar({ total: checked.ok.length, label: 'evaluate', stream, unit: 'img' });
    const batch = opts.batchSize ?? 16;
    const predictions: EvaluationResult['predictions'] = [];
    for (let i = 0; i < checked.ok.length; i += batch) {
      const chunk = checked.ok.slice(i, i + batch);
      const probs = await clf.probabilities(chunk.map((c) => c.path));
      chunk.forEach((c, k) => predictions.push({ path: c.relPath, label: c.label, predicted: classes[argmax(probs[k]!)]!, probabilities: probs[k]! }));
      bar.update(predictions.length);
    }
    bar.done();
    const metrics = classificationMetrics(
      predictions.map((p) => classes.indexOf(p.label)),
      predictions.map((p) => classes.indexOf(p.predicted)),
      classes,
    );
    return { metrics, predictions, skipped: [...scan.skipped, ...checked.skipped], seconds: (performance.now() - t0) / 1000 };
  } finally {
    await clf.dispose();
  }
}
