/**
 * Dataset discovery: class-per-folder layouts, content hashes, duplicate/conflict detection.
 * Files are not decoded here (that is slow); checkDecodable() does it on request.
 *
 * Hostile trees are scanned safely: symbolic links are followed, but each folder is entered once
 * (by device and inode) and each file counts once per class folder, so link loops end; only
 * regular files are read (a FIFO is skipped, never opened for a blocking read); names that are
 * not valid UTF-8 are skipped with a reason (the run's manifests record paths as text).
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { extname, join, relative, resolve, sep } from 'node:path';
import { byCodePoint, dedupeFiles, fileId, listDir, walkTree, type DirEntry } from '../util/list-dir.js';
import { FileReadError, fsErrorReason, notRegular, openRegularFile } from '../util/regular-file.js';
import { SUPPORTED_EXTENSIONS, checkDecodes, isSupportedImagePath, toDecodeError } from './image.js';

export type SplitName = 'train' | 'val';

export interface DatasetItem {
  /** Absolute path. */
  path: string;
  /** Path relative to the dataset root, '/'-separated (stable across OSes). */
  relPath: string;
  label: string;
  classIndex: number;
  /** sha256 of the file bytes. */
  sha256: string;
  /** Only with the train/ + val/ layout. */
  split?: SplitName;
}

export interface SkippedFile {
  path: string;
  reason: string;
}

/** Byte-identical files inside one class: the first (train first, then by relPath) is kept. */
export interface DuplicateGroup {
  sha256: string;
  label: string;
  kept: string;
  dropped: string[];
}

/** Byte-identical files filed under different classes: all are kept; the caller decides. */
export interface LabelConflict {
  sha256: string;
  files: { relPath: string; label: string }[];
}

export interface DatasetScan {
  root: string;
  /** 'classes': root/<class>/...; 'train-val': root/{train,val}/<class>/... */
  layout: 'classes' | 'train-val';
  /** Sorted by code point; classIndex indexes this. */
  classes: string[];
  items: DatasetItem[];
  skipped: SkippedFile[];
  duplicates: DuplicateGroup[];
  conflicts: LabelConflict[];
  /** Non-fatal oddities, e.g. a class with no validation images. */
  warnings: string[];
}

export class DatasetError extends Error {
  override readonly name = 'DatasetError';
}

const isHidden = (name: string): boolean => name.startsWith('.');
const toPosix = (p: string): string => p.split(sep).join('/');

type Entry = DirEntry;

/** Skipped-file reasons of the scan (besides the readers' 'not a regular file (FIFO)' and the like). */
export const SKIP_REASONS = {
  notUtf8: 'name is not valid UTF-8 (rename it)',
  sameFile: (kept: string): string => `same file as ${kept} (a second link to it)`,
} as const;

/** Non-hidden entries of a folder, sorted; symlinks are followed (broken ones skipped and reported). */
async function list(dir: string, skipped: SkippedFile[]): Promise<Entry[]> {
  const entries = await listDir(dir, { onSkip: (path, reason) => skipped.push({ path, reason }) });
  return entries.filter((e) => !isHidden(e.name));
}

/**
 * Image files anywhere below `dir`; other files go to `skipped`. Folders in `seenDirs` (the
 * dataset root, train/, val/) are never entered again, so a link back up cannot pull the whole
 * dataset into one class. A file reached twice (links) counts once.
 */
async function collectImages(dir: Entry, root: string, seenDirs: ReadonlySet<string>, skipped: SkippedFile[]): Promise<string[]> {
  const onSkip = (path: string, reason: string): void => void skipped.push({ path, reason });
  const images: Entry[] = [];
  for (const e of await walkTree(dir.fsPath, { display: dir.path, onSkip, seenDirs: new Set(seenDirs) })) {
    if (!isSupportedImagePath(e.name)) {
      const ext = extname(e.name);
      onSkip(e.path, ext ? `unsupported file type "${ext}"` : 'no file extension');
    } else if (e.kind !== 'file') onSkip(e.path, notRegular(e.special ?? 'special file'));
    else if (typeof e.fsPath !== 'string') onSkip(e.path, `file ${SKIP_REASONS.notUtf8}`);
    else images.push(e);
  }
  const rel = (p: string): string => toPosix(relative(root, p));
  return dedupeFiles(images, (dropped, kept) => onSkip(dropped.path, SKIP_REASONS.sameFile(rel(kept.path)))).map((e) => e.path);
}

