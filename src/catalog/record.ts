/**
 * One catalogued image: what `phoneside catalog` appends to its JSON-lines output and what a
 * queue worker stores per image. Keyed by the sha256 of the file's bytes, so a renamed or copied
 * file is recognised as already done, and a job delivered twice is counted once.
 */
import type { Classifier, DecodedBatch } from '../infer/classifier.js';
import type { ModelIdentity } from '../infer/identity.js';
import { errorReason } from '../infer/predict.js';
import { decide, type Prediction } from '../infer/prediction.js';
import { sha256Hex } from '../util/hash.js';

export interface CatalogRecord {
  /** The image's path as given or walked (displayPath: bytes that are not UTF-8 as \xHH). */
  path: string;
  /** sha256 of the file's bytes, lowercase hex: the record's key. */
  sha256: string;
  /** The answer: a class, or 'uncertain' below the model's threshold; null when `error`. */
  label: string | null;
  predicted: Prediction['predicted'] | null;
  confidence: number | null;
  probabilities: Record<string, number> | null;
  model: ModelIdentity;
  /** Why the image could not be classified (e.g. 'truncated or corrupt'). */
  error?: string;
}

/** An image to classify: its path (for the record) and its bytes. */
export interface CatalogItem {
  path: string;
  bytes: Uint8Array;
  /** sha256 of `bytes`, when the caller already has it. */
  sha256?: string;
}

export interface ClassifyItemsOptions {
  /** Apply the model's per-class thresholds (default true). */
  thresholds?: boolean;
  /** Answer 'uncertain' below this top probability too (default 0). */
  minConfidence?: number;
}

const round6 = (x: number): number => Number(x.toFixed(6));

/** Records of a batch of images, in input order; an image that cannot be decoded gets an error record. */
export async function classifyItems(clf: Classifier, model: ModelIdentity, items: readonly CatalogItem[], opts: ClassifyItemsOptions = {}): Promise<CatalogRecord[]> {
  const batch = await clf.decode(items.map((it) => it.bytes));
  return recordsOfBatch(clf, model, items, batch, await clf.run(batch), opts);
}

/**
 * Records of `items` from their decoded batch and its probabilities (classifyItems in two steps,
 * for callers that decode the next batch while this one runs, as `catalog` does).
 */
export function recordsOfBatch(clf: Classifier, model: ModelIdentity, items: readonly CatalogItem[], batch: DecodedBatch, probs: readonly number[][], opts: ClassifyItemsOptions = {}): CatalogRecord[] {
  const thresholds = opts.thresholds === false ? {} : clf.thresholds;
  const byIndex = new Map(batch.ok.map((j, k) => [j, probs[k]!]));
  return items.map((it, j) => {
    const base = { path: it.path, sha256: it.sha256 ?? sha256Hex(it.bytes) };
    const err = batch.errors[j];
    if (err !== undefined) return { ...base, label: null, predicted: null, confidence: null, probabilities: null, model, error: errorReason(err) };
    const p = decide(clf.classes, byIndex.get(j)!, opts.minConfidence ?? 0, thresholds);
    return { ...base, label: p.label, predicted: p.predicted, confidence: round6(p.confidence), probabilities: Object.fromEntries(Object.entries(p.probabilities).map(([k, v]) => [k, round6(v)])), model };
  });
}

/** A record as one JSON line (with its newline). */
export function recordLine(r: CatalogRecord): string {
  return `${JSON.stringify(r)}\n`;
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/**
 * A record from one line of a catalog file, or undefined when the line is not a whole, valid
 * record (e.g. the torn last line of a run that was killed mid-write).
 */
export function parseRecordLine(line: string): CatalogRecord | undefined {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null) return undefined;
  const r = o as Record<string, unknown>;
  const model = r['model'] as Record<string, unknown> | undefined;
  if (typeof r['path'] !== 'string' || typeof r['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(r['sha256'])) return undefined;
  if (typeof model !== 'object' || model === null || typeof model['id'] !== 'string' || typeof model['version'] !== 'string') return undefined;
  const ok = typeof r['label'] === 'string' && typeof r['predicted'] === 'string' && isNum(r['confidence']) && typeof r['probabilities'] === 'object' && r['probabilities'] !== null;
  const failed = typeof r['error'] === 'string' && r['label'] === null;
  return ok || failed ? (r as unknown as CatalogRecord) : undefined;
}
