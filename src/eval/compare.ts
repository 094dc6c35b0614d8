/**
 * `compare`: several models side by side on the same evaluation images — accuracy, F1, average
 * precision, calibration, size, parameters and latency. Schema: docs/json-reports.md.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { Classifier } from '../infer/classifier.js';
import { COMPARE, type CompareInput } from '../options/infer.js';
import { OptionConflictError, resolveOptions } from '../options/schema.js';
import { readEnsemble } from '../infer/ensemble.js';
import { resolveModelPath } from '../infer/load.js';
import { warnDeprecated } from '../util/deprecate.js';
import { isFile } from '../util/fs.js';
import type { ProgressStream } from '../util/progress.js';
import { checkClasses, defaultSplitFile, evaluationSet, predictItems, type Subset } from './evaluate.js';
import { buildEvaluationReport, type EvaluationReport } from './evaluation-report.js';
import { readJsonFile } from '../util/json.js';

const { onnx } = onnxProto;

export const COMPARISON_SCHEMA = 'phoneside.comparison/1';

/**
 * `compare`'s options: the table in src/options/infer.ts (same names as the CLI's flags; `data`
 * required, models as the first argument), plus per-model TTA and where progress goes.
 */
export type CompareOptions = Omit<CompareInput, 'model'> & {
  /** Per-model test-time augmentation, by position (falls back to `tta`): e.g. one model with and without. */
  ttaPerModel?: (boolean | undefined)[];
  progress?: ProgressStream;
  cache?: boolean;
};

export interface ModelComparison {
  /** As given on the command line, and the resolved path. */
  name: string;
  path: string;
  /** Backbone id; `ensemble(a+b)` for an ensemble. */
  backbone: string;
  /** Test-time augmentation used ('hflip'); absent when none. */
  tta?: 'hflip';
  accuracy: number;
  macroF1: number;
  weightedF1: number;
  perClassF1: Record<string, number>;
  macroAveragePrecision: number | null;
  /** ECE of the deployed model (its temperature applied), and at T = 1. */
  ece: number;
  eceAtT1: number;
  temperature: number;
  mistakes: number;
  parameters: {
    /** Every weight in the deployed ONNX graph (frozen backbone included). */
    total: number | null;
    /** Weights of the layers the run trained (the bundle's layers, every member's for an ensemble; null for an .onnx file). */
    trained: number | null;
  };
  sizeBytes: {
    /** The bundle (or ensemble) folder as shipped (manifest + trained weights; the backbone comes from its own package). */
    bundle: number | null;
    /** The whole classifier as one ONNX file. */
    onnx: number | null;
  };
  latency: {
    /** Decode + preprocess + inference of one image, one call at a time. */
    singleImageMsP50: number;
    singleImageMsP90: number;
    /** Images per second over the whole evaluation (batched, decode included). */
    throughputImagesPerSecond: number;
    threads: number | null;
  };
}

export interface ComparisonReport {
  schema: typeof COMPARISON_SCHEMA;
  createdAt: string;
  data: { dir: string; subset: 'all' | Subset; images: number; perClass: Record<string, number>; skipped: { path: string; reason: string }[] };
  classes: string[];
  models: ModelComparison[];
  /** Images on which the models' predicted classes differ, and images every model got wrong. */
  agreement: { disagreements: number; allWrong: string[] };
  /** Full evaluation report per model, in the same order (for the HTML page; left out of --json by default). */
  reports?: EvaluationReport[];
}

async function dirSize(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? await dirSize(p) : (await stat(p)).size;
  }
  return total;
}

/** Sum of the element counts of an ONNX file's initializers. */
export async function countOnnxParameters(path: string): Promise<number> {
  const model = onnx.ModelProto.decode(await readFile(path));
  let n = 0;
  for (const t of model.graph?.initializer ?? []) n += (t.dims ?? []).reduce((a: number, d) => a * Number(d), 1);
  return n;
}

