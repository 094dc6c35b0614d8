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
import { walkEntries, type DirEntry, type FsPath } from '../util/list-dir.js';
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
  const enter = (dir: DirEntry, rel: string): boolean => !(opts.exclude !== undefined && anyMatch(opts.exclude, rel)) && opts.skipDirs?.has(dir.id) !== true;
  for await (const { entry: e, rel } of walkEntries(root, { seenDirs, enter, ...(opts.onSkip !== undefined ? { onSkip: opts.onSkip } : {}) })) {
    if (!isSupportedImagePath(e.name) || !wanted(rel, opts)) continue;
    if (e.kind === 'file') yield { fsPath: e.fsPath, path: e.path };
    else opts.onSkip?.(e.path, `not a regular file (${e.special ?? 'special file'})`);
  }
}
