/**
 * `review --apply review.csv`: carries out a person's decisions by moving files, never deleting
 * them. relabel:<class> moves DATA/<given>/x.jpg to DATA/<class>/x.jpg (sub-folders kept, a name
 * already taken gets -1, -2...); drop moves it to DATA/.dropped/<given>/x.jpg (a hidden folder,
 * so the dataset scan does not take it for a class). Every move is appended to
 * DATA/_review-log.jsonl (from, to, time, sha256) and manifest.csv, when there is one, follows the
 * moves (file column, and the label column for relabels), rewritten atomically.
 *
 * Safe to rerun: a row whose move is already in the log is skipped; a row whose file is gone or
 * whose bytes differ from the sha256 in the CSV is refused (someone changed it after the review).
 */
import { appendFile, copyFile, constants, link, mkdir, readFile, stat, unlink } from 'node:fs/promises';
import { dirname, extname, join, posix } from 'node:path';
import { parseCsv, csvField } from '../util/csv.js';
import { isFile, writeFileAtomic } from '../util/fs.js';
import { sha256File } from '../util/hash.js';
import { listDir } from '../util/list-dir.js';
import { parseReviewCsv, ReviewCsvError, type ReviewDecision } from './review-csv.js';

export const REVIEW_LOG = '_review-log.jsonl';
export const DROPPED_DIR = '.dropped';

export interface ReviewMove {
  action: 'relabel' | 'drop';
  /** Relative to the data folder, '/'-separated. */
  from: string;
  to: string;
  sha256: string;
  given: string;
  /** The new class (relabel only). */
  label?: string;
}

export interface LoggedMove extends ReviewMove {
  time: string;
}

export interface ApplyResult {
  dryRun: boolean;
  /** Moves made (or, in a dry run, that would be made), in CSV order. */
  moves: ReviewMove[];
  /** Rows already carried out by an earlier --apply (found in the log). */
  alreadyDone: number;
  /** Rows with no action, or `keep`. */
  untouched: number;
  /** Rows not carried out, with why. */
  refused: { line: number; path: string; reason: string }[];
  /** Whether manifest.csv was rewritten. */
  manifestUpdated: boolean;
  log: string;
}

/** Class folders of a data folder (visible top-level folders). */
async function classFolders(dataDir: string): Promise<Set<string>> {
  const entries = await listDir(dataDir);
  return new Set(entries.filter((e) => e.isDir && !e.name.startsWith('.') && !e.name.startsWith('_')).map((e) => e.name));
}

/** Why a CSV path cannot be a file of this data folder, or undefined when it can. */
function badPath(path: string, given: string, classes: ReadonlySet<string>): string | undefined {
  const parts = path.split('/');
  if (path.startsWith('/') || path.includes('\\') || parts.some((p) => p === '' || p === '.' || p === '..')) return 'not a plain relative path inside the data folder';
  if (parts.length < 2 || !classes.has(parts[0]!)) return `not inside a class folder (${[...classes].join(', ')})`;
  if (given !== '' && parts[0] !== given) return `given label '${given}' but the file is in ${parts[0]}/`;
  return undefined;
}

export async function readReviewLog(dataDir: string): Promise<LoggedMove[]> {
  const file = join(dataDir, REVIEW_LOG);
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  const out: LoggedMove[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as LoggedMove);
    } catch {
      throw new Error(`${file}: line ${i + 1} is not JSON; fix or move the log before applying again`);
    }
  });
  return out;
}

/** `dir/name.jpg`, or `dir/name-1.jpg`, `-2`... when taken on disk or by an earlier move of this run. */
async function freeName(dataDir: string, wanted: string, planned: ReadonlySet<string>): Promise<string> {
  const ext = extname(wanted);
  const stem = wanted.slice(0, wanted.length - ext.length);
  for (let i = 0; ; i++) {
    const candidate = i === 0 ? wanted : `${stem}-${i}${ext}`;
    if (!planned.has(candidate) && (await stat(join(dataDir, candidate)).catch(() => undefined)) === undefined) return candidate;
  }
}

/** Moves without ever replacing a file: a hard link fails if the target exists; copy (exclusive) where links are not allowed. */
async function moveNoClobber(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await link(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    await copyFile(from, to, constants.COPYFILE_EXCL);
  }
  await unlink(from);
}

