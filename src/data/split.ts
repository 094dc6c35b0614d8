/**
 * Stratified train/val split that depends only on file *contents* (sha256) and the seed, so
 * renaming, moving or re-listing files never moves an image across the split; plus a manifest
 * to record a split and reproduce it later.
 */
import { createRng } from '../util/rng.js';

/** What a split needs from an item (scanDataset's DatasetItem fits). */
export interface SplittableItem {
  label: string;
  sha256: string;
  relPath?: string;
}

export interface SplitOptions {
  /** Fraction of each class put in validation. Default 0.2. */
  valFraction?: number;
  /** Default 42. */
  seed?: number;
}

export interface SplitResult<T> {
  train: T[];
  val: T[];
  seed: number;
  valFraction: number;
}

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function groupByLabel<T extends SplittableItem>(items: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const it of items) {
    const g = groups.get(it.label);
    if (g) g.push(it);
    else groups.set(it.label, [it]);
  }
  return new Map([...groups.entries()].sort((x, y) => byCodePoint(x[0], y[0])));
}

/** How many of n items go to validation: round(n*f), at least 1 if n >= 2, never all. */
export function valCount(n: number, valFraction: number): number {
  if (n < 2 || valFraction === 0) return 0;
  const k = Math.round(n * valFraction);
  return Math.min(n - 1, Math.max(1, k));
}

/**
 * Per class: sort by sha256 (then relPath, for identical contents), shuffle with a stream
 * forked from the seed by class name (so adding a class leaves the others' split untouched),
 * and take the first valCount() for validation. Output is grouped by class in sorted order.
 */
export function stratifiedSplit<T extends SplittableItem>(items: readonly T[], opts: SplitOptions = {}): SplitResult<T> {
  const valFraction = opts.valFraction ?? 0.2;
  const seed = opts.seed ?? 42;
  if (!(valFraction >= 0 && valFraction < 1)) throw new RangeError(`valFraction must be in [0, 1), got ${valFraction}`);
  const root = createRng(seed);
  const train: T[] = [];
  const val: T[] = [];
  for (const [label, group] of groupByLabel(items)) {
    const ordered = [...group].sort(
      (a, b) => byCodePoint(a.sha256, b.sha256) || byCodePoint(a.relPath ?? '', b.relPath ?? ''),
    );
    root.fork(`split:${label}`).shuffle(ordered);
    const k = valFraction === 0 ? 0 : valCount(ordered.length, valFraction);
    val.push(...ordered.slice(0, k));
    train.push(...ordered.slice(k));
  }
  return { train, val, seed, valFraction };
}

export interface SplitManifestEntry {
  sha256: string;
  relPath: string;
  label: string;
  split: 'train' | 'val';
}

export interface SplitManifest {
  version: 1;
  /** null when the split did not come from stratifiedSplit (e.g. explicit train/ val/ folders). */
  seed: number | null;
  valFraction: number | null;
  entries: SplitManifestEntry[];
}

/** Record a split; entries are sorted so the JSON is stable and diff-friendly. */
export function splitManifest(
  train: readonly SplittableItem[],
  val: readonly SplittableItem[],
  meta: { seed?: number | null; valFraction?: number | null } = {},
): SplitManifest {
  const entry = (it: SplittableItem, split: 'train' | 'val'): SplitManifestEntry => ({
    sha256: it.sha256,
    relPath: it.relPath ?? '',
    label: it.label,
    split,
  });
  const entries = [...train.map((t) => entry(t, 'train')), ...val.map((v) => entry(v, 'val'))].sort(
    (a, b) =>
      byCodePoint(a.split, b.split) || byCodePoint(a.label, b.label) ||
      byCodePoint(a.relPath, b.relPath) || byCodePoint(a.sha256, b.sha256),
  );
  return { version: 1, seed: meta.seed ?? null, valFraction: meta.valFraction ?? null, entries };
}

export interface ApplyManifestOptions {
  /** What to do with items the manifest does not know: 'error' (default) or put them in 'train'. */
  unknown?: 'error' | 'train';
}

export interface AppliedSplit<T> {
  train: T[];
  val: T[];
  /** Items not in the manifest (only non-empty with unknown: 'train'; they are in `train`). */
  unknown: T[];
  /** Manifest entries with no matching item (files deleted since). */
  missing: SplitManifestEntry[];
}

export class SplitManifestError extends Error {
  override readonly name = 'SplitManifestError';
}

/** Validate an untrusted (e.g. JSON.parse'd) value as a SplitManifest. */
export function parseSplitManifest(value: unknown): SplitManifest {
  const bad = (why: string): never => {
    throw new SplitManifestError(`invalid split manifest: ${why}`);
  };
  if (typeof value !== 'object' || value === null) return bad('not an object');
  const v = value as Record<string, unknown>;
  if (v['version'] !== 1) bad(`unsupported version ${JSON.stringify(v['version'])}`);
  if (!Array.isArray(v['entries'])) return bad('entries is not an array');
  const entries = (v['entries'] as unknown[]).map((e, i): SplitManifestEntry => {
    const o = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
    const { sha256, relPath, label, split } = o;
    if (typeof sha256 !== 'string' || typeof relPath !== 'string' || typeof label !== 'string' ||
      (split !== 'train' && split !== 'val')) {
      return bad(`entry ${i} is malformed`);
    }
    return { sha256, relPath, label, split };
  });
  const num = (x: unknown): number | null => (typeof x === 'number' ? x : null);
  return { version: 1, seed: num(v['seed']), valFraction: num(v['valFraction']), entries };
}

/**
 * Reproduce a recorded split. Items are matched by content (sha256 + label, falling back to
 * sha256 alone, so a relabelled image keeps its side of the split); paths may have changed.
 */
export function applySplitManifest<T extends SplittableItem>(
  items: readonly T[],
  manifest: SplitManifest,
  opts: ApplyManifestOptions = {},
): AppliedSplit<T> {
  if (manifest.version !== 1) throw new SplitManifestError(`unsupported split manifest version ${String(manifest.version)}`);
  const byKey = new Map<string, SplitManifestEntry>();
  const bySha = new Map<string, SplitManifestEntry>();
  for (const e of manifest.entries) {
    byKey.set(`${e.sha256}\0${e.label}`, e);
    if (!bySha.has(e.sha256)) bySha.set(e.sha256, e);
  }
  const used = new Set<SplitManifestEntry>();
  const train: T[] = [];
  const val: T[] = [];
  const unknown: T[] = [];
  for (const it of items) {
    const e = byKey.get(`${it.sha256}\0${it.label}`) ?? bySha.get(it.sha256);
    if (!e) {
      unknown.push(it);
      continue;
    }
    used.add(e);
    (e.split === 'val' ? val : train).push(it);
  }
  if (unknown.length > 0) {
    if ((opts.unknown ?? 'error') === 'error') {
      const shown = unknown.slice(0, 20).map((u) => `  ${u.relPath ?? u.sha256} (${u.label})`);
      const more = unknown.length > 20 ? `\n  ... and ${unknown.length - 20} more` : '';
      throw new SplitManifestError(
        `${unknown.length} item(s) are not in the split manifest (pass unknown: 'train' to put them in train):\n` +
          shown.join('\n') + more,
      );
    }
    train.push(...unknown);
  }
  const missing = manifest.entries.filter((e) => !used.has(e));
  return { train, val, unknown, missing };
}
