/**
 * `export`: a trained bundle, or an ensemble of them, as ONE self-describing ONNX file (trunk +
 * trained layers + softmax, temperature folded, TTA inside the graph when used) that any ONNX
 * runtime can run; phoneside's metadata (classes, preprocessing, thresholds, backbone, tta,
 * ensemble members) travels in its `metadata_props`.
 */
import { stat } from 'node:fs/promises';
import { loadBundle } from '../model/bundle.js';
import { buildClassifierOnnx, buildEnsembleOnnx, writeFileAtomic } from './classifier.js';
import { isEnsembleDir } from './ensemble.js';
import type { ClassifierInfo } from './onnx-meta.js';

export interface ExportOptions {
  /** Override folder for the backbone's ImageNet weights (see LoadClassifierOptions.weights). */
  weights?: string;
  /** Test-time augmentation: true = on, false = off; default: as the model's manifest / ensemble.json says. */
  tta?: boolean;
}

export interface ExportResult {
  path: string;
  bytes: number;
  info: ClassifierInfo;
}

/** Writes the classifier of a bundle, run or ensemble folder `model` to `out` (atomically). */
export async function exportClassifier(model: string, out: string, opts: ExportOptions = {}): Promise<ExportResult> {
  if ((await stat(model).catch(() => undefined))?.isFile()) {
    throw new Error(`${model} is a file; export takes a bundle, run or ensemble folder`);
  }
  const build = { ...(opts.weights ? { weights: opts.weights } : {}), ...(opts.tta !== undefined ? { tta: opts.tta } : {}) };
  const { bytes, info } = (await isEnsembleDir(model)) ? await buildEnsembleOnnx(model, build) : await buildClassifierOnnx(await loadBundle(model), build);
  await writeFileAtomic(out, bytes);
  return { path: out, bytes: bytes.length, info };
}
