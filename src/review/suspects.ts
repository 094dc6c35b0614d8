/**
 * Which images' labels look wrong, from out-of-fold predictions (confident learning, Northcutt et
 * al. 2021). Each class j gets a threshold t_j: the mean out-of-fold probability of j over the
 * images labelled j (how sure the model usually is of that class). An image labelled y is counted
 * "confidently" as class j when p_j >= t_j; it is a suspect when the model is not even usually
 * sure of its label (p_y < t_y) yet confidently sees another class. Out-of-fold matters: a model
 * that trained on the image has learned its label, right or wrong.
 *
 * Pure: no I/O, so it can be tested on planted errors.
 */

/** One image's out-of-fold prediction; `probabilities` in `classes` order. */
export interface OutOfFoldRow {
  path: string;
  label: string;
  probabilities: readonly number[];
  group?: string;
}

export interface Suspect {
  path: string;
  given: string;
  /** The class the model confidently sees instead (the most probable one at or above its threshold). */
  suggested: string;
  pGiven: number;
  pSuggested: number;
  /** p(suggested) - p(given): how strongly the model disagrees (the ranking key for 'margin'). */
  margin: number;
  /** The ranking score (higher = more suspicious) under the chosen `rankBy`. */
  score: number;
  group?: string;
}

export type RankBy = 'margin' | 'self-confidence';

export interface SuspectReport {
  classes: string[];
  /** Per-class thresholds t_j (null: no image has that label, so nothing is confidently that class). */
  thresholds: Record<string, number | null>;
  images: number;
  rankBy: RankBy;
  /** Most suspicious first. */
  suspects: Suspect[];
  /**
   * The confident joint: counts[given][counted-as] over the images counted confidently as some
   * class (an image whose own class clears its threshold is counted as its own class).
   */
  confidentJoint: number[][];
  /** Images counted as no class at all (no probability at or above its class's threshold). */
  unconfident: number;
  /**
   * Off-diagonal cells of the joint: suspects per (given, suggested) pair, and the estimated number
   * of label errors there (the joint's row rescaled to the number of images with that label).
   */
  noise: { given: string; suggested: string; suspects: number; estimated: number }[];
}

export class SuspectInputError extends Error {
  override readonly name = 'SuspectInputError';
}

function check(classes: readonly string[], rows: readonly OutOfFoldRow[]): void {
  if (classes.length < 2) throw new SuspectInputError(`need at least 2 classes, got ${classes.length}`);
  const known = new Set(classes);
  for (const r of rows) {
    if (!known.has(r.label)) throw new SuspectInputError(`${r.path}: label '${r.label}' is not one of the classes (${classes.join(', ')})`);
    if (r.probabilities.length !== classes.length || r.probabilities.some((p) => !Number.isFinite(p) || p < 0 || p > 1)) {
      throw new SuspectInputError(`${r.path}: needs ${classes.length} probabilities in 0..1, got [${r.probabilities.join(', ')}]`);
    }
  }
}

/** t_j = mean p_j over the images labelled j; null for a class no image has. */
export function classThresholds(classes: readonly string[], rows: readonly OutOfFoldRow[]): (number | null)[] {
  const sum = classes.map(() => 0);
  const n = classes.map(() => 0);
  for (const r of rows) {
    const y = classes.indexOf(r.label);
    sum[y]! += r.probabilities[y]!;
    n[y]!++;
  }
  return classes.map((_, j) => (n[j]! > 0 ? sum[j]! / n[j]! : null));
}

/** Slack for p >= t: a threshold that is the mean of equal probabilities may round a hair above them. */
const EPS = 1e-9;

/** The class an image is confidently counted as: its own if it clears its threshold, else the likeliest that does. */
function countedAs(p: readonly number[], y: number, t: readonly (number | null)[]): number | null {
  if (t[y] !== null && p[y]! >= t[y]! - EPS) return y;
  let best: number | null = null;
  for (let j = 0; j < p.length; j++) if (j !== y && t[j] !== null && p[j]! >= t[j]! - EPS && (best === null || p[j]! > p[best]!)) best = j;
  return best;
}

/** Suspects (most suspicious first), the thresholds and the confident joint of out-of-fold predictions. */
export function findSuspects(classes: readonly string[], rows: readonly OutOfFoldRow[], opts: { rankBy?: RankBy } = {}): SuspectReport {
  check(classes, rows);
  const rankBy = opts.rankBy ?? 'margin';
  const t = classThresholds(classes, rows);
  const k = classes.length;
  const joint = classes.map(() => new Array<number>(k).fill(0));
  const perLabel = new Array<number>(k).fill(0);
  let unconfident = 0;
  const suspects: Suspect[] = [];
  for (const r of rows) {
    const y = classes.indexOf(r.label);
    perLabel[y]!++;
    const j = countedAs(r.probabilities, y, t);
    if (j === null) {
      unconfident++;
      continue;
    }
    joint[y]![j]!++;
    if (j === y) continue;
    const pGiven = r.probabilities[y]!;
    const pSuggested = r.probabilities[j]!;
    const margin = pSuggested - pGiven;
    suspects.push({
      path: r.path,
      given: r.label,
      suggested: classes[j]!,
      pGiven,
      pSuggested,
      margin,
      score: rankBy === 'margin' ? margin : 1 - pGiven,
      ...(r.group !== undefined ? { group: r.group } : {}),
    });
  }
  suspects.sort((a, b) => b.score - a.score || a.pGiven - b.pGiven || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const noise: SuspectReport['noise'] = [];
  for (let y = 0; y < k; y++) {
    const counted = joint[y]!.reduce((s, c) => s + c, 0);
    for (let j = 0; j < k; j++) {
      const c = joint[y]![j]!;
      if (j === y || c === 0) continue;
      // Calibrated as in confident learning: the row's shares times the images with that label.
      noise.push({ given: classes[y]!, suggested: classes[j]!, suspects: c, estimated: Math.round((c / counted) * perLabel[y]!) });
    }
  }
  noise.sort((a, b) => b.suspects - a.suspects);
  return {
    classes: [...classes],
    thresholds: Object.fromEntries(classes.map((c, j) => [c, t[j]!])),
    images: rows.length,
    rankBy,
    suspects,
    confidentJoint: joint,
    unconfident,
    noise,
  };
}
