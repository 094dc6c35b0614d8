/**
 * Batch prediction over files: one row per image, in input order. Decoding of the next batch
 * (sharp, on libuv's thread pool) overlaps inference of the current one (ONNX Runtime, which
 * holds the main thread while it runs), so neither waits for the other.
 */
import { ImageDecodeError, readImageFile } from '../data/image.js';
import { displayPath, type FsPath } from '../util/list-dir.js';
import { PREDICT, type PredictInput } from '../options/infer.js';
import { resolveOptions } from '../options/schema.js';
import type { Classifier, DecodedBatch } from './classifier.js';
import { decide, type Prediction } from './prediction.js';

export { decide, UNCERTAIN, type Prediction } from './prediction.js';

/**
 * One image's result: its Prediction (every field null when the image failed), its path and its
 * time. Plain data, so it prints, serialises (JSON.stringify) and compares.
 */
export type PredictionRow = { [K in keyof Prediction]: Prediction[K] | null } & {
  path: string;
  /** Milliseconds for this image: its decode plus its share of the batch's inference. */
  ms: number;
  /** Why the image could not be classified (e.g. 'truncated or corrupt'). */
  error?: string;
};

/** How files become rows: the table in src/options/infer.ts (same names as predict's flags). */
export type PredictOptions = Pick<PredictInput, 'batchSize' | 'minConfidence' | 'thresholds'>;

/** A short reason for a failed image (the decoder's stable reason, not libvips' text). */
export function errorReason(err: Error): string {
  return err instanceof ImageDecodeError ? err.reason : err.message;
}

/** Error row for a path that could not be classified. */
export function errorRow(path: string, error: string, ms = 0): PredictionRow {
  return { path, label: null, predicted: null, confidence: null, probabilities: null, ms, error };
}

const NOTHING = new Uint8Array(0);

/**
 * Reads the files (regular files only: a FIFO or device is refused, never opened for a blocking
 * read; Buffer paths for names that are not UTF-8), then decodes what was read. A file that could
 * not be read goes to the decoder as 0 bytes, so the batch's indices stay the files' indices, and
 * its error is then the read error.
 */
async function readAndDecode(clf: Classifier, paths: readonly FsPath[]): Promise<DecodedBatch> {
  const readMs = new Array<number>(paths.length).fill(0);
  const readErrors = new Array<Error | undefined>(paths.length).fill(undefined);
  const bytes = await Promise.all(
    paths.map(async (p, j) => {
      const t0 = performance.now();
      try {
        return await readImageFile(p);
      } catch (err) {
        readErrors[j] = err instanceof Error ? err : new Error(String(err));
        return NOTHING;
      } finally {
        readMs[j] = performance.now() - t0;
      }
    }),
  );
  const batch = await clf.decode(bytes);
  return {
    ...batch,
    errors: batch.errors.map((e, j) => readErrors[j] ?? e),
    decodeMs: batch.decodeMs.map((ms, j) => ms + readMs[j]!),
  };
}

/**
 * Classifies `files` in batches; yields one row per file, in order; bad files give error rows. A
 * row's `path` is the file's path as text (displayPath: bytes that are not UTF-8 as \xHH).
 */
export async function* predictFiles(clf: Classifier, files: readonly FsPath[], options: PredictOptions = {}): AsyncGenerator<PredictionRow> {
  const opts = resolveOptions(PREDICT.options, options);
  const bs = opts.batchSize;
  const thresholds = opts.thresholds ? clf.thresholds : {};
  const minConfidence = opts.minConfidence ?? 0;
  const classes = clf.classes;
  const decodeAt = (i: number): Promise<DecodedBatch> | undefined => (i < files.length ? readAndDecode(clf, files.slice(i, i + bs)) : undefined);
  let next = decodeAt(0);
  for (let i = 0; next !== undefined; i += bs) {
    const batch = await next;
    next = decodeAt(i + bs); // starts decoding while this batch runs
    const t0 = performance.now();
    const probs = await clf.run(batch);
    const share = batch.ok.length > 0 ? (performance.now() - t0) / batch.ok.length : 0;
    const byIndex = new Map(batch.ok.map((j, k) => [j, probs[k]!]));
    for (let j = 0; j < batch.errors.length; j++) {
      const path = displayPath(files[i + j]!);
      const err = batch.errors[j];
      const ms = batch.decodeMs[j]!;
      if (err !== undefined) yield errorRow(path, errorReason(err), ms);
      else yield { path, ...decide(classes, byIndex.get(j)!, minConfidence, thresholds), ms: ms + share };
    }
  }
}