/** sha256 of a regular file's bytes, read in 1 MiB chunks (never a blocking read of a FIFO swapped in meanwhile). */
async function hashFile(path: string): Promise<string> {
  const { handle } = await openRegularFile(path);
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/** Run `fn` over `xs` with at most `limit` in flight; results keep input order. */
async function mapPool<X, Y>(xs: readonly X[], limit: number, fn: (x: X, i: number) => Promise<Y>): Promise<Y[]> {
  const out = new Array<Y>(xs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < xs.length) {
      const i = next++;
      out[i] = await fn(xs[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, xs.length) }, worker));
  return out;
}

interface Found {
  path: string;
  label: string;
  split?: SplitName;
}

export async function scanDataset(dir: string): Promise<DatasetScan> {
  const root = resolve(dir);
  let st;
  try {
    st = await stat(root);
  } catch {
    throw new DatasetError(`dataset folder not found: ${root}`);
  }
  if (!st.isDirectory()) throw new DatasetError(`dataset path is not a folder: ${root}`);

  const skipped: SkippedFile[] = [];
  const warnings: string[] = [];
  const top = await list(root, skipped);
  // A folder whose name is not valid UTF-8 cannot name a class.
  const textDirs = (entries: Entry[]): Entry[] =>
    entries.filter((e) => {
      if (!e.isDir) return false;
      if (typeof e.fsPath === 'string') return true;
      skipped.push({ path: e.path, reason: `folder ${SKIP_REASONS.notUtf8}` });
      return false;
    });
  const topDirs = textDirs(top);
  // Never walked again from inside a class folder (a link up would otherwise pull in every class).
  const seenDirs = new Set<string>([await fileId(root)]);
  const strayHere = (entries: Entry[]): void => {
    // Only images are worth a word: notes and manifests (README, manifest.csv) next to the class folders are normal.
    for (const e of entries) if (!e.isDir && isSupportedImagePath(e.path)) skipped.push({ path: e.path, reason: 'not inside a class folder' });
  };
  strayHere(top);

  const names = new Set(topDirs.map((d) => d.name));
  const layout: DatasetScan['layout'] = names.has('train') && names.has('val') ? 'train-val' : 'classes';
  if (layout === 'train-val') for (const d of topDirs) if (d.name === 'train' || d.name === 'val') seenDirs.add(d.id);
  const found: Found[] = [];
  const classSet = new Set<string>();
  const perSplitCount = new Map<string, number>(); // `${split}/${label}` -> images

  const addClassDir = async (classDir: Entry, split?: SplitName): Promise<void> => {
    classSet.add(classDir.name);
    const files = await collectImages(classDir, root, seenDirs, skipped);
    perSplitCount.set(`${split ?? ''}/${classDir.name}`, files.length);
    for (const path of files) found.push(split ? { path, label: classDir.name, split } : { path, label: classDir.name });
  };

  if (layout === 'train-val') {
    const others = topDirs.filter((d) => d.name !== 'train' && d.name !== 'val').map((d) => d.name);
    if (others.length > 0) {
      throw new DatasetError(
        `${root} has train/ and val/ folders and also ${others.map((o) => `${o}/`).join(', ')}; ` +
          'use either one folder per class, or train/ and val/ each holding the class folders',
      );
    }
    for (const split of ['train', 'val'] as const) {
      const entries = await list(join(root, split), skipped);
      strayHere(entries);
      for (const c of textDirs(entries)) await addClassDir(c, split);
    }
  } else {
    for (const c of topDirs) await addClassDir(c);
  }

  const classes = [...classSet].sort(byCodePoint);
  if (classes.length < 2) {
    throw new DatasetError(
      `need at least 2 class folders in ${layout === 'train-val' ? `${root}/train` : root}, found ${classes.length}` +
        (classes.length ? ` (${classes.join(', ')})` : '') + '; put each class\'s images in its own sub-folder',
    );
  }
  const exts = SUPPORTED_EXTENSIONS.join(' ');
  for (const c of classes) {
    if (layout === 'classes') {
      if (!perSplitCount.get(`/${c}`)) throw new DatasetError(`class folder "${c}" contains no images (looked for ${exts})`);
    } else {
      if (!perSplitCount.get(`train/${c}`)) {
        throw new DatasetError(`class "${c}" has no training images in ${root}/train/${c} (looked for ${exts})`);
      }
      if (!perSplitCount.get(`val/${c}`)) warnings.push(`class "${c}" has no validation images in val/${c}`);
    }
  }

  const hashes = await mapPool(found, 8, async (f) => {
    try {
      return await hashFile(f.path);
    } catch (err) {
      skipped.push({ path: f.path, reason: err instanceof FileReadError ? err.reason : fsErrorReason(err) });
      return null;
    }
  });

  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const all: DatasetItem[] = [];
  found.forEach((f, i) => {
    const sha256 = hashes[i];
    if (!sha256) return;
    const item: DatasetItem = {
      path: f.path,
      relPath: toPosix(relative(root, f.path)),
      label: f.label,
      classIndex: classIndex.get(f.label)!,
      sha256,
    };
    if (f.split) item.split = f.split;
    all.push(item);
  });
  // Train before val (so a train/val duplicate keeps its train copy), then class, then path.
  const rank = (s?: SplitName): number => (s === 'val' ? 1 : 0);
  all.sort((a, b) => rank(a.split) - rank(b.split) || a.classIndex - b.classIndex || byCodePoint(a.relPath, b.relPath));

  const bySha = new Map<string, DatasetItem[]>();
  for (const it of all) {
    const g = bySha.get(it.sha256);
    if (g) g.push(it);
    else bySha.set(it.sha256, [it]);
  }
  const dropped = new Set<DatasetItem>();
  const duplicates: DuplicateGroup[] = [];
  const conflicts: LabelConflict[] = [];
  for (const [sha256, group] of bySha) {
    if (group.length < 2) continue;
    const labels = [...new Set(group.map((g) => g.label))];
    for (const label of labels) {
      const same = group.filter((g) => g.label === label);
      if (same.length < 2) continue;
      same.slice(1).forEach((d) => dropped.add(d));
      duplicates.push({ sha256, label, kept: same[0]!.relPath, dropped: same.slice(1).map((d) => d.relPath) });
    }
    if (labels.length > 1) {
      conflicts.push({
        sha256,
        files: group.filter((g) => !dropped.has(g)).map((g) => ({ relPath: g.relPath, label: g.label })),
      });
    }
  }
  const items = all.filter((it) => !dropped.has(it));
  return { root, layout, classes, items, skipped, duplicates, conflicts, warnings };
}

