/**
 * Command-line paths -> image files: plain files (taken as given), folders (searched recursively
 * for image extensions) and glob patterns with `*`, `?` and `**` (expanded here with node:fs,
 * because Node 20 has no fs.glob and shells differ: quoted patterns reach us unexpanded).
 *
 * Safe on hostile trees: links are followed but each folder is entered once (device + inode), so
 * link loops end; each file is listed once however many names lead to it; a FIFO or device with an
 * image name is listed (its row then says 'not a regular file (FIFO)': nothing here opens it); a
 * name that is not valid UTF-8 is kept as a Buffer path, so it can still be read.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isSupportedImagePath } from '../data/image.js';
import { childPath, listDir, statEntry, walkTree, type DirEntry, type FsPath } from '../util/list-dir.js';
import { fsErrorReason } from '../util/regular-file.js';

export interface InputProblem {
  path: string;
  error: string;
}

export interface ExpandedInputs {
  /**
   * Files to classify, in argument order (folders and glob matches sorted), each file once (two
   * names of one file, by device and inode, count once). A Buffer is the path of a file whose name
   * is not valid UTF-8 (found in a folder); show it with displayPath (src/util/list-dir.ts).
   */
  files: FsPath[];
  /** Arguments that named nothing usable: missing paths, patterns without matches. */
  problems: InputProblem[];
}

export function hasGlobMagic(s: string): boolean {
  return /[*?]/.test(s);
}

/** One path segment pattern (`*`, `?`; no `/`) as an anchored RegExp. */
export function segmentRegExp(segment: string): RegExp {
  let re = '';
  for (const ch of segment) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

type Entry = DirEntry;

/** Entries of a folder, sorted; symlinks followed (broken ones dropped); [] if unreadable. */
async function list(dir: FsPath, display: string): Promise<Entry[]> {
  try {
    return await listDir(dir, { display });
  } catch {
    return [];
  }
}

const isHidden = (name: string): boolean => name.startsWith('.');

/** Image files below `dir` (hidden entries skipped, links followed, each folder entered once). */
async function walkImages(dir: FsPath, display: string): Promise<Entry[]> {
  return (await walkTree(dir, { display, skipHidden: true })).filter((e) => isSupportedImagePath(e.name));
}

/** An entry for `fsPath` (stat follows links), shown as `path`; undefined if it does not exist. */
async function entryFor(fsPath: FsPath, path: string, name = path): Promise<Entry | undefined> {
  const s = await stat(fsPath, { bigint: true }).catch(() => undefined);
  return s && statEntry(name, path, fsPath, s);
}

/**
 * Entries (files and folders) matching the pattern segments `segs` below `dir`. `visited` holds
 * (folder, remaining pattern) pairs already expanded, so `**` through a link loop ends.
 */
async function matchSegments(dir: Entry, segs: readonly string[], out: Entry[], visited: Set<string>): Promise<void> {
  const [seg, ...rest] = segs;
  if (seg === undefined) return;
  const key = `${dir.id}|${segs.length}`;
  if (visited.has(key)) return;
  visited.add(key);
  if (seg === '**') {
    // Zero folders, then one or more (hidden folders are not entered, as in shells).
    if (rest.length === 0) out.push(dir);
    else await matchSegments(dir, rest, out, visited);
    for (const e of await list(dir.fsPath, dir.path)) {
      if (e.isDir && !isHidden(e.name)) await matchSegments(e, segs, out, visited);
    }
    return;
  }
  if (!hasGlobMagic(seg)) {
    const e = await entryFor(childPath(dir.fsPath, seg), join(dir.path, seg), seg);
    if (!e) return;
    if (rest.length === 0) out.push(e);
    else if (e.isDir) await matchSegments(e, rest, out, visited);
    return;
  }
  const re = segmentRegExp(seg);
  for (const e of await list(dir.fsPath, dir.path)) {
    if (isHidden(e.name) && !seg.startsWith('.')) continue;
    if (!re.test(e.name)) continue;
    if (rest.length === 0) out.push(e);
    else if (e.isDir) await matchSegments(e, rest, out, visited);
  }
}

/** The files of one glob pattern: matched images, plus the images inside matched folders. */
async function expandGlob(pattern: string): Promise<Entry[]> {
  const segs = pattern.split('/');
  const first = segs.findIndex(hasGlobMagic);
  const baseSegs = segs.slice(0, first);
  // '/a/*' splits to ['', 'a', '*']: an empty first segment means the root.
  const base = baseSegs.length === 0 ? '.' : baseSegs.join('/') || '/';
  const baseEntry = await entryFor(base, base);
  if (!baseEntry?.isDir) return [];
  const matches: Entry[] = [];
  await matchSegments(baseEntry, segs.slice(first).filter((s) => s !== ''), matches, new Set());
  const files: Entry[] = [];
  for (const m of matches) {
    if (m.isDir) files.push(...(await walkImages(m.fsPath, m.path).catch(() => [])));
    else if (isSupportedImagePath(m.name)) files.push(m);
  }
  return files;
}

/** Expands command-line paths; never throws for missing paths (they become problems). */
export async function expandInputs(args: readonly string[]): Promise<ExpandedInputs> {
  const files: FsPath[] = [];
  const problems: InputProblem[] = [];
  const have = new Set<string>(); // device:inode of each file listed
  const add = (e: Entry): void => {
    if (!have.has(e.id)) {
      have.add(e.id);
      files.push(e.fsPath);
    }
  };
  for (const arg of args) {
    if (hasGlobMagic(arg)) {
      const found = await expandGlob(arg);
      if (found.length === 0) problems.push({ path: arg, error: 'no image files match' });
      found.forEach(add);
      continue;
    }
    const e = await entryFor(arg, arg);
    if (!e) {
      // Node decodes the command line as UTF-8: a name that is not UTF-8 arrives with U+FFFD in it.
      const hint = arg.includes('\uFFFD') ? ' (its name may not be valid UTF-8: give its folder instead)' : '';
      problems.push({ path: arg, error: `file not found${hint}` });
    } else if (e.isDir) {
      try {
        (await walkImages(arg, arg)).forEach(add);
      } catch (err) {
        problems.push({ path: arg, error: fsErrorReason(err) });
      }
    } else add(e); // named explicitly: tried whatever its extension, so a non-image gets a clear error row
  }
  return { files, problems };
}
