/**
 * Per-class confidence thresholds fitted to predictions: one minimum top-probability per class so
 * that, among the images that would be answered (top probability >= the threshold of its top
 * class; the rule of decide() in src/infer/prediction.ts), at most `maxErrorRate` are wrong, with as
 * many images answered as possible. Works from predictions alone (no model, no tfjs).
 *
 * The optimum is exact. Each class's answered set can only be a prefix of its images sorted by
 * confidence (highest first, never splitting equal confidences), so each class offers a short list
 * of (answered, errors) candidates; a dynamic programme over the total number answered keeps, for
 * every total, the fewest errors any choice of one candidate per class reaches. The largest total
 * whose fewest errors fit the budget (errors <= maxErrorRate x answered) is the answer. Time is
 * O(N^2) in the number of rows (about 2 M steps for 1,300 rows), whatever the number of classes.
 *
 * `crossFittedThresholds` gives the honest figure: thresholds fitted on the other sources, applied
 * to each held-out source, pooled.
 */
import { decide, UNCERTAIN } from '../infer/prediction.js';

/** One prediction: its true class (index into `classes`) and the model's probabilities. */
export interface ThresholdRow {
  label: number;
  probabilities: readonly number[];
}

/** A prediction with the source (group) it comes from, for cross-fitting. */
export interface GroupedThresholdRow extends ThresholdRow {
  group: string;
}

export interface ThresholdFitOptions {
  /** The largest share of wrong answers among the answered images (e.g. 0.02), in [0, 1]. */
  maxErrorRate: number;
  /**
   * A class is answered on at least this many fitting rows or on none (threshold 1): a threshold
   * resting on a handful of images is not trusted. Default 1 (no constraint).
   */
  minSupport?: number;
}

/** Counts under some thresholds; `errorRate` is errors / answered (0 when none is answered). */
export interface ThresholdOutcome {
  /** answered / total (0 when there are no rows). */
  coverage: number;
  errorRate: number;
  answered: number;
  errors: number;
  total: number;
}

export interface ClassThreshold {
  /** Minimum top probability for this class to be answered; 1 = never (unless exactly 1). */
  threshold: number;
  /** Fitting rows whose top class is this one. */
  rows: number;
  /** Of those, answered under `threshold`. */
  answered: number;
  /** Of the answered, wrong. */
  errors: number;
  /** (answered - errors) / answered; null when none is answered. */
  precision: number | null;
}

export interface ThresholdFit extends ThresholdOutcome {
  /** class -> minimum confidence, for manifest.thresholds / decide(). */
  thresholds: Record<string, number>;
  perClass: Record<string, ClassThreshold>;
  maxErrorRate: number;
  /** The minSupport the fit was made with. */
  minSupport: number;
  /**
   * Classes given threshold 1 because answering any of their images would break the error budget
   * (or minSupport): the top class is then never answered (except at a probability of exactly 1).
   */
  neverAnswered: string[];
  /**
   * Whether the budget is met. False only when images at probability exactly 1 (which no
   * threshold can refuse) are wrong too often; the thresholds are then all 1.
   */
  feasible: boolean;
}

export interface GroupCrossFit extends ThresholdOutcome {
  /** Thresholds fitted on the other groups' rows. */
  thresholds: Record<string, number>;
  /** What that fit promised on its own rows. */
  fit: ThresholdOutcome;
}

export interface CrossFitResult extends ThresholdOutcome {
  maxErrorRate: number;
  /** Per held-out group (sorted by name): its figures under thresholds fitted without it. */
  groups: Record<string, GroupCrossFit>;
}

interface Scored {
  top: number;
  confidence: number;
  wrong: boolean;
}

/** One way to set a class's threshold: the rows it answers and how many of them are wrong. */
interface Candidate {
  threshold: number;
  answered: number;
  errors: number;
}

/** Slack for comparing an integer error count with a float budget. */
const EPS = 1e-9;