export interface CheckDecodableOptions {
  /** Files decoded at once (default 4). */
  concurrency?: number;
  limitInputPixels?: number;
}

/**
 * Try to decode each file (metadata + a tiny full decode, which catches truncated data that a
 * header read misses). Returns the decodable items in input order and the rest with a reason.
 */
export async function checkDecodable<T extends { path: string }>(
  items: readonly T[],
  onProgress?: (done: number, total: number) => void,
  opts: CheckDecodableOptions = {},
): Promise<{ ok: T[]; skipped: SkippedFile[] }> {
  let done = 0;
  const decodeOpts = opts.limitInputPixels !== undefined ? { limitInputPixels: opts.limitInputPixels } : {};
  const results = await mapPool(items, opts.concurrency ?? 4, async (it): Promise<string | null> => {
    let reason: string | null = null;
    try {
      // The format policy (src/data/formats.ts), the header, then a tiny full decode.
      await checkDecodes(it.path, decodeOpts);
    } catch (err) {
      reason = toDecodeError(it.path, err).reason;
    }
    done++;
    onProgress?.(done, items.length);
    return reason;
  });
  const ok: T[] = [];
  const skipped: SkippedFile[] = [];
  items.forEach((it, i) => {
    const r = results[i];
    if (r == null) ok.push(it);
    else skipped.push({ path: it.path, reason: r });
  });
  return { ok, skipped };
}
