/**
 * `phoneside review DATA_DIR (--from-cv CV | --groups SPEC) --out DIR`: suspected label errors and
 * cross-class duplicates; `phoneside review DATA_DIR --apply review.csv`: the decisions carried out.
 */
import { REVIEW } from '../options/review.js';
import { applyReview, type ApplyResult } from '../review/apply.js';
import { ReviewCsvError } from '../review/review-csv.js';
import { reviewDataset, ReviewOutputError, type ReviewResult } from '../review/review.js';
import { escapeControl } from '../util/list-dir.js';
import { applyBackboneWeights, applyModelWeights, CommandUsageError, type CliIO } from './options.js';
import { libraryOptions, runVerb } from './parse.js';

/** The flags that only make sense when writing a review (not with --apply). */
const REVIEW_ONLY = ['fromCv', 'out', 'groups', 'folds', 'model'] as const;

export function cmdReview(args: string[], io: CliIO): Promise<number> {
  return runVerb(REVIEW, args, io, async ({ values, positionals }) => {
    const dataDir = positionals[0]!;
    if (values.apply !== undefined) {
      const clash = REVIEW_ONLY.filter((k) => values[k] !== undefined);
      if (clash.length) throw new CommandUsageError(`--apply does not take ${clash.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')}`);
      let result: ApplyResult;
      try {
        result = await applyReview(dataDir, values.apply, { dryRun: values.dryRun === true });
      } catch (err) {
        if (err instanceof ReviewCsvError) throw new CommandUsageError(err.message);
        throw err;
      }
      return printApply(result, values.json === true, io);
    }
    if (values.dryRun === true) throw new CommandUsageError('--dry-run goes with --apply FILE');
    if (values.fromCv !== undefined && values.groups !== undefined) throw new CommandUsageError('give one of --from-cv (reuse a cv report) or --groups (run cross-validation now), not both');
    if (values.fromCv === undefined && values.groups === undefined) throw new CommandUsageError('review needs --from-cv CV.json (e.g. models/ensemble/cv.json) or --groups SPEC (run cross-validation now)');
    if (values.out === undefined) throw new CommandUsageError('review needs --out DIR: the folder for review.html, review.csv and review.json');
    if (values.groups !== undefined) {
      const { parseGroupSpec } = await import('../data/groups.js');
      try {
        parseGroupSpec(values.groups);
      } catch (err) {
        throw new CommandUsageError((err as Error).message);
      }
      applyBackboneWeights(values, values.backbone ?? (REVIEW.options.backbone.default as string));
    } else if (values.model !== undefined) await applyModelWeights(values.weights, [values.model]);
    let result: ReviewResult;
    try {
      result = await reviewDataset(dataDir, { ...libraryOptions(REVIEW.options, values), progress: io.stderr });
    } catch (err) {
      if (err instanceof ReviewOutputError) throw new CommandUsageError(err.message);
      throw err;
    }
    return printReview(result, values.top ?? (REVIEW.options.top.default as number), values.json === true, io);
  });
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

function printReview(r: ReviewResult, top: number, json: boolean, io: CliIO): number {
  if (json) {
    io.stdout.write(JSON.stringify(r, null, 1) + '\n');
    return 0;
  }
  const s = r.suspects;
  const d = r.duplicates;
  const lines = [
    `${r.reviewed} images reviewed with the out-of-fold predictions of ${r.model} (${r.source})`,
    `thresholds: ${s.classes.map((c) => `${c} ${s.thresholds[c] === null ? '-' : s.thresholds[c]!.toFixed(3)}`).join(', ')}`,
    `${s.suspects.length} suspects${s.noise.length ? ': ' + s.noise.map((n) => `${n.given} -> ${n.suggested} ${n.suspects} (estimated ${n.estimated} label errors)`).join(', ') : ''}`,
    `duplicates: ${d.crossClassExact.length} byte-identical and ${d.crossClassNear.length} near-identical (distance <= ${d.maxDistance}) across classes; ${d.sameClassExact.length} copies inside a class`,
  ];
  lines.push(r.heatmaps);
  if (r.unpredicted.length) lines.push(`${r.unpredicted.length} image(s) without an out-of-fold prediction were not reviewed for labels`);
  if (r.unmatched.length) lines.push(`${r.unmatched.length} prediction(s) name files no longer in the data folder`);
  const shown = s.suspects.slice(0, top);
  if (shown.length) {
    lines.push('', ` rank  given -> suggested     p(given)  p(sugg.)  path`);
    shown.forEach((x, i) => lines.push(`${String(i + 1).padStart(5)}  ${`${x.given} -> ${x.suggested}`.padEnd(20)}  ${pct(x.pGiven).padStart(8)}  ${pct(x.pSuggested).padStart(8)}  ${escapeControl(x.path)}`));
    if (s.suspects.length > shown.length) lines.push(`  ... ${s.suspects.length - shown.length} more in review.csv`);
  }
  lines.push('', `wrote ${r.files.html}, ${r.files.csv} and ${r.files.json}`, `fill in the action column of review.csv (relabel:<class>, drop, keep), then: phoneside review ${r.dataDir} --apply ${r.files.csv}`);
  io.stdout.write(lines.join('\n') + '\n');
  return 0;
}

function printApply(r: ApplyResult, json: boolean, io: CliIO): number {
  if (json) io.stdout.write(JSON.stringify(r, null, 1) + '\n');
  else {
    const verb = r.dryRun ? 'would move' : 'moved';
    for (const m of r.moves) io.stdout.write(`${verb} ${escapeControl(m.from)} -> ${escapeControl(m.to)}${m.action === 'drop' ? ' (dropped)' : ''}\n`);
    for (const x of r.refused) io.stdout.write(`refused line ${x.line} ${escapeControl(x.path)}: ${x.reason}\n`);
    io.stdout.write(
      `${r.moves.length} ${r.dryRun ? 'move(s) to make (dry run: nothing changed)' : 'move(s)'}, ${r.alreadyDone} already done, ${r.untouched} without action or kept, ${r.refused.length} refused` +
        (r.dryRun ? '' : `; log ${r.log}${r.manifestUpdated ? '; manifest.csv updated' : ''}`) +
        '\n',
    );
  }
  return r.refused.length > 0 ? 1 : 0;
}
