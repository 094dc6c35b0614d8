/**
 * review.csv: one row per image a person should look at, with an `action` column they fill in:
 * empty (undecided), `keep`, `drop`, or `relabel:<class>`. `phoneside review --apply` reads it
 * back. The sha256 column pins each row to the bytes that were reviewed, so a file changed or
 * replaced since is refused instead of moved on an old decision.
 */
import { csvField, parseCsv } from '../util/csv.js';

export const REVIEW_CSV_COLUMNS = ['path', 'given', 'suggested', 'p_given', 'p_suggested', 'action', 'reason', 'sha256'] as const;

export interface ReviewCsvRow {
  /** Relative to the data folder, '/'-separated, starting with the class folder. */
  path: string;
  given: string;
  suggested: string;
  pGiven: number | null;
  pSuggested: number | null;
  action: string;
  /** Why the row is there: 'model disagrees', 'same picture as back/x.jpg'... */
  reason: string;
  sha256: string;
}

export type ReviewAction = { kind: 'none' } | { kind: 'keep' } | { kind: 'drop' } | { kind: 'relabel'; to: string };

export interface ReviewDecision {
  /** 1-based line in the CSV (for messages). */
  line: number;
  path: string;
  given: string;
  sha256: string;
  action: ReviewAction;
}

/** A review.csv that cannot be applied as it is; lists every bad line. */
export class ReviewCsvError extends Error {
  override readonly name = 'ReviewCsvError';
}

const prob = (p: number | null): string => (p === null ? '' : p.toFixed(4));

export function formatReviewCsv(rows: readonly ReviewCsvRow[]): string {
  const lines = [REVIEW_CSV_COLUMNS.join(',')];
  for (const r of rows) lines.push([r.path, r.given, r.suggested, prob(r.pGiven), prob(r.pSuggested), r.action, r.reason, r.sha256].map(csvField).join(','));
  return lines.join('\n') + '\n';
}

/** `relabel:back`, `drop`, `keep` or empty; undefined when it is none of them. */
export function parseAction(text: string): ReviewAction | undefined {
  const s = text.trim();
  if (s === '') return { kind: 'none' };
  const lower = s.toLowerCase();
  if (lower === 'keep') return { kind: 'keep' };
  if (lower === 'drop') return { kind: 'drop' };
  const m = /^relabel\s*:\s*(.+)$/i.exec(s);
  return m ? { kind: 'relabel', to: m[1]!.trim() } : undefined;
}

/** The decisions in a review.csv (columns found by name, so a spreadsheet may reorder them). */
export function parseReviewCsv(text: string, file: string): ReviewDecision[] {
  let rows: string[][];
  try {
    rows = parseCsv(text);
  } catch (err) {
    throw new ReviewCsvError(`${file}: ${(err as Error).message}`);
  }
  const header = (rows[0] ?? []).map((h) => h.trim().toLowerCase());
  const col = (name: string): number => header.indexOf(name);
  const missing = ['path', 'given', 'action', 'sha256'].filter((c) => col(c) < 0);
  if (missing.length > 0) {
    throw new ReviewCsvError(`${file}: not a review.csv: no column ${missing.join(', ')} (columns: ${header.join(', ') || 'none'}; expected ${REVIEW_CSV_COLUMNS.join(',')})`);
  }
  const problems: string[] = [];
  const out: ReviewDecision[] = [];
  const seen = new Map<string, number>();
  rows.slice(1).forEach((row, i) => {
    const line = i + 2;
    if (row.every((f) => f.trim() === '')) return;
    const get = (name: string): string => (row[col(name)] ?? '').trim();
    const path = get('path');
    const actionText = get('action');
    const action = parseAction(actionText);
    if (path === '') problems.push(`line ${line}: no path`);
    else if (action === undefined) problems.push(`line ${line} (${path}): action '${actionText}' is not relabel:<class>, drop, keep or empty`);
    else if (action.kind === 'relabel' && action.to === '') problems.push(`line ${line} (${path}): relabel: needs a class`);
    else {
      const before = seen.get(path);
      if (before !== undefined) problems.push(`line ${line}: ${path} is also on line ${before}`);
      seen.set(path, line);
      out.push({ line, path, given: get('given'), sha256: get('sha256').toLowerCase(), action });
    }
  });
  if (problems.length > 0) {
    const more = problems.length > 20 ? `\n  ... and ${problems.length - 20} more` : '';
    throw new ReviewCsvError(`${file}: ${problems.length} bad row(s), nothing applied:\n  ${problems.slice(0, 20).join('\n  ')}${more}`);
  }
  return out;
}
