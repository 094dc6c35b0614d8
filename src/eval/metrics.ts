/**
 * Classification metrics computed from predicted labels alone (no tfjs, no model), following
 * scikit-learn's definitions so reports can be compared with Python tooling:
 * zero division (a class never predicted, or never present) yields 0, as sklearn's default does.
 */
import { reliabilityDiagram } from './curves.js';

export interface ClassScores {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface PerClassScores extends ClassScores {
  name: string;
}

export interface ClassificationMetrics {
  classes: string[];
  /** confusion[t][p] = samples of true class t predicted as p. */
  confusion: number[][];
  perClass: PerClassScores[];
  accuracy: number;
  /** Unweighted mean over classes; support is the total. */
  macroAvg: ClassScores;
  /** Mean over classes weighted by support; support is the total. */
  weightedAvg: ClassScores;
  total: number;
}

function checkLabels(name: string, labels: readonly number[], numClasses: number): void {
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i]!;
    if (!Number.isInteger(v)) throw new Error(`${name}[${i}] = ${v} is not an integer class index`);
    if (v < 0 || v >= numClasses) {
      throw new Error(`${name}[${i}] = ${v} is outside the class range 0..${numClasses - 1}`);
    }
  }
}

/** Rows are true classes, columns predicted classes. */
export function confusionMatrix(
  yTrue: readonly number[],
  yPred: readonly number[],
  numClasses: number,
): number[][] {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new Error(`numClasses must be a positive integer, got ${numClasses}`);
  }
  if (yTrue.length !== yPred.length) {
    throw new Error(`yTrue and yPred differ in length: ${yTrue.length} vs ${yPred.length}`);
  }
  checkLabels('yTrue', yTrue, numClasses);
  checkLabels('yPred', yPred, numClasses);
  const cm = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < yTrue.length; i++) cm[yTrue[i]!]![yPred[i]!]! += 1;
  return cm;
}

export function classificationMetrics(
  yTrue: readonly number[],
  yPred: readonly number[],
  classNames: readonly string[],
): ClassificationMetrics {
  return metricsFromConfusion(confusionMatrix(yTrue, yPred, classNames.length), classNames);
}

const div0 = (num: number, den: number): number => (den === 0 ? 0 : num / den);

export function metricsFromConfusion(
  cm: readonly (readonly number[])[],
  classNames: readonly string[],
): ClassificationMetrics {
  const n = classNames.length;
  if (n < 1) throw new Error('classNames must not be empty');
  if (new Set(classNames).size !== n) throw new Error(`duplicate class names: ${classNames.join(', ')}`);
  if (cm.length !== n || cm.some((row) => row.length !== n)) {
    throw new Error(`confusion matrix must be ${n}x${n} to match ${n} class names`);
  }
  for (const row of cm) {
    for (const v of row) {
      if (!Number.isInteger(v) || v < 0) throw new Error(`confusion matrix entry ${v} is not a count`);
    }
  }

  const support = cm.map((row) => row.reduce((a, b) => a + b, 0));
  const predicted = classNames.map((_, p) => cm.reduce((a, row) => a + row[p]!, 0));
  const total = support.reduce((a, b) => a + b, 0);
  let correct = 0;
  for (let i = 0; i < n; i++) correct += cm[i]![i]!;

  const perClass: PerClassScores[] = classNames.map((name, i) => {
    const tp = cm[i]![i]!;
    const precision = div0(tp, predicted[i]!);
    const recall = div0(tp, support[i]!);
    // Same float expression as sklearn 1.2 (harmonic mean of P and R), so printed digits agree
    // even at rounding ties; mathematically equal to 2tp / (2tp + fp + fn).
    const f1 = div0(2 * precision * recall, precision + recall);
    return { name, precision, recall, f1, support: support[i]! };
  });

  // Sequential sums in class order, like numpy for small arrays, so printed digits match sklearn.
  const avg = (weights: readonly number[] | null): ClassScores => {
    const w = (i: number): number => (weights ? weights[i]! : 1);
    const wsum = weights ? weights.reduce((a, b) => a + b, 0) : n;
    const mean = (key: 'precision' | 'recall' | 'f1'): number => {
      let s = 0;
      for (let i = 0; i < n; i++) s += perClass[i]![key] * w(i);
      return div0(s, wsum);
    };
    return { precision: mean('precision'), recall: mean('recall'), f1: mean('f1'), support: total };
  };

  return {
    classes: [...classNames],
    confusion: cm.map((row) => [...row]),
    perClass,
    accuracy: div0(correct, total),
    macroAvg: avg(null),
    weightedAvg: avg(support),
    total,
  };
}

/**
 * Top-label expected calibration error (Guo et al. 2017): the confidence (max probability) is
 * bucketed into `bins` equal-width bins (lo, hi]; ECE = sum_b |acc_b - conf_b| * n_b / n.
 * A confidence of exactly 0 goes into the first bin. The bins themselves: reliabilityDiagram.
 */
export function expectedCalibrationError(
  probs: readonly (readonly number[])[],
  yTrue: readonly number[],
  bins = 15,
): number {
  return reliabilityDiagram(probs, yTrue, bins).ece;
}