function checkRows(classes: readonly string[], rows: readonly ThresholdRow[]): void {
  if (classes.length < 2) throw new RangeError(`need at least 2 classes, got ${classes.length}`);
  rows.forEach((r, i) => {
    if (!Number.isInteger(r.label) || r.label < 0 || r.label >= classes.length) throw new RangeError(`row ${i}: label ${r.label} is not a class index 0..${classes.length - 1}`);
    if (r.probabilities.length !== classes.length) throw new RangeError(`row ${i}: ${r.probabilities.length} probabilities for ${classes.length} classes`);
    if (!r.probabilities.every((p) => Number.isFinite(p))) throw new RangeError(`row ${i}: probabilities must be finite numbers`);
  });
}

/** Top class (decide()'s rule, ties to the first), its confidence, and whether it is wrong. */
function score(classes: readonly string[], r: ThresholdRow): Scored {
  const d = decide(classes, r.probabilities);
  const top = classes.indexOf(d.predicted);
  return { top, confidence: d.confidence, wrong: top !== r.label };
}

/**
 * A class's candidates, fewest answered first: every prefix of its rows sorted by confidence
 * (highest first) that does not split equal confidences. The first answers only the rows at
 * probability >= 1 (threshold 1; usually none), the last answers them all.
 */
function candidates(scored: readonly Scored[]): Candidate[] {
  const s = [...scored].sort((a, b) => b.confidence - a.confidence);
  const out: Candidate[] = [];
  let errors = 0;
  let j = 0;
  // Rows no threshold can refuse (confidence >= 1).
  while (j < s.length && s[j]!.confidence >= 1) errors += s[j++]!.wrong ? 1 : 0;
  out.push({ threshold: 1, answered: j, errors });
  while (j < s.length) {
    const c = s[j]!.confidence;
    while (j < s.length && s[j]!.confidence === c) errors += s[j++]!.wrong ? 1 : 0;
    let threshold = c; // all answered: at the last accepted value
    if (j < s.length) {
      const mid = (c + s[j]!.confidence) / 2; // between the last accepted and the first refused
      threshold = mid > s[j]!.confidence && mid <= c ? mid : c;
    }
    out.push({ threshold: Math.min(1, threshold), answered: j, errors });
  }
  return out;
}

function outcome(answered: number, errors: number, total: number): ThresholdOutcome {
  return { coverage: total > 0 ? answered / total : 0, errorRate: answered > 0 ? errors / answered : 0, answered, errors, total };
}

function checkOptions(opts: ThresholdFitOptions): { maxErrorRate: number; minSupport: number } {
  const { maxErrorRate } = opts;
  if (!(Number.isFinite(maxErrorRate) && maxErrorRate >= 0 && maxErrorRate <= 1)) throw new RangeError(`maxErrorRate must be in [0, 1], got ${maxErrorRate}`);
  const minSupport = opts.minSupport ?? 1;
  if (!Number.isInteger(minSupport) || minSupport < 1) throw new RangeError(`minSupport must be an integer >= 1, got ${minSupport}`);
  return { maxErrorRate, minSupport };
}

/**
 * Fits one minimum confidence per class maximising the share of rows answered subject to
 * errors <= maxErrorRate x answered over all answered rows (ties: fewest errors). Exact.
 */