/** Element counts of the weights listed in a bundle manifest (no weights are read). */
async function bundleParameters(dir: string): Promise<number> {
  const m = (await readJsonFile(join(dir, 'manifest.json'))) as { graph: { nodes: { weights: { shape: number[] }[] }[] } };
  return m.graph.nodes.reduce((a, n) => a + n.weights.reduce((b, w) => b + w.shape.reduce((x, y) => x * y, 1), 0), 0);
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export async function compareModels(models: readonly string[], options: CompareOptions): Promise<ComparisonReport>;
/** @deprecated the old form, for one release: `compareModels(models, { data, ...options })`. */
export async function compareModels(models: readonly string[], dataDir: string, options?: CompareOptions): Promise<ComparisonReport>;
export async function compareModels(models: readonly string[], second: CompareOptions | string, third: CompareOptions = {}): Promise<ComparisonReport> {
  if (typeof second === 'string') {
    warnDeprecated('compareModels(models, dataDir, options)', 'compareModels(models, { data, ...options })');
    return compareModels(models, { ...third, data: second });
  }
  const opts = resolveOptions(COMPARE.options, second);
  const dataDir = opts.data;
  if (dataDir === undefined) throw new OptionConflictError(['data'], ([d]) => `compare needs ${d}, the labelled images to compare on`);
  if (models.length < 1) throw new OptionConflictError(['model'], ([m]) => `compare needs at least one ${m}`);
  const paths = models.map((m) => resolveModelPath(m));
  let splitFiles: string[] | undefined;
  if (opts.subset) {
    splitFiles = [];
    for (const [i, p] of paths.entries()) {
      const f = await defaultSplitFile(p);
      if (!(await isFile(f))) {
        throw new Error(
          `subset ${opts.subset}: ${models[i]} has no split.json, so the images it trained on are unknown ` +
            `(shipped models trained on every image); compare run folders, or drop the subset`,
        );
      }
      splitFiles.push(f);
    }
  }
  const set = await evaluationSet(dataDir, { ...(opts.subset ? { subset: opts.subset } : {}), ...(splitFiles ? { splitFiles } : {}) });
  if (set.items.length === 0) throw new Error(`no images to evaluate in ${dataDir}${opts.subset ? ` (subset ${opts.subset} of every model's split)` : ''}`);

  const rows: ModelComparison[] = [];
  const reports: EvaluationReport[] = [];
  let classes: string[] | undefined;
  for (const [i, path] of paths.entries()) {
    const tta = opts.ttaPerModel?.[i] ?? opts.tta;
    const { tta: _tta, ...loadOpts } = opts;
    const clf = await Classifier.load(path, { ...loadOpts, ...(tta !== undefined ? { tta } : {}) });
    try {
      checkClasses(models[i]!, clf.classes, set.classes);
      if (classes && classes.join() !== clf.classes.join()) {
        throw new Error(`${models[i]} has classes ${clf.classes.join(', ')} but ${models[0]} has ${classes.join(', ')}: they cannot be compared`);
      }
      classes = [...clf.classes];
      const t0 = performance.now();
      const predictions = await predictItems(clf, set.items, { ...(opts.batchSize ? { batchSize: opts.batchSize } : {}), ...(opts.progress ? { progress: opts.progress } : {}), label: models[i]! });
      const seconds = (performance.now() - t0) / 1000;
      // Latency: one image at a time, as a web request would see it.
      const runs = opts.latencyRuns;
      const sample = set.items.slice(0, Math.max(1, Math.min(runs, set.items.length)));
      for (const it of sample.slice(0, 2)) await clf.classify(it.path);
      const times: number[] = [];
      for (let k = 0; k < runs; k++) {
        const t = performance.now();
        await clf.classify(sample[k % sample.length]!.path);
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      const report = buildEvaluationReport({
        classes,
        predictions,
        temperature: clf.info.temperature,
        model: { path, backbone: clf.info.backbone.id },
        data: { dir: dataDir, subset: opts.subset ?? 'all', skipped: set.skipped },
      });
      const onnxFile = clf.source.kind === 'onnx' ? clf.source.path : clf.source.cachedOnnx;
      const bundleDir = clf.source.kind !== 'onnx' ? clf.source.path : undefined;
      const memberDirs = clf.source.kind === 'ensemble' ? (await readEnsemble(clf.source.path)).members.map((m) => m.dir) : bundleDir ? [bundleDir] : [];
      rows.push({
        name: models[i]!,
        path,
        backbone: clf.info.backbone.id,
        ...(clf.info.tta !== undefined ? { tta: clf.info.tta } : {}),
        accuracy: report.metrics.accuracy,
        macroF1: report.metrics.macroAvg.f1,
        weightedF1: report.metrics.weightedAvg.f1,
        perClassF1: Object.fromEntries(report.metrics.perClass.map((c) => [c.name, c.f1])),
        macroAveragePrecision: report.macroAveragePrecision,
        ece: report.calibration.after.ece,
        eceAtT1: report.calibration.before.ece,
        temperature: clf.info.temperature,
        mistakes: report.mistakes.length,
        parameters: {
          total: onnxFile ? await countOnnxParameters(onnxFile) : null,
          trained: memberDirs.length > 0 ? (await Promise.all(memberDirs.map(bundleParameters))).reduce((a, b) => a + b, 0) : null,
        },
        sizeBytes: { bundle: bundleDir ? await dirSize(bundleDir) : null, onnx: onnxFile ? (await stat(onnxFile)).size : null },
        latency: {
          singleImageMsP50: quantile(times, 0.5),
          singleImageMsP90: quantile(times, 0.9),
          throughputImagesPerSecond: predictions.length / seconds,
          threads: opts.threads ?? null,
        },
      });
      reports.push(report);
    } finally {
      await clf.dispose();
    }
  }
  const n = set.items.length;
  const allPredictions = reports.map((r) => r.predictions);
  let disagreements = 0;
  const allWrong: string[] = [];
  for (let k = 0; k < n; k++) {
    const preds = allPredictions.map((p) => p[k]!.predicted);
    if (new Set(preds).size > 1) disagreements++;
    if (allPredictions.every((p) => p[k]!.predicted !== p[k]!.label)) allWrong.push(allPredictions[0]![k]!.path);
  }
  const perClass = Object.fromEntries(classes!.map((c) => [c, set.items.filter((it) => it.label === c).length]));
  return {
    schema: COMPARISON_SCHEMA,
    createdAt: new Date().toISOString(),
    data: { dir: dataDir, subset: opts.subset ?? 'all', images: n, perClass, skipped: set.skipped },
    classes: classes!,
    models: rows,
    agreement: { disagreements, allWrong },
    reports,
  };
}
