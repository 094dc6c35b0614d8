/**
 * Command-line paths -> image files: plain files (taken as given), folders (searched recursively
 * for image extensions) and glob patterns with `*`, `?` and `**` (expanded here with node:fs,
 * because Node 20 has no fs.glob and shells differ: quoted patterns reach us unexpanded).
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isSupportedImagePath } from '../data/image.js';
import { listDir, type DirEntry } from '../util/list-dir.js';

export interface InputProblem {
  path: string;
  error: string;
}

export interface ExpandedInputs {
  /** Files to classify, in argument order (folders and glob matches sorted), without duplicates. */
  files: string[];
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
async function list(dir: string): Promise<Entry[]> {
  try {
    return await listDir(dir);
  } catch {
    return [];
  }
}

/** Image files below `dir` (recursive, hidden entries skipped, symlink loops guarded). */
async function walkImages(dir: string, seen: Set<string>): Promise<string[]> {
  const real = resolve(dir);
  if (seen.has(real)) return [];
  seen.add(real);
  const files: string[] = [];
  for (const e of await list(dir)) {
    if (e.name.startsWith('.')) continue;
    if (e.isDir) files.push(...(await walkImages(e.path, seen)));
    else if (isSupportedImagePath(e.name)) files.push(e.path);
  }
  return files;
}

/** Paths (files and folders) matching the pattern segments `segs` below `dir`. */
async function matchSegments(dir: string, segs: readonly string[], out: Entry[]): Promise<void> {
  const [seg, ...rest] = segs;
  if (seg === undefined) return;
  if (seg === '**') {
    // Zero folders, then one or more (hidden folders are not entered, as in shells).
    if (rest.length === 0) out.push({ name: '', path: dir, isDir: true });
    else await matchSegments(dir, rest, out);
    for (const e of await list(dir)) {
      if (e.isDir && !e.name.startsWith('.')) await matchSegments(e.path, segs, out);
    }
    return;
  }
  if (!hasGlobMagic(seg)) {
    const path = join(dir, seg);
    const s = await stat(path).catch(() => undefined);
    if (!s) return;
    if (rest.length === 0) out.push({ name: seg, path, isDir: s.isDirectory() });
    else if (s.isDirectory()) await matchSegments(path, rest, out);
    return;
  }
  const re = segmentRegExp(seg);
  for (const e of await list(dir)) {
    if (e.name.startsWith('.') && !seg.startsWith('.')) continue;
    if (!re.test(e.name)) continue;
    if (rest.length === 0) out.push(e);
    else if (e.isDir) await matchSegments(e.path, rest, out);
  }
}

/** The files of one glob pattern: matched images, plus the images inside matched folders. */
async function expandGlob(pattern: string, seen: Set<string>): Promise<string[]> {
  const segs = pattern.split('/');
  const first = segs.findIndex(hasGlobMagic);
  const baseSegs = segs.slice(0, first);
  // '/a/*' splits to ['', 'a', '*']: an empty first segment means the root.
  const base = baseSegs.length === 0 ? '.' : baseSegs.join('/') || '/';
  const matches: Entry[] = [];
  await matchSegments(base, segs.slice(first).filter((s) => s !== ''), matches);
  const files: string[] = [];
  for (const m of matches) {
    if (m.isDir) files.push(...(await walkImages(m.path, seen)));
    else if (isSupportedImagePath(m.path)) files.push(m.path);
  }
  return files;
}

/** Expands command-line paths; never throws for missing paths (they become problems). */
export async function expandInputs(args: readonly string[]): Promise<ExpandedInputs> {
  const files: string[] = [];
  const problems: InputProblem[] = [];
  const have = new Set<string>();
  const add = (f: string): void => {
    const key = resolve(f);
    if (!have.has(key)) {
      have.add(key);
      files.push(f);
    }
  };
  for (const arg of args) {
    if (hasGlobMagic(arg)) {
      const found = await expandGlob(arg, new Set());
      if (found.length === 0) problems.push({ path: arg, error: 'no image files match' });
      found.forEach(add);
      continue;
    }
    const s = await stat(arg).catch(() => undefined);
    if (!s) problems.push({ path: arg, error: 'file not found' });
    else if (s.isDirectory()) (await walkImages(arg, new Set())).forEach(add);
    else add(arg); // named explicitly: tried whatever its extension, so a non-image gets a clear error row
  }
  return { files, problems };
}
