/**
 * Text and JSON renderings of ClassificationMetrics. The text report reproduces scikit-learn's
 * `classification_report` layout byte for byte so results can be diffed against Python runs.
 */
import type { ClassificationMetrics, ClassScores } from './metrics.js';

/**
 * Python's `format(x, '.{digits}f')`: like toFixed, except exact binary ties round half to even
 * (toFixed rounds them up, e.g. 0.125 -> "0.13" where Python prints "0.12").
 */
export function pyFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  const a = Math.abs(x);
  if (a >= 1e21) return sign + a.toFixed(digits); // not reached for metrics
  // toFixed(100) is the exact decimal expansion for doubles of ordinary magnitude.
  const exact = a.toFixed(100);
  const dot = exact.indexOf('.');
  const frac = exact.slice(dot + 1);
  const isTie = frac[digits] === '5' && /^0*$/.test(frac.slice(digits + 1));
  if (isTie) {
    const truncated = exact.slice(0, digits === 0 ? dot : dot + 1 + digits);
    const lastDigit = Number(truncated[truncated.length - 1]);
    if (lastDigit % 2 === 0) return sign + truncated;
  }
  return sign + a.toFixed(digits);
}

const rjust = (s: string, width: number): string => s.padStart(width);

/** sklearn's classification_report text (sklearn 1.2 layout; accuracy row, then macro/weighted). */
export function formatClassificationReport(m: ClassificationMetrics, digits = 2): string {
  if (!Number.isInteger(digits) || digits < 0) throw new Error(`digits must be a non-negative integer`);
  const headers = ['precision', 'recall', 'f1-score', 'support'];
  const width = Math.max(...m.classes.map((c) => c.length), 'weighted avg'.length, digits);
  const num = (x: number): string => ' ' + rjust(pyFixed(x, digits), 9);
  const int = (x: number): string => ' ' + rjust(String(x), 9);
  const row = (name: string, s: ClassScores): string =>
    rjust(name, width) + ' ' + num(s.precision) + num(s.recall) + num(s.f1) + int(s.support) + '\n';

  let out = rjust('', width) + ' ' + headers.map((h) => ' ' + rjust(h, 9)).join('') + '\n\n';
  for (const c of m.perClass) out += row(c.name, c);
  out += '\n';
  // sklearn 1.2 prints an `accuracy` row (P and R blank) only when the listed labels equal the
  // labels seen in y_true/y_pred; a class that never occurs at all turns it into `micro avg`.
  // With every class listed, micro P = R = accuracy.
  const seen = (i: number): boolean =>
    m.perClass[i]!.support > 0 || m.confusion.some((row) => row[i]! > 0);
  if (m.classes.every((_, i) => seen(i))) {
    out += rjust('accuracy', width) + ' ' + ' '.repeat(20) + num(m.accuracy) + int(m.total) + '\n';
  } else {
    const a = m.accuracy;
    const f1 = a + a === 0 ? 0 : (2 * a * a) / (a + a);
    out += row('micro avg', { precision: a, recall: a, f1, support: m.total });
  }
  out += row('macro avg', m.macroAvg);
  out += row('weighted avg', m.weightedAvg);
  return out;
}

/**
 * Labelled confusion grid, true classes as rows and predicted classes as columns, e.g.
 *
 *   true\pred  back  front  none
 *        back    15      0     0
 */
export function formatConfusionMatrix(m: ClassificationMetrics): string {
  const corner = 'true\\pred';
  const rowW = Math.max(corner.length, ...m.classes.map((c) => c.length));
  const colW = m.classes.map((c, p) =>
    Math.max(c.length, ...m.confusion.map((row) => String(row[p]).length)),
  );
  const line = (head: string, cells: string[]): string =>
    rjust(head, rowW) + cells.map((cell, p) => '  ' + rjust(cell, colW[p]!)).join('') + '\n';
  let out = line(corner, m.classes);
  m.confusion.forEach((row, t) => {
    out += line(m.classes[t]!, row.map(String));
  });
  return out;
}

export interface ClassScoresJSON {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/**
 * Stable JSON shape (keys are part of the on-disk format; add, never rename):
 *   classes      string[]           class names in index order
 *   accuracy     number             fraction correct
 *   total        number             number of samples
 *   confusion    number[][]         confusion[true][predicted] counts
 *   perClass     {name, precision, recall, f1, support}[]   in class order
 *   macroAvg     {precision, recall, f1, support}            unweighted class mean
 *   weightedAvg  {precision, recall, f1, support}            support-weighted class mean
 * Zero-division cases are 0, so every number is finite.
 */
export interface MetricsJSON {
  classes: string[];
  accuracy: number;
  total: number;
  confusion: number[][];
  perClass: ({ name: string } & ClassScoresJSON)[];
  macroAvg: ClassScoresJSON;
  weightedAvg: ClassScoresJSON;
}

const scores = (s: ClassScores): ClassScoresJSON => ({
  precision: s.precision,
  recall: s.recall,
  f1: s.f1,
  support: s.support,
});

export function metricsToJSON(m: ClassificationMetrics): MetricsJSON {
  return {
    classes: [...m.classes],
    accuracy: m.accuracy,
    total: m.total,
    confusion: m.confusion.map((row) => [...row]),
    perClass: m.perClass.map((c) => ({ name: c.name, ...scores(c) })),
    macroAvg: scores(m.macroAvg),
    weightedAvg: scores(m.weightedAvg),
  };
}
