/**
 * Curves for reports, computed from predictions alone: one-vs-rest precision-recall curves with
 * average precision (scikit-learn's definitions) and reliability-diagram bins.
 */
import { argmax } from '../util/argmax.js';

export interface PrPoint {
  /** Score at or above which a sample counts as positive. */
  threshold: number;
  precision: number;
  recall: number;
}

export interface PrCurve {
  /** Points in order of decreasing threshold; recall rises from the first to the last. */
  points: PrPoint[];
  /**
   * sklearn's `average_precision_score`: sum over thresholds of (R_n - R_{n-1}) * P_n, a step
   * integral with no interpolation. NaN when there are no positives.
   */
  averagePrecision: number;
  positives: number;
}

/** Precision and recall of "score >= t" for every distinct score t (ties move together). */
export function precisionRecallCurve(scores: readonly number[], positive: readonly boolean[]): PrCurve {
  if (scores.length !== positive.length) throw new Error(`scores and labels differ in length: ${scores.length} vs ${positive.length}`);
  for (const s of scores) if (!Number.isFinite(s)) throw new Error(`scores must be finite numbers, got ${s}`);
  const positives = positive.filter(Boolean).length;
  const order = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const points: PrPoint[] = [];
  let tp = 0;
  let fp = 0;
  let ap = 0;
  let lastRecall = 0;
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    if (positive[i]) tp++;
    else fp++;
    const next = order[k + 1];
    if (next !== undefined && scores[next] === scores[i]) continue; // a tie: one threshold
    const precision = tp / (tp + fp);
    const recall = positives === 0 ? 0 : tp / positives;
    points.push({ threshold: scores[i]!, precision, recall });
    ap += (recall - lastRecall) * precision;
    lastRecall = recall;
  }
  return { points, averagePrecision: positives === 0 ? NaN : ap, positives };
}

export interface ReliabilityBin {
  /** The bin covers confidences in (lo, hi] (the first bin also takes 0). */
  lo: number;
  hi: number;
  count: number;
  /** Mean top probability of the samples in the bin (NaN when empty). */
  confidence: number;
  /** Fraction of them predicted correctly (NaN when empty). */
  accuracy: number;
}

export interface Reliability {
  bins: ReliabilityBin[];
  /** Expected calibration error: sum over bins of |accuracy - confidence| * count / total. */
  ece: number;
  total: number;
}

/**
 * Top-label reliability (Guo et al. 2017): the confidence (max probability) is bucketed into
 * `bins` equal-width bins (lo, hi]; a confidence of exactly 0 goes into the first bin.
 */
export function reliabilityDiagram(probs: readonly (readonly number[])[], yTrue: readonly number[], bins = 15): Reliability {
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`bins must be a positive integer, got ${bins}`);
  if (probs.length !== yTrue.length) throw new Error(`probs and yTrue differ in length: ${probs.length} vs ${yTrue.length}`);
  const count = new Array<number>(bins).fill(0);
  const confSum = new Array<number>(bins).fill(0);
  const correct = new Array<number>(bins).fill(0);
  const numClasses = probs[0]?.length ?? 0;
  probs.forEach((row, i) => {
    if (row.length !== numClasses || numClasses < 1) throw new Error(`probs[${i}] has ${row.length} entries, expected ${numClasses}`);
    const y = yTrue[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= numClasses) throw new Error(`yTrue[${i}] = ${y} is outside the class range 0..${numClasses - 1}`);
    const best = argmax(row);
    const conf = row[best]!;
    if (!(conf >= 0 && conf <= 1)) throw new Error(`probs[${i}] has confidence ${conf} outside [0, 1]`);
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(conf * bins) - 1));
    count[b]! += 1;
    confSum[b]! += conf;
    if (best === y) correct[b]! += 1;
  });
  let ece = 0;
  const out: ReliabilityBin[] = count.map((n, b) => {
    if (n > 0) ece += (Math.abs(correct[b]! - confSum[b]!) / n) * (n / probs.length);
    return { lo: b / bins, hi: (b + 1) / bins, count: n, confidence: n ? confSum[b]! / n : NaN, accuracy: n ? correct[b]! / n : NaN };
  });
  return { bins: out, ece, total: probs.length };
}

export interface ConfusedPair {
  trueClass: string;
  predicted: string;
  count: number;
  /** count / images of the true class. */
  rate: number;
}

/** Off-diagonal cells of a confusion matrix, most frequent first (ties: higher rate first). */
export function mostConfusedPairs(confusion: readonly (readonly number[])[], classes: readonly string[]): ConfusedPair[] {
  const pairs: ConfusedPair[] = [];
  confusion.forEach((row, t) => {
    const support = row.reduce((a, b) => a + b, 0);
    row.forEach((n, p) => {
      if (p !== t && n > 0) pairs.push({ trueClass: classes[t]!, predicted: classes[p]!, count: n, rate: n / support });
    });
  });
  return pairs.sort((a, b) => b.count - a.count || b.rate - a.rate);
}

/**
 * Probabilities before temperature scaling, recovered from calibrated ones: softmax(z / T) = p
 * means z = T * log p + c per row, so softmax(T * log p) gives back softmax(z).
 */
export function uncalibrate(probs: readonly (readonly number[])[], temperature: number): number[][] {
  if (!(temperature > 0)) throw new Error(`temperature must be positive, got ${temperature}`);
  return probs.map((row) => {
    const z = row.map((p) => temperature * Math.log(p)); // log 0 = -Infinity -> probability 0
    const m = Math.max(...z);
    const e = z.map((v) => (v === -Infinity ? 0 : Math.exp(v - m)));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  });
}
