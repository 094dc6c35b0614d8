/**
 * `reviewDataset()`: the label review of a data folder. Out-of-fold predictions (from a cv report,
 * or a group cross-validation run here) give the suspects; the dataset scan and perceptual hashes
 * give the duplicates; the page, the editable CSV and the JSON go to `out`.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { scanDataset, type DatasetScan } from '../data/dataset.js';
import { readCvFile, type CvReport } from '../eval/cv-report.js';
import { makeThumbnails } from '../eval/thumbnails.js';
import { REVIEW, type ReviewInput } from '../options/review.js';
import { OptionConflictError, resolveOptions } from '../options/schema.js';
import { writeFileAtomic } from '../util/fs.js';
import type { ProgressStream } from '../util/progress.js';
import { findDuplicates, type DuplicateReport } from './duplicates.js';
import type { HeatmapItem, SuspectHeatmaps } from './heatmaps.js';
import { renderReviewHtml } from './page.js';
import { formatReviewCsv, parseReviewCsv, type ReviewCsvRow } from './review-csv.js';
import { findSuspects, type OutOfFoldRow, type SuspectReport } from './suspects.js';

export const REVIEW_SCHEMA = 'phoneside.review/1';
export const REVIEW_FILES = { html: 'review.html', csv: 'review.csv', json: 'review.json', cv: 'cv' } as const;

export type ReviewParams = Omit<ReviewInput, 'apply' | 'dryRun'> & {
  /** Where progress lines go (nothing when absent). */
  progress?: ProgressStream;
};

export interface ReviewResult {
  schema: typeof REVIEW_SCHEMA;
  createdAt: string;
  dataDir: string;
  /** The cv.json used, or the folder the cross-validation run wrote. */
  source: string;
  model: string;
  /** Images with an out-of-fold prediction (the ones reviewed for labels). */
  reviewed: number;
  /** Images of the data folder without one (added after the cv run, or moved since). */
  unpredicted: string[];
  /** Predictions naming files that are not in the data folder. */
  unmatched: string[];
  suspects: SuspectReport;
  duplicates: DuplicateReport;
  /** What the page's heat maps are, or why it has none. */
  heatmaps: string;
  files: { html: string; csv: string; json: string };
}

/** A cv report or data folder that cannot be reviewed. */
export class ReviewInputError extends Error {
  override readonly name = 'ReviewInputError';
}

/** Review output that would destroy work: a review.csv with decisions not yet applied. */
export class ReviewOutputError extends Error {
  override readonly name = 'ReviewOutputError';
}

async function refuseFilledCsv(file: string): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  let decided: number;
  try {
    decided = parseReviewCsv(text, file).filter((d) => d.action.kind !== 'none').length;
  } catch {
    throw new ReviewOutputError(`${file} exists and is not a review.csv this command wrote: move it away, or choose another --out`);
  }
  if (decided > 0) throw new ReviewOutputError(`${file} holds ${decided} decision(s): apply it (--apply) or move it away before writing a new review there`);
}

/** What a review needs of a cv report (cv.json or its folder); an ensemble's has no single recipe, so no more is asked. */
export type OutOfFold = Pick<CvReport, 'dataDir' | 'backbone' | 'classes' | 'predictions'>;

export async function readOutOfFold(path: string): Promise<{ report: OutOfFold; file: string }> {
  const { file, report: r } = await readCvFile(path);
  const bad = (why: string): never => {
    throw new ReviewInputError(`${file}: ${why}`);
  };
  const classes = r!.classes;
  if (!Array.isArray(classes) || classes.length < 2 || !classes.every((c) => typeof c === 'string')) bad('classes missing');
  if (!Array.isArray(r!.predictions)) bad('no out-of-fold predictions');
  r!.predictions!.forEach((p, i) => {
    const ok =
      typeof p === 'object' && p !== null && typeof p.path === 'string' && typeof p.label === 'string' &&
      Array.isArray(p.probabilities) && p.probabilities.length === classes!.length && p.probabilities.every((x) => typeof x === 'number' && x >= 0 && x <= 1);
    if (!ok) bad(`predictions[${i}] is not { path, label, probabilities: [${classes!.length} numbers in 0..1] }`);
  });
  return { report: { dataDir: String(r!.dataDir ?? ''), backbone: String(r!.backbone ?? 'unknown model'), classes: classes!, predictions: r!.predictions! }, file };
}

