/**
 * `export`: a trained bundle as ONE self-describing ONNX file (trunk + trained layers + softmax,
 * temperature folded) that any ONNX runtime can run; phoneside's metadata (classes,
 * preprocessing, thresholds, backbone) travels in its `metadata_props`.
 */
import { stat } from 'node:fs/promises';
import { loadBundle } from '../model/bundle.js';
import { buildClassifierOnnx, writeFileAtomic } from './classifier.js';
import type { ClassifierInfo } from './onnx-meta.js';

export interface ExportOptions {
  /** Override folder for the backbone's ImageNet weights. */
  weights?: string;
}

export interface ExportResult {
  path: string;
  bytes: number;
  info: ClassifierInfo;
}

/** Writes the classifier of a bundle or run folder `model` to `out` (atomically). */
export async function exportClassifier(model: string, out: string, opts: ExportOptions = {}): Promise<ExportResult> {
  if ((await stat(model).catch(() => undefined))?.isFile()) {
    throw new Error(`${model} is a file; export takes a bundle folder or a run folder`);
  }
  const bundle = await loadBundle(model);
  const { bytes, info } = await buildClassifierOnnx(bundle, opts.weights ? { weights: opts.weights } : {});
  await writeFileAtomic(out, bytes);
  return { path: out, bytes: bytes.length, info };
}
