/**
 * The files `catalog` classifies, walked lazily: an async generator, so a million files are
 * never listed at once; only the folders on the current path are held (one listing each, so a
 * single folder with a million entries is held whole: listDir reads a folder at a time).
 *
 * The policies are predict's (src/util/list-dir.ts, src/data/formats.ts): links followed, each
 * folder entered once (link loops end), hidden names skipped, in folders only files with an image
 * extension taken, a file named as SRC taken whatever its name (its record then says why it is
 * not an image). --include / --exclude (glob.ts) apply to the path below SRC; a folder matching
 * an --exclude is not entered at all.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { isSupportedImagePath } from '../data/image.js';
import { fileId, listDir, type DirEntry, type FsPath } from '../util/list-dir.js';
import { fsErrorReason } from '../util/regular-file.js';
import { anyMatch, type GlobMatcher } from './glob.js';

export interface WalkedFile {
  /** For node:fs (a Buffer when a name is not valid UTF-8). */
  fsPath: FsPath;
  /** For display and records (bad bytes as \xHH). */
  path: string;
}

export interface CatalogWalkOptions {
  include?: readonly GlobMatcher[];
  exclude?: readonly GlobMatcher[];
  /** Entries left out with a reason worth telling (a link loop, an unreadable folder, a FIFO). */
  onSkip?: (path: string, reason: string) => void;
  /** Folders (device:inode, as list-dir's fileId) never entered, e.g. where --sort-into places. */
  skipDirs?: ReadonlySet<string>;
}

/** Whether a file at `rel` (below its SRC) passes --include and --exclude. */
function wanted(rel: string, opts: CatalogWalkOptions): boolean {
  if (opts.include !== undefined && opts.include.length > 0 && !anyMatch(opts.include, rel)) return false;
  return !(opts.exclude !== undefined && anyMatch(opts.exclude, rel));
}

const relJoin = (parent: string, name: string): string => (parent === '' ? name : `${parent}/${name}`);

/**
 * The image files of `sources` (files and folders), depth first, each folder's entries in name
 * order. A source that does not exist is reported to onSkip (catalog checks them first).
 */
export async function* walkSources(sources: readonly string[], opts: CatalogWalkOptions = {}): AsyncGenerator<WalkedFile> {
  const seenDirs = new Set<string>(opts.skipDirs ?? []);
  for (const src of sources) {
    const s = await stat(src).catch((err: unknown) => err as Error);
    if (s instanceof Error) {
      opts.onSkip?.(src, fsErrorReason(s));
      continue;
    }
    if (!s.isDirectory()) {
      if (wanted(basename(src), opts)) yield { fsPath: src, path: src };
      continue;
    }
    yield* walkFolder(src, opts, seenDirs);
  }
}

async function* walkFolder(root: string, opts: CatalogWalkOptions, seenDirs: Set<string>): AsyncGenerator<WalkedFile> {
  const rootId = await fileId(root);
  if (seenDirs.has(rootId)) return;
  seenDirs.add(rootId);
  const listOpts = opts.onSkip !== undefined ? { onSkip: opts.onSkip } : {};
  const stack: { entries: DirEntry[]; i: number; rel: string }[] = [{ entries: await listDir(root, listOpts), i: 0, rel: '' }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const e = top.entries[top.i++];
    if (e === undefined) {
      stack.pop();
      continue;
    }
    if (e.name.startsWith('.')) continue;
    const rel = relJoin(top.rel, e.name);
    if (e.kind === 'file') {
      if (isSupportedImagePath(e.name) && wanted(rel, opts)) yield { fsPath: e.fsPath, path: e.path };
      continue;
    }
    if (e.kind === 'other') {
      if (isSupportedImagePath(e.name) && wanted(rel, opts)) opts.onSkip?.(e.path, `not a regular file (${e.special ?? 'special file'})`);
      continue;
    }
    if (opts.exclude !== undefined && anyMatch(opts.exclude, rel)) continue;
    if (opts.skipDirs?.has(e.id) === true) continue;
    if (seenDirs.has(e.id)) {
      opts.onSkip?.(e.path, 'folder already scanned (a symbolic link loop, or a second link to it)');
      continue;
    }
    seenDirs.add(e.id);
    try {
      stack.push({ entries: await listDir(e.fsPath, { ...listOpts, display: e.path }), i: 0, rel });
    } catch (err) {
      opts.onSkip?.(e.path, fsErrorReason(err));
    }
  }
}