/** The target of one decision, or why there is none. */
function targetOf(d: ReviewDecision, classes: ReadonlySet<string>): { action: 'relabel' | 'drop'; to: string; label?: string } | string {
  const [cls, ...rest] = d.path.split('/');
  if (d.action.kind === 'drop') return { action: 'drop', to: posix.join(DROPPED_DIR, cls!, ...rest) };
  if (d.action.kind !== 'relabel') return 'no move';
  const to = d.action.to;
  if (!classes.has(to)) return `relabel:${to}: no class folder '${to}' (classes: ${[...classes].join(', ')})`;
  if (to === cls) return `relabel:${to}: it is already in ${to}/`;
  return { action: 'relabel', to: posix.join(to, ...rest), label: to };
}

/** Rewrites manifest.csv so its rows follow the logged moves; false when there is none or nothing changed. */
async function updateManifest(dataDir: string, log: readonly LoggedMove[]): Promise<boolean> {
  const file = join(dataDir, 'manifest.csv');
  if (!(await isFile(file)) || log.length === 0) return false;
  const rows = parseCsv(await readFile(file, 'utf8'));
  const header = (rows[0] ?? []).map((h) => h.trim().toLowerCase());
  const fileCol = Math.max(0, header.findIndex((h) => ['file', 'path', 'filename', 'relpath'].includes(h)));
  const labelCol = header.indexOf('label');
  const rowOf = new Map<string, string[]>();
  for (const row of rows.slice(1)) rowOf.set((row[fileCol] ?? '').trim().replace(/^\.\//, ''), row);
  let changed = false;
  // In log order, so a file moved twice ends where its last move put it.
  for (const m of log) {
    const row = rowOf.get(m.from);
    if (row === undefined) continue;
    rowOf.delete(m.from);
    row[fileCol] = m.to;
    if (m.label !== undefined && labelCol >= 0) row[labelCol] = m.label;
    rowOf.set(m.to, row);
    changed = true;
  }
  if (changed) await writeFileAtomic(file, rows.map((r) => r.map(csvField).join(',')).join('\n') + '\n');
  return changed;
}

/** Carries out the decisions of `csvFile` in `dataDir` (or lists them, with dryRun). */
export async function applyReview(dataDir: string, csvFile: string, opts: { dryRun?: boolean } = {}): Promise<ApplyResult> {
  const dryRun = opts.dryRun === true;
  let text: string;
  try {
    text = await readFile(csvFile, 'utf8');
  } catch (err) {
    throw new ReviewCsvError(`cannot read ${csvFile}: ${(err as Error).message}`);
  }
  const decisions = parseReviewCsv(text, csvFile);
  if (!(await stat(dataDir).catch(() => undefined))?.isDirectory()) throw new ReviewCsvError(`data folder not found: ${dataDir}`);
  const classes = await classFolders(dataDir);
  const logFile = join(dataDir, REVIEW_LOG);
  const log = await readReviewLog(dataDir);
  const done = new Set(log.map((m) => `${m.from}\0${m.sha256}`));
  const result: ApplyResult = { dryRun, moves: [], alreadyDone: 0, untouched: 0, refused: [], manifestUpdated: false, log: logFile };
  const planned = new Set<string>();
  const refuse = (d: ReviewDecision, reason: string): void => void result.refused.push({ line: d.line, path: d.path, reason });
  for (const d of decisions) {
    if (d.action.kind === 'none' || d.action.kind === 'keep') {
      result.untouched++;
      continue;
    }
    const bad = badPath(d.path, d.given, classes);
    if (bad !== undefined) {
      refuse(d, bad);
      continue;
    }
    if (!/^[0-9a-f]{64}$/.test(d.sha256)) {
      refuse(d, 'no sha256 of the reviewed file in the CSV');
      continue;
    }
    if (done.has(`${d.path}\0${d.sha256}`)) {
      result.alreadyDone++;
      continue;
    }
    const target = targetOf(d, classes);
    if (typeof target === 'string') {
      refuse(d, target);
      continue;
    }
    const from = join(dataDir, d.path);
    if (!(await isFile(from))) {
      refuse(d, 'the file is no longer there');
      continue;
    }
    if ((await sha256File(from)) !== d.sha256) {
      refuse(d, 'the file changed since the review (its sha256 differs)');
      continue;
    }
    const to = await freeName(dataDir, target.to, planned);
    planned.add(to);
    const move: ReviewMove = { action: target.action, from: d.path, to, sha256: d.sha256, given: d.path.split('/')[0]!, ...(target.label !== undefined ? { label: target.label } : {}) };
    result.moves.push(move);
    if (dryRun) continue;
    await moveNoClobber(from, join(dataDir, to));
    const entry: LoggedMove = { time: new Date().toISOString(), ...move };
    await appendFile(logFile, JSON.stringify(entry) + '\n');
    log.push(entry);
  }
  // From the whole log, so a manifest left behind by an interrupted run catches up.
  if (!dryRun) result.manifestUpdated = await updateManifest(dataDir, log);
  return result;
}
