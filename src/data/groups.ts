/**
 * Groups of images that must stay together on one side of a split: the source each photo came
 * from (a shop, a website, a photographer). Images from one source share backgrounds, lighting,
 * devices and framing, so a split that scatters a source over train and validation measures how
 * well the model recognises that source, not how well it does on photos from a new one.
 *
 * A group spec says where an image's group comes from:
 *   FILE.csv:COLUMN   a CSV with a file column (`file`, `path` or the first column: paths relative
 *                     to the data folder) and COLUMN, e.g. `manifest.csv:source`; FILE is looked
 *                     up in the data folder first, then from the working directory
 *   prefix:SEP        the file name up to the first SEP, e.g. `prefix:__` (`shopA__123.jpg` -> shopA)
 *   folder            the first sub-folder inside the class folder (`front/shopA/1.jpg` -> shopA)
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { parseCsv } from '../util/csv.js';

export type GroupSpec =
  | { kind: 'csv'; file: string; column: string }
  | { kind: 'prefix'; separator: string }
  | { kind: 'folder' };

export class GroupSpecError extends Error {
  override readonly name = 'GroupSpecError';
}

/** Parses `FILE.csv:COLUMN`, `prefix:SEP` or `folder`. */
export function parseGroupSpec(text: string): GroupSpec {
  const s = text.trim();
  if (s === 'folder' || s === 'folders') return { kind: 'folder' };
  if (s.startsWith('prefix:')) {
    const separator = s.slice('prefix:'.length);
    if (separator === '') throw new GroupSpecError(`group spec '${text}': prefix: needs a separator, e.g. prefix:__`);
    return { kind: 'prefix', separator };
  }
  const colon = s.lastIndexOf(':');
  if (colon > 0 && colon < s.length - 1 && /\.csv$/i.test(s.slice(0, colon))) {
    return { kind: 'csv', file: s.slice(0, colon), column: s.slice(colon + 1) };
  }
  throw new GroupSpecError(
    `group spec '${text}' not understood: use FILE.csv:COLUMN (e.g. manifest.csv:source), prefix:SEP (e.g. prefix:__) or folder`,
  );
}

/** What group assignment needs of an image. */
export interface GroupableItem {
  /** Path relative to the data folder, '/'-separated, starting with the class folder. */
  relPath: string;
}

