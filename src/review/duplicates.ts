/**
 * Duplicates a label review should see: the same photo filed under two classes (byte-identical,
 * or a resized / recompressed copy found by perceptual hash) means at least one label is wrong;
 * byte-identical copies inside one class are a lesser note (they inflate validation figures when
 * the copies land on both sides of a split).
 */
import type { DatasetScan } from '../data/dataset.js';
import { findNearDuplicates, perceptualHash } from '../data/phash.js';

export interface LabelledFile {
  relPath: string;
  label: string;
}

export interface ExactDuplicate {
  sha256: string;
  files: LabelledFile[];
}

export interface NearDuplicatePair {
  a: LabelledFile;
  b: LabelledFile;
  /** Hamming distance of the 64-bit perceptual hashes (0 = the same picture at this scale). */
  distance: number;
}

export interface DuplicateReport {
  /** Byte-identical files under different classes. */
  crossClassExact: ExactDuplicate[];
  /** Near-identical pictures (not byte-identical) under different classes, closest first. */
  crossClassNear: NearDuplicatePair[];
  /** Byte-identical files inside one class. */
  sameClassExact: ExactDuplicate[];
  maxDistance: number;
  /** Images that could not be decoded for hashing (left out of the near-duplicate search). */
  unhashed: { relPath: string; reason: string }[];
}

export interface HashedFile extends LabelledFile {
  sha256: string;
  phash: string;
}

/** Cross-class near-duplicate pairs among hashed files; byte-identical pairs are left to the exact lists. */
export function crossClassNearPairs(files: readonly HashedFile[], maxDistance: number): NearDuplicatePair[] {
  const pairs = findNearDuplicates(
    files.map((f, i) => ({ id: i, hash: f.phash })),
    undefined,
    maxDistance,
  );
  const out: NearDuplicatePair[] = [];
  for (const p of pairs) {
    const a = files[p.a]!;
    const b = files[p.b]!;
    if (a.label === b.label || a.sha256 === b.sha256) continue;
    out.push({ a: { relPath: a.relPath, label: a.label }, b: { relPath: b.relPath, label: b.label }, distance: p.distance });
  }
  return out;
}

/** The duplicates of a scanned dataset: exact ones from the scan's hashes, near ones by perceptual hash. */
export async function findDuplicates(scan: DatasetScan, opts: { maxDistance?: number; concurrency?: number } = {}): Promise<DuplicateReport> {
  const maxDistance = opts.maxDistance ?? 4;
  const unhashed: DuplicateReport['unhashed'] = [];
  const hashed: (HashedFile | undefined)[] = new Array(scan.items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < scan.items.length) {
      const i = next++;
      const it = scan.items[i]!;
      try {
        hashed[i] = { relPath: it.relPath, label: it.label, sha256: it.sha256, phash: await perceptualHash(it.path) };
      } catch (err) {
        unhashed.push({ relPath: it.relPath, reason: err instanceof Error ? err.message : String(err) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker));
  const files = hashed.filter((h): h is HashedFile => h !== undefined);
  // The scan keeps one copy of byte-identical files inside a class; their other copies are listed here.
  const labelOf = new Map(scan.items.map((it) => [it.relPath, it.label]));
  return {
    crossClassExact: scan.conflicts.map((c) => ({ sha256: c.sha256, files: c.files.map((f) => ({ relPath: f.relPath, label: f.label })) })),
    crossClassNear: crossClassNearPairs(files, maxDistance),
    sameClassExact: scan.duplicates.map((d) => ({
      sha256: d.sha256,
      files: [d.kept, ...d.dropped].map((relPath) => ({ relPath, label: labelOf.get(relPath) ?? d.label })),
    })),
    maxDistance,
    unhashed,
  };
}