async function outOfFoldReport(dataDir: string, p: ReviewParams, out: string): Promise<{ report: OutOfFold; source: string }> {
  if (p.fromCv !== undefined) {
    const { report, file } = await readOutOfFold(p.fromCv);
    return { report, source: file };
  }
  const { fromCv: _f, out: _o, top: _t, rankBy: _r, maxDistance: _m, heatmaps: _h, model: _model, ...recipe } = p;
  // Loaded only here: the training stack costs seconds to import.
  const { crossValidate } = await import('../train/cv.js');
  const cvOut = join(out, REVIEW_FILES.cv);
  const report = await crossValidate(dataDir, { ...recipe, groups: p.groups!, out: cvOut });
  return { report, source: join(cvOut, 'cv.json') };
}

/** The out-of-fold rows of the images that are in the data folder now, by their current label. */
function matchPredictions(scan: DatasetScan, report: OutOfFold): { rows: OutOfFoldRow[]; unpredicted: string[]; unmatched: string[] } {
  const items = new Map(scan.items.map((it) => [it.relPath, it]));
  const classes = new Set(report.classes);
  const rows: OutOfFoldRow[] = [];
  const unmatched: string[] = [];
  const predicted = new Set<string>();
  for (const p of report.predictions) {
    // Relative to the data folder as cv writes them; an absolute path inside it is taken too.
    const raw = isAbsolute(p.path) ? relative(scan.root, p.path) : p.path;
    const path = raw.replace(/\\/g, '/').replace(/^\.\//, '');
    const it = items.get(path);
    if (it === undefined || !classes.has(it.label)) {
      unmatched.push(path);
      continue;
    }
    predicted.add(path);
    rows.push({ path, label: it.label, probabilities: p.probabilities, group: p.group });
  }
  const unpredicted = scan.items.filter((it) => !predicted.has(it.relPath)).map((it) => it.relPath);
  return { rows, unpredicted, unmatched };
}

/** review.csv rows: the suspects, then files of cross-class duplicates not already listed. */
function csvRows(suspects: SuspectReport, dups: DuplicateReport, scan: DatasetScan, probs: ReadonlyMap<string, readonly number[]>): ReviewCsvRow[] {
  const sha = new Map(scan.items.map((it) => [it.relPath, it.sha256]));
  const rows: ReviewCsvRow[] = suspects.suspects.map((s) => ({
    path: s.path,
    given: s.given,
    suggested: s.suggested,
    pGiven: s.pGiven,
    pSuggested: s.pSuggested,
    action: '',
    reason: 'model disagrees',
    sha256: sha.get(s.path) ?? '',
  }));
  const listed = new Set(rows.map((r) => r.path));
  const p = (path: string, cls: string): number | null => {
    const j = suspects.classes.indexOf(cls);
    const v = probs.get(path)?.[j];
    return j < 0 || v === undefined ? null : v;
  };
  const add = (f: { relPath: string; label: string }, other: { relPath: string; label: string }, why: string): void => {
    if (listed.has(f.relPath)) return;
    listed.add(f.relPath);
    rows.push({ path: f.relPath, given: f.label, suggested: other.label, pGiven: p(f.relPath, f.label), pSuggested: p(f.relPath, other.label), action: '', reason: `${why} ${other.relPath}`, sha256: sha.get(f.relPath) ?? '' });
  };
  for (const g of dups.crossClassExact) for (const f of g.files) add(f, g.files.find((o) => o.label !== f.label)!, 'same bytes as');
  for (const pair of dups.crossClassNear) {
    add(pair.a, pair.b, `near-identical (distance ${pair.distance}) to`);
    add(pair.b, pair.a, `near-identical (distance ${pair.distance}) to`);
  }
  return rows;
}

/**
 * Heat maps of the suspects shown: with the model asked for (its failure is an error), else with
 * the model folder holding the cv report when there is one there (no maps, and a note, if not).
 */
async function heatmaps(model: string | undefined, guess: string | undefined, items: readonly HeatmapItem[], log: (s: string) => void): Promise<SuspectHeatmaps> {
  if (items.length === 0 || (model === undefined && guess === undefined)) return { maps: new Map(), note: 'No heat maps: no model to draw them with (--model).' };
  // Loaded only here: the explain code and ONNX Runtime are not needed without heat maps.
  const { suspectHeatmaps } = await import('./heatmaps.js');
  log(`heat maps for ${items.length} suspects with ${model ?? guess}`);
  if (model !== undefined) return suspectHeatmaps(model, items); // asked for: its failure is the caller's to see
  try {
    return await suspectHeatmaps(guess!, items);
  } catch (err) {
    return { maps: new Map(), note: `No heat maps: the folder of the cv report (${guess}) is not a model phoneside can load (${err instanceof Error ? err.message : String(err)}); give --model.` };
  }
}

/** Reviews the labels of `dataDir`; writes review.html, review.csv and review.json into `out`. */
export async function reviewDataset(dataDir: string, params: ReviewParams): Promise<ReviewResult> {
  const { progress, ...input } = params;
  const o = resolveOptions(REVIEW.options, input);
  if ((o.fromCv === undefined) === (o.groups === undefined)) {
    throw new OptionConflictError(['fromCv', 'groups'], ([a, b]) => `give one of ${a} (reuse a cv report) or ${b} (run cross-validation now)`);
  }
  if (o.out === undefined) throw new OptionConflictError(['out'], ([a]) => `${a} is required: the folder for review.html, review.csv and review.json`);
  const log = (s: string): void => void progress?.write(`review: ${s}\n`);
  const out = resolve(o.out);
  const files = { html: join(out, REVIEW_FILES.html), csv: join(out, REVIEW_FILES.csv), json: join(out, REVIEW_FILES.json) };
  await refuseFilledCsv(files.csv);

  const scan = await scanDataset(dataDir);
  log(`${scan.items.length} images in ${scan.classes.join(', ')}`);
  const { report, source } = await outOfFoldReport(scan.root, params, out);
  const { rows, unpredicted, unmatched } = matchPredictions(scan, report);
  if (rows.length === 0) {
    throw new ReviewInputError(`the cv report ${source} names none of the images in ${scan.root} (its paths are relative to its data folder ${report.dataDir}): is it the report of this data set?`);
  }
  if (unmatched.length) log(`${unmatched.length} prediction(s) name files not in ${scan.root} (moved or removed since the cv run): left out`);
  if (unpredicted.length) log(`${unpredicted.length} image(s) have no out-of-fold prediction (added since the cv run): not reviewed for labels`);
  const suspects = findSuspects(report.classes, rows, { rankBy: o.rankBy });
  log(`${suspects.suspects.length} suspects among ${rows.length} images; comparing perceptual hashes for near duplicates`);
  const duplicates = await findDuplicates(scan, { maxDistance: o.maxDistance });

  const top = suspects.suspects.slice(0, o.top);
  const dupFiles = [...duplicates.crossClassExact.flatMap((g) => g.files), ...duplicates.crossClassNear.flatMap((p) => [p.a, p.b])].map((f) => f.relPath);
  const pictured = [...new Set([...top.map((s) => s.path), ...dupFiles])];
  const thumbnails = await makeThumbnails(pictured.map((p) => ({ key: p, file: join(scan.root, p) })));
  const heatItems = top.map((s) => ({ file: join(scan.root, s.path), key: s.path, cls: s.suggested }));
  const heat = o.heatmaps ? await heatmaps(o.model, o.fromCv !== undefined ? dirname(source) : undefined, heatItems, log) : undefined;

  const createdAt = new Date().toISOString();
  const result: ReviewResult = {
    schema: REVIEW_SCHEMA,
    createdAt,
    dataDir: scan.root,
    source,
    model: report.backbone,
    reviewed: rows.length,
    unpredicted,
    unmatched,
    suspects,
    duplicates,
    heatmaps: heat?.note ?? 'No heat maps (--no-heatmaps).',
    files,
  };
  await mkdir(out, { recursive: true });
  const probs = new Map(rows.map((r) => [r.path, r.probabilities]));
  await writeFileAtomic(files.csv, formatReviewCsv(csvRows(suspects, duplicates, scan, probs)));
  await writeFileAtomic(files.json, JSON.stringify(result, null, 1) + '\n');
  await writeFileAtomic(
    files.html,
    renderReviewHtml({
      dataDir: scan.root,
      source,
      model: report.backbone,
      suspects,
      duplicates,
      top: o.top,
      thumbnails,
      ...(heat ? { heatmaps: heat.maps } : {}),
      heatmapNote: result.heatmaps,
      createdAt,
    }),
  );
  return result;
}