async function exists(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** The CSV of a csv spec: in the data folder first, then relative to the working directory. */
async function locateCsv(file: string, dataRoot: string): Promise<string> {
  const candidates = isAbsolute(file) ? [file] : [join(dataRoot, file), resolve(file)];
  for (const c of candidates) if (await exists(c)) return c;
  throw new GroupSpecError(`group file not found: ${candidates.join(' or ')}`);
}

const FILE_COLUMNS = ['file', 'path', 'filename', 'relpath'];

/** relPath -> group from a CSV (paths normalised to '/' and without a leading './'). */
async function groupsFromCsv(spec: Extract<GroupSpec, { kind: 'csv' }>, dataRoot: string): Promise<Map<string, string>> {
  const path = await locateCsv(spec.file, dataRoot);
  const rows = parseCsv(await readFile(path, 'utf8'));
  const header = rows[0];
  if (!header || header.length === 0) throw new GroupSpecError(`${path}: empty CSV`);
  const names = header.map((h) => h.trim());
  const groupCol = names.indexOf(spec.column);
  if (groupCol < 0) throw new GroupSpecError(`${path}: no column '${spec.column}' (columns: ${names.join(', ')})`);
  const fileCol = Math.max(0, names.findIndex((n) => FILE_COLUMNS.includes(n.toLowerCase())));
  if (fileCol === groupCol) throw new GroupSpecError(`${path}: column '${spec.column}' is the file column; name another`);
  const out = new Map<string, string>();
  rows.slice(1).forEach((row, i) => {
    if (row.length === 1 && row[0]!.trim() === '') return; // blank line
    const file = (row[fileCol] ?? '').trim().replace(/\\/g, '/').replace(/^\.\//, '');
    const group = (row[groupCol] ?? '').trim();
    if (file === '') throw new GroupSpecError(`${path}: line ${i + 2} has no file name`);
    if (group === '') throw new GroupSpecError(`${path}: line ${i + 2} (${file}) has an empty '${spec.column}'`);
    const before = out.get(file);
    if (before !== undefined && before !== group) throw new GroupSpecError(`${path}: ${file} is listed in two groups ('${before}', '${group}')`);
    out.set(file, group);
  });
  return out;
}

/** Why an image has no group, or its group. */
function groupOf(spec: GroupSpec, item: GroupableItem, csv: Map<string, string> | undefined): string | { missing: string } {
  if (spec.kind === 'csv') return csv!.get(item.relPath) ?? { missing: `not listed in ${spec.file}` };
  const parts = item.relPath.split('/');
  // With a train/ + val/ layout the class folder is the second segment.
  const afterClass = parts[0] === 'train' || parts[0] === 'val' ? parts.slice(2) : parts.slice(1);
  if (spec.kind === 'folder') {
    return afterClass.length >= 2 ? afterClass[0]! : { missing: 'not inside a sub-folder of its class folder' };
  }
  const name = basename(item.relPath);
  const at = name.indexOf(spec.separator);
  return at > 0 ? name.slice(0, at) : { missing: `file name has no '${spec.separator}'` };
}

/**
 * The group of every item, in item order. Items without one are an error that lists them (a
 * silently ungrouped image would leak across folds or vanish from the figures).
 */
export async function assignGroups(items: readonly GroupableItem[], spec: GroupSpec, dataRoot: string): Promise<string[]> {
  const csv = spec.kind === 'csv' ? await groupsFromCsv(spec, dataRoot) : undefined;
  const groups: string[] = [];
  const missing: string[] = [];
  for (const it of items) {
    const g = groupOf(spec, it, csv);
    if (typeof g === 'string') groups.push(g);
    else missing.push(`  ${it.relPath}: ${g.missing}`);
  }
  if (missing.length > 0) {
    const more = missing.length > 20 ? `\n  ... and ${missing.length - 20} more` : '';
    throw new GroupSpecError(`${missing.length} image(s) have no group:\n${missing.slice(0, 20).join('\n')}${more}`);
  }
  return groups;
}

/** Images per group, groups sorted by name. */
export function groupSizes(groups: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const g of groups) counts.set(g, (counts.get(g) ?? 0) + 1);
  return new Map([...counts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

/**
 * Folds of whole groups. Without `folds`: leave-one-group-out (one fold per group, by name).
 * With `folds` K: groups, largest first, each go to the fold with the fewest images so far
 * (scikit-learn's GroupKFold), so folds are as even as whole groups allow.
 */
export function groupFolds(groups: readonly string[], opts: { folds?: number } = {}): string[][] {
  const sizes = groupSizes(groups);
  const names = [...sizes.keys()];
  if (names.length < 2) throw new GroupSpecError(`cross-validation needs at least 2 groups, found ${names.length} (${names.join(', ')})`);
  if (opts.folds === undefined) return names.map((g) => [g]);
  const k = opts.folds;
  if (!Number.isInteger(k) || k < 2) throw new GroupSpecError(`folds must be an integer >= 2, got ${k}`);
  if (k > names.length) throw new GroupSpecError(`${k} folds but only ${names.length} groups; use at most ${names.length}`);
  const folds: string[][] = Array.from({ length: k }, () => []);
  const load = new Array<number>(k).fill(0);
  const order = [...names].sort((a, b) => sizes.get(b)! - sizes.get(a)! || (a < b ? -1 : 1));
  for (const g of order) {
    let best = 0;
    for (let f = 1; f < k; f++) if (load[f]! < load[best]!) best = f;
    folds[best]!.push(g);
    load[best]! += sizes.get(g)!;
  }
  return folds.map((f) => f.sort());
}