export function fitThresholds(classes: readonly string[], rows: readonly ThresholdRow[], opts: ThresholdFitOptions): ThresholdFit {
  const { maxErrorRate, minSupport } = checkOptions(opts);
  checkRows(classes, rows);
  const K = classes.length;
  const byClass: Scored[][] = classes.map(() => []);
  for (const r of rows) {
    const s = score(classes, r);
    byClass[s.top]!.push(s);
  }
  // The first candidate (threshold 1) is always allowed: no threshold can do less.
  const cands = byClass.map((s) => candidates(s).filter((c, i) => i === 0 || c.answered >= minSupport));

  // best[A] = fewest errors with A rows answered over the classes so far; pick[k][A] = candidate of class k.
  const INF = Number.POSITIVE_INFINITY;
  let best: number[] = [0];
  const pick: Int32Array[] = [];
  for (let k = 0; k < K; k++) {
    const cs = cands[k]!;
    const maxA = best.length - 1 + cs[cs.length - 1]!.answered;
    const next = new Array<number>(maxA + 1).fill(INF);
    const choice = new Int32Array(maxA + 1).fill(-1);
    for (let a = 0; a < best.length; a++) {
      const e0 = best[a]!;
      if (e0 === INF) continue;
      cs.forEach((c, i) => {
        const e = e0 + c.errors;
        const t = a + c.answered;
        if (e < next[t]!) {
          next[t] = e;
          choice[t] = i;
        }
      });
    }
    best = next;
    pick.push(choice);
  }

  let A = -1;
  for (let a = best.length - 1; a >= 0; a--) {
    if (best[a]! !== INF && best[a]! <= maxErrorRate * a + EPS) {
      A = a;
      break;
    }
  }
  const feasible = A >= 0;
  // Infeasible (wrong answers at probability 1): all thresholds 1, the least that can be done.
  const chosen: Candidate[] = new Array<Candidate>(K);
  if (feasible) {
    let a = A;
    for (let k = K - 1; k >= 0; k--) {
      const c = cands[k]![pick[k]![a]!]!;
      chosen[k] = c;
      a -= c.answered;
    }
  } else {
    for (let k = 0; k < K; k++) chosen[k] = cands[k]![0]!;
  }

  const thresholds: Record<string, number> = {};
  const perClass: Record<string, ClassThreshold> = {};
  const neverAnswered: string[] = [];
  let answered = 0;
  let errors = 0;
  classes.forEach((name, k) => {
    const c = chosen[k]!;
    thresholds[name] = c.threshold;
    perClass[name] = { threshold: c.threshold, rows: byClass[k]!.length, answered: c.answered, errors: c.errors, precision: c.answered > 0 ? (c.answered - c.errors) / c.answered : null };
    if (c.threshold >= 1 && c === cands[k]![0]) neverAnswered.push(name);
    answered += c.answered;
    errors += c.errors;
  });
  return { thresholds, perClass, ...outcome(answered, errors, rows.length), maxErrorRate, minSupport, neverAnswered, feasible };
}

/** Coverage and error rate of `rows` under `thresholds` (decide()'s rule: below -> uncertain). */
export function applyThresholds(classes: readonly string[], rows: readonly ThresholdRow[], thresholds: Readonly<Record<string, number>>): ThresholdOutcome {
  checkRows(classes, rows);
  let answered = 0;
  let errors = 0;
  for (const r of rows) {
    const d = decide(classes, r.probabilities, 0, thresholds);
    if (d.label === UNCERTAIN) continue;
    answered++;
    if (d.label !== classes[r.label]) errors++;
  }
  return outcome(answered, errors, rows.length);
}

/**
 * Leave-one-group-out: for each group, thresholds fitted on the other groups' rows are applied to
 * this group's rows; the pooled counts are what to expect on a source the fit has not seen.
 * Needs at least two groups.
 */
export function crossFittedThresholds(classes: readonly string[], rows: readonly GroupedThresholdRow[], opts: ThresholdFitOptions): CrossFitResult {
  const { maxErrorRate } = checkOptions(opts);
  checkRows(classes, rows);
  const names = [...new Set(rows.map((r) => r.group))].sort();
  if (names.length < 2) throw new RangeError(`cross-fitting needs rows from at least 2 groups, got ${names.length}`);
  const groups: Record<string, GroupCrossFit> = {};
  let answered = 0;
  let errors = 0;
  for (const g of names) {
    const fit = fitThresholds(classes, rows.filter((r) => r.group !== g), opts);
    const held = applyThresholds(classes, rows.filter((r) => r.group === g), fit.thresholds);
    groups[g] = { ...held, thresholds: fit.thresholds, fit: outcome(fit.answered, fit.errors, fit.total) };
    answered += held.answered;
    errors += held.errors;
  }
  return { ...outcome(answered, errors, rows.length), maxErrorRate, groups };
}
