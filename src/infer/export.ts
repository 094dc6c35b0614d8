/**
 * `export`: a trained bundle, or an ensemble of them, as ONE self-describing ONNX file (trunk +
 * trained layers + softmax, temperature folded, TTA inside the graph when used) that any ONNX
 * runtime can run; phoneside's metadata (classes, preprocessing, thresholds, backbone, tta,
 * ensemble members) travels in its `metadata_props`.
 */
import { stat } from 'node:fs/promises';
import { loadBundle } from '../model/bundle.js';
import { EXPORT, type ExportInput } from '../options/infer.js';
import { OptionConflictError, resolveOptions } from '../options/schema.js';
import { warnDeprecated } from '../util/deprecate.js';
import { writeFileAtomic } from '../util/fs.js';
import { buildClassifierOnnx, buildEnsembleOnnx } from './classifier.js';
import { isEnsembleDir } from './ensemble.js';
import { resolveModelPath } from './load.js';
import type { ClassifierInfo } from './onnx-meta.js';

/** `export`'s options: the table in src/options/infer.ts (same names as the CLI's flags; `out` required). */
export type ExportOptions = ExportInput;

export interface ExportResult {
  path: string;
  bytes: number;
  info: ClassifierInfo;
}

/** Writes the classifier of `model` (a shipped name, bundle, run or ensemble folder; default the shipped default) to `out`, atomically. */
export async function exportClassifier(options: ExportOptions): Promise<ExportResult>;
/** @deprecated the old form, for one release: `exportClassifier({ model, out, ...options })`. */
export async function exportClassifier(model: string, out: string, options?: Omit<ExportOptions, 'model' | 'out'>): Promise<ExportResult>;
export async function exportClassifier(first: ExportOptions | string, outArg?: string, rest: Omit<ExportOptions, 'model' | 'out'> = {}): Promise<ExportResult> {
  if (typeof first === 'string') {
    warnDeprecated('exportClassifier(model, out, options)', 'exportClassifier({ model, out, ...options })');
    return exportClassifier({ ...rest, model: first, ...(outArg !== undefined ? { out: outArg } : {}) });
  }
  const opts = resolveOptions(EXPORT.options, first);
  const out = opts.out;
  if (out === undefined) throw new OptionConflictError(['out'], ([o]) => `export needs ${o}, the .onnx file to write`);
  const model = resolveModelPath(opts.model);
  if ((await stat(model).catch(() => undefined))?.isFile()) {
    throw new Error(`${model} is a file; export takes a bundle, run or ensemble folder`);
  }
  const build = opts.tta !== undefined ? { tta: opts.tta } : {};
  const { bytes, info } = (await isEnsembleDir(model)) ? await buildEnsembleOnnx(model, build) : await buildClassifierOnnx(await loadBundle(model), build);
  await writeFileAtomic(out, bytes);
  return { path: out, bytes: bytes.length, info };
}
