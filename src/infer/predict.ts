/**
 * Batch prediction over files: one row per image, in input order. Decoding of the next batch
 * (sharp, on libuv's thread pool) overlaps inference of the current one (ONNX Runtime, which
 * holds the main thread while it runs), so neither waits for the other.
 */
import { ImageDecodeError } from '../data/image.js';
import type { Classifier, DecodedBatch } from './classifier.js';

/** The label given when the top probability is below the confidence threshold. */
export const UNCERTAIN = 'uncertain';

/** One image's result: plain data, so it prints, serialises (JSON.stringify) and compares. */
export interface PredictionRow {
  path: string;
  /** The predicted class, `uncertain` below the confidence threshold, or null when the image failed. */
  label: string | null;
  /** The most probable class (even when `label` is `uncertain`); null on error. */
  top: string | null;
  /** Probability of `top`; null on error. */
  confidence: number | null;
  /** Probability per class, in the model's class order; null on error. */
  probabilities: Record<string, number> | null;
  /** Milliseconds for this image: its decode plus its share of the batch's inference. */
  ms: number;
  /** Why the image could not be classified (e.g. 'truncated or corrupt'). */
  error?: string;
}

export interface PredictOptions {
  /** Images per inference call (default 8). */
  batchSize?: number;
  /** Answer `uncertain` when the top probability is below this (default 0). */
  minConfidence?: number;
  /** Per-class minimum confidence (default: the model's own; pass {} to ignore them). */
  thresholds?: Record<string, number>;
}

/** Label, top class and confidence of one probability vector under the thresholds. */
export function decide(
  classes: readonly string[],
  probs: readonly number[],
  minConfidence = 0,
  thresholds: Readonly<Record<string, number>> = {},
): Pick<PredictionRow, 'label' | 'top' | 'confidence' | 'probabilities'> {
  let best = 0;
  probs.forEach((v, i) => {
    if (v > probs[best]!) best = i;
  });
  const top = classes[best]!;
  const confidence = probs[best]!;
  const needed = Math.max(minConfidence, thresholds[top] ?? 0);
  return {
    label: confidence < needed ? UNCERTAIN : top,
    top,
    confidence,
    probabilities: Object.fromEntries(classes.map((c, i) => [c, probs[i]!])),
  };
}

/** A short reason for a failed image (the decoder's stable reason, not libvips' text). */
export function errorReason(err: Error): string {
  return err instanceof ImageDecodeError ? err.reason : err.message;
}

/** Error row for a path that could not be classified. */
export function errorRow(path: string, error: string, ms = 0): PredictionRow {
  return { path, label: null, top: null, confidence: null, probabilities: null, ms, error };
}

/** Classifies `files` in batches; yields one row per file, in order; bad files give error rows. */
export async function* predictFiles(clf: Classifier, files: readonly string[], opts: PredictOptions = {}): AsyncGenerator<PredictionRow> {
  const bs = opts.batchSize ?? 8;
  if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`batch size must be a positive integer, got ${bs}`);
  const thresholds = opts.thresholds ?? clf.thresholds;
  const minConfidence = opts.minConfidence ?? 0;
  const classes = clf.classes;
  const decodeAt = (i: number): Promise<DecodedBatch> | undefined => (i < files.length ? clf.decode(files.slice(i, i + bs)) : undefined);
  let next = decodeAt(0);
  for (let i = 0; next !== undefined; i += bs) {
    const batch = await next;
    next = decodeAt(i + bs); // starts decoding while this batch runs
    const t0 = performance.now();
    const probs = await clf.run(batch);
    const share = batch.ok.length > 0 ? (performance.now() - t0) / batch.ok.length : 0;
    const byIndex = new Map(batch.ok.map((j, k) => [j, probs[k]!]));
    for (let j = 0; j < batch.errors.length; j++) {
      const path = files[i + j]!;
      const err = batch.errors[j];
      const ms = batch.decodeMs[j]!;
      if (err !== undefined) yield errorRow(path, errorReason(err), ms);
      else yield { path, ...decide(classes, byIndex.get(j)!, minConfidence, thresholds), ms: ms + share };
    }
  }
}
