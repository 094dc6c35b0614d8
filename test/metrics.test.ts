import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  classificationMetrics,
  confusionMatrix,
  expectedCalibrationError,
  metricsFromConfusion,
  type ClassificationMetrics,
} from '../src/eval/metrics.js';
import {
  formatClassificationReport,
  formatConfusionMatrix,
  metricsToJSON,
  pyFixed,
} from '../src/eval/report.js';

/** Labels listing each (true, predicted) cell of a confusion matrix cm[t][p] times, row by row. */
function expand(cm: number[][]): { yTrue: number[]; yPred: number[] } {
  const yTrue: number[] = [];
  const yPred: number[] = [];
  cm.forEach((row, t) =>
    row.forEach((count, p) => {
      for (let k = 0; k < count; k++) {
        yTrue.push(t);
        yPred.push(p);
      }
    }),
  );
  return { yTrue, yPred };
}

const close = (actual: number, expected: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: ${actual} != ${expected}`);

const SEED_CM = [
  [15, 0, 0],
  [1, 24, 0],
  [0, 0, 20],
];
const SEED_CLASSES = ['back', 'front', 'none'];

// Expected report texts below were produced by scikit-learn 1.2.1 (Debian python3-sklearn, numpy
// 1.24.2) with classification_report(y_true, y_pred, labels=range(n), target_names=classes,
// digits=d, zero_division=0), where y_true/y_pred expand the confusion matrix as expand() does.
const SK = {
  seed_r2: [
      "              precision    recall  f1-score   support",
      "",
      "        back       0.94      1.00      0.97        15",
      "       front       1.00      0.96      0.98        25",
      "        none       1.00      1.00      1.00        20",
      "",
      "    accuracy                           0.98        60",
      "   macro avg       0.98      0.99      0.98        60",
      "weighted avg       0.98      0.98      0.98        60",
    ].join('\n') + '\n',
  seed_r3: [
      "              precision    recall  f1-score   support",
      "",
      "        back      0.938     1.000     0.968        15",
      "       front      1.000     0.960     0.980        25",
      "        none      1.000     1.000     1.000        20",
      "",
      "    accuracy                          0.983        60",
      "   macro avg      0.979     0.987     0.982        60",
      "weighted avg      0.984     0.983     0.983        60",
    ].join('\n') + '\n',
  seed_r4: [
      "              precision    recall  f1-score   support",
      "",
      "        back     0.9375    1.0000    0.9677        15",
      "       front     1.0000    0.9600    0.9796        25",
      "        none     1.0000    1.0000    1.0000        20",
      "",
      "    accuracy                         0.9833        60",
      "   macro avg     0.9792    0.9867    0.9824        60",
      "weighted avg     0.9844    0.9833    0.9834        60",
    ].join('\n') + '\n',
  seedReordered_r2: [
      "              precision    recall  f1-score   support",
      "",
      "        none       1.00      1.00      1.00        20",
      "        back       0.94      1.00      0.97        15",
      "       front       1.00      0.96      0.98        25",
      "",
      "    accuracy                           0.98        60",
      "   macro avg       0.98      0.99      0.98        60",
      "weighted avg       0.98      0.98      0.98        60",
    ].join('\n') + '\n',
  seedReordered_r3: [
      "              precision    recall  f1-score   support",
      "",
      "        none      1.000     1.000     1.000        20",
      "        back      0.938     1.000     0.968        15",
      "       front      1.000     0.960     0.980        25",
      "",
      "    accuracy                          0.983        60",
      "   macro avg      0.979     0.987     0.982        60",
      "weighted avg      0.984     0.983     0.983        60",
    ].join('\n') + '\n',
  seedReordered_r4: [
      "              precision    recall  f1-score   support",
      "",
      "        none     1.0000    1.0000    1.0000        20",
      "        back     0.9375    1.0000    0.9677        15",
      "       front     1.0000    0.9600    0.9796        25",
      "",
      "    accuracy                         0.9833        60",
      "   macro avg     0.9792    0.9867    0.9824        60",
      "weighted avg     0.9844    0.9833    0.9834        60",
    ].join('\n') + '\n',
  zeroDiv_r2: [
      "              precision    recall  f1-score   support",
      "",
      "         cat       0.67      1.00      0.80         2",
      "         dog       0.67      1.00      0.80         2",
      "        bird       0.00      0.00      0.00         2",
      "        fish       0.00      0.00      0.00         0",
      "",
      "   micro avg       0.67      0.67      0.67         6",
      "   macro avg       0.33      0.50      0.40         6",
      "weighted avg       0.44      0.67      0.53         6",
    ].join('\n') + '\n',
  zeroDiv_r3: [
      "              precision    recall  f1-score   support",
      "",
      "         cat      0.667     1.000     0.800         2",
      "         dog      0.667     1.000     0.800         2",
      "        bird      0.000     0.000     0.000         2",
      "        fish      0.000     0.000     0.000         0",
      "",
      "   micro avg      0.667     0.667     0.667         6",
      "   macro avg      0.333     0.500     0.400         6",
      "weighted avg      0.444     0.667     0.533         6",
    ].join('\n') + '\n',
  zeroDiv_r4: [
      "              precision    recall  f1-score   support",
      "",
      "         cat     0.6667    1.0000    0.8000         2",
      "         dog     0.6667    1.0000    0.8000         2",
      "        bird     0.0000    0.0000    0.0000         2",
      "        fish     0.0000    0.0000    0.0000         0",
      "",
      "   micro avg     0.6667    0.6667    0.6667         6",
      "   macro avg     0.3333    0.5000    0.4000         6",
      "weighted avg     0.4444    0.6667    0.5333         6",
    ].join('\n') + '\n',
  neverPredicted_r2: [
      "              precision    recall  f1-score   support",
      "",
      "           a       0.62      0.83      0.71         6",
      "           b       0.67      0.75      0.71         8",
      "           c       0.00      0.00      0.00         3",
      "",
      "    accuracy                           0.65        17",
      "   macro avg       0.43      0.53      0.47        17",
      "weighted avg       0.53      0.65      0.58        17",
    ].join('\n') + '\n',
  neverPredicted_r3: [
      "              precision    recall  f1-score   support",
      "",
      "           a      0.625     0.833     0.714         6",
      "           b      0.667     0.750     0.706         8",
      "           c      0.000     0.000     0.000         3",
      "",
      "    accuracy                          0.647        17",
      "   macro avg      0.431     0.528     0.473        17",
      "weighted avg      0.534     0.647     0.584        17",
    ].join('\n') + '\n',
  neverPredicted_r4: [
      "              precision    recall  f1-score   support",
      "",
      "           a     0.6250    0.8333    0.7143         6",
      "           b     0.6667    0.7500    0.7059         8",
      "           c     0.0000    0.0000    0.0000         3",
      "",
      "    accuracy                         0.6471        17",
      "   macro avg     0.4306    0.5278    0.4734        17",
      "weighted avg     0.5343    0.6471    0.5843        17",
    ].join('\n') + '\n',
  ties_r2: [
      "              precision    recall  f1-score   support",
      "",
      "           p       0.12      0.12      0.12         8",
      "           q       0.12      0.12      0.12         8",
      "",
      "    accuracy                           0.12        16",
      "   macro avg       0.12      0.12      0.12        16",
      "weighted avg       0.12      0.12      0.12        16",
    ].join('\n') + '\n',
  ties_r3: [
      "              precision    recall  f1-score   support",
      "",
      "           p      0.125     0.125     0.125         8",
      "           q      0.125     0.125     0.125         8",
      "",
      "    accuracy                          0.125        16",
      "   macro avg      0.125     0.125     0.125        16",
      "weighted avg      0.125     0.125     0.125        16",
    ].join('\n') + '\n',
  ties_r4: [
      "              precision    recall  f1-score   support",
      "",
      "           p     0.1250    0.1250    0.1250         8",
      "           q     0.1250    0.1250    0.1250         8",
      "",
      "    accuracy                         0.1250        16",
      "   macro avg     0.1250    0.1250    0.1250        16",
      "weighted avg     0.1250    0.1250    0.1250        16",
    ].join('\n') + '\n',
  imbalanced_r2: [
      "                        precision    recall  f1-score   support",
      "",
      "                 front       0.88      0.89      0.88        56",
      "                  back       0.59      0.67      0.62        15",
      "                  none       0.43      0.60      0.50         5",
      "a_very_long_class_name       0.00      0.00      0.00         1",
      "                     x       0.50      0.12      0.20         8",
      "",
      "              accuracy                           0.75        85",
      "             macro avg       0.48      0.46      0.44        85",
      "          weighted avg       0.75      0.75      0.74        85",
    ].join('\n') + '\n',
  imbalanced_r3: [
      "                        precision    recall  f1-score   support",
      "",
      "                 front      0.877     0.893     0.885        56",
      "                  back      0.588     0.667     0.625        15",
      "                  none      0.429     0.600     0.500         5",
      "a_very_long_class_name      0.000     0.000     0.000         1",
      "                     x      0.500     0.125     0.200         8",
      "",
      "              accuracy                          0.753        85",
      "             macro avg      0.479     0.457     0.442        85",
      "          weighted avg      0.754     0.753     0.742        85",
    ].join('\n') + '\n',
  imbalanced_r4: [
      "                        precision    recall  f1-score   support",
      "",
      "                 front     0.8772    0.8929    0.8850        56",
      "                  back     0.5882    0.6667    0.6250        15",
      "                  none     0.4286    0.6000    0.5000         5",
      "a_very_long_class_name     0.0000    0.0000    0.0000         1",
      "                     x     0.5000    0.1250    0.2000         8",
      "",
      "              accuracy                         0.7529        85",
      "             macro avg     0.4788    0.4569    0.4420        85",
      "          weighted avg     0.7540    0.7529    0.7416        85",
    ].join('\n') + '\n',
};

const CASES: Record<string, { cm: number[][]; classes: string[] }> = {
  seed: { cm: SEED_CM, classes: SEED_CLASSES },
  // Same data with classes in a different index order (none, back, front).
  seedReordered: {
    cm: [
      [20, 0, 0],
      [0, 15, 0],
      [0, 1, 24],
    ],
    classes: ['none', 'back', 'front'],
  },
  // bird is never predicted (precision 0/0) and fish never occurs at all (recall 0/0).
  zeroDiv: {
    cm: [
      [2, 0, 0, 0],
      [0, 2, 0, 0],
      [1, 1, 0, 0],
      [0, 0, 0, 0],
    ],
    classes: ['cat', 'dog', 'bird', 'fish'],
  },
  neverPredicted: {
    cm: [
      [5, 1, 0],
      [2, 6, 0],
      [1, 2, 0],
    ],
    classes: ['a', 'b', 'c'],
  },
  // Every score is exactly 0.125: Python rounds the tie to 0.12, JS toFixed would give 0.13.
  ties: {
    cm: [
      [1, 7],
      [7, 1],
    ],
    classes: ['p', 'q'],
  },
  imbalanced: {
    cm: [
      [50, 3, 2, 0, 1],
      [4, 10, 1, 0, 0],
      [1, 0, 3, 1, 0],
      [0, 1, 0, 0, 0],
      [2, 3, 1, 1, 1],
    ],
    classes: ['front', 'back', 'none', 'a_very_long_class_name', 'x'],
  },
};

function metricsFor(name: string): ClassificationMetrics {
  const c = CASES[name]!;
  const { yTrue, yPred } = expand(c.cm);
  return classificationMetrics(yTrue, yPred, c.classes);
}

test('confusionMatrix counts rows=true, cols=predicted', () => {
  assert.deepEqual(confusionMatrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3), [
    [1, 1, 0],
    [0, 1, 0],
    [1, 0, 2],
  ]);
  const { yTrue, yPred } = expand(SEED_CM);
  assert.deepEqual(confusionMatrix(yTrue, yPred, 3), SEED_CM);
  assert.deepEqual(confusionMatrix([], [], 2), [
    [0, 0],
    [0, 0],
  ]);
});

test('inputs are validated with clear errors', () => {
  assert.throws(() => confusionMatrix([0, 1], [0], 2), /differ in length: 2 vs 1/);
  assert.throws(() => confusionMatrix([0, 3], [0, 1], 3), /yTrue\[1\] = 3 is outside the class range 0\.\.2/);
  assert.throws(() => confusionMatrix([0, 1], [0, -1], 3), /yPred\[1\] = -1 is outside/);
  assert.throws(() => confusionMatrix([0, 1.5], [0, 1], 3), /yTrue\[1\] = 1.5 is not an integer/);
  assert.throws(() => confusionMatrix([0], [0], 0), /numClasses must be a positive integer/);
  assert.throws(() => metricsFromConfusion([[1, 0]], ['a', 'b']), /must be 2x2/);
  assert.throws(() => metricsFromConfusion([[1, 0], [0, 1.5]], ['a', 'b']), /not a count/);
  assert.throws(() => metricsFromConfusion([[1, 0], [0, 1]], ['a', 'a']), /duplicate class names/);
  assert.throws(() => classificationMetrics([0, 2], [0, 1], ['a', 'b']), /outside the class range/);
});

test('seed confusion matrix: accuracy, per-class and averages match sklearn', () => {
  const m = metricsFromConfusion(SEED_CM, SEED_CLASSES);
  // sklearn 1.2.1 output_dict values.
  close(m.accuracy, 0.9833333333333333, 'accuracy');
  assert.equal(m.total, 60);
  assert.deepEqual(
    m.perClass.map((c) => [c.name, c.support]),
    [['back', 15], ['front', 25], ['none', 20]],
  );
  close(m.perClass[0]!.precision, 0.9375, 'back precision');
  close(m.perClass[0]!.f1, 0.967741935483871, 'back f1');
  close(m.perClass[1]!.recall, 0.96, 'front recall');
  close(m.perClass[1]!.f1, 0.9795918367346939, 'front f1');
  close(m.macroAvg.precision, 0.9791666666666666, 'macro precision');
  close(m.macroAvg.recall, 0.9866666666666667, 'macro recall');
  close(m.macroAvg.f1, 0.9824445907395217, 'macro f1');
  close(m.weightedAvg.precision, 0.984375, 'weighted precision');
  close(m.weightedAvg.recall, 0.9833333333333333, 'weighted recall');
  close(m.weightedAvg.f1, 0.9834320825104236, 'weighted f1');
  assert.equal(m.macroAvg.support, 60);
  // Same result from labels as from the matrix.
  assert.deepEqual(metricsFor('seed'), m);
});

test('class order does not change per-class scores', () => {
  const a = metricsFor('seed');
  const b = metricsFor('seedReordered');
  for (const c of a.perClass) {
    const other = b.perClass.find((x) => x.name === c.name)!;
    assert.deepEqual(other, c);
  }
  assert.equal(b.accuracy, a.accuracy);
  close(b.macroAvg.f1, a.macroAvg.f1, 'macro f1');
  close(b.weightedAvg.f1, a.weightedAvg.f1, 'weighted f1');
});

test('zero division gives 0 and averages match sklearn', () => {
  const z = metricsFor('zeroDiv');
  assert.deepEqual(
    z.perClass.map((c) => [c.precision, c.recall, c.f1, c.support]),
    [
      [2 / 3, 1, 0.8, 2],
      [2 / 3, 1, 0.8, 2],
      [0, 0, 0, 2],
      [0, 0, 0, 0],
    ],
  );
  close(z.macroAvg.precision, 0.3333333333333333, 'macro precision');
  close(z.macroAvg.f1, 0.4, 'macro f1');
  close(z.weightedAvg.precision, 0.4444444444444444, 'weighted precision');
  close(z.weightedAvg.f1, 0.5333333333333333, 'weighted f1');

  const n = metricsFor('neverPredicted');
  close(n.macroAvg.f1, 0.47338935574229696, 'macro f1');
  close(n.weightedAvg.precision, 0.534313725490196, 'weighted precision');
  close(n.weightedAvg.f1, 0.5842807711319822, 'weighted f1');

  const im = metricsFor('imbalanced');
  close(im.accuracy, 0.7529411764705882, 'accuracy');
  close(im.macroAvg.precision, 0.4787999410290432, 'macro precision');
  close(im.macroAvg.recall, 0.45690476190476187, 'macro recall');
  close(im.macroAvg.f1, 0.44199115044247794, 'macro f1');
  close(im.weightedAvg.f1, 0.7415590838105154, 'weighted f1');

  const empty = classificationMetrics([], [], ['a', 'b']);
  assert.equal(empty.accuracy, 0);
  assert.equal(empty.weightedAvg.f1, 0);
});

test('formatClassificationReport reproduces sklearn text exactly', () => {
  const expected: Record<string, Record<number, string>> = {};
  for (const [key, text] of Object.entries(SK)) {
    const [name, r] = key.split('_') as [string, string];
    (expected[name] ??= {})[Number(r.slice(1))] = text;
  }
  for (const name of Object.keys(CASES)) {
    const m = metricsFor(name);
    for (const digits of [2, 3, 4]) {
      assert.equal(formatClassificationReport(m, digits), expected[name]![digits], `${name} digits=${digits}`);
    }
  }
  // Default is 2 digits.
  assert.equal(formatClassificationReport(metricsFor('seed')), SK.seed_r2);
});

test('pyFixed rounds exact ties half-to-even like Python', () => {
  assert.equal(pyFixed(0.125, 2), '0.12');
  assert.equal(pyFixed(0.375, 2), '0.38');
  assert.equal(pyFixed(0.625, 2), '0.62');
  assert.equal(pyFixed(2.5, 0), '2');
  assert.equal(pyFixed(3.5, 0), '4');
  assert.equal(pyFixed(0.9833333333333333, 4), '0.9833');
  assert.equal(pyFixed(1, 2), '1.00');
  // 0.145 is stored slightly below the tie, so both languages round it down.
  assert.equal(pyFixed(0.145, 2), '0.14');
  assert.equal(pyFixed(Number.NaN, 2), 'nan');
});

test('formatConfusionMatrix labels rows as true and columns as predicted', () => {
  const text = formatConfusionMatrix(metricsFromConfusion(SEED_CM, SEED_CLASSES));
  assert.equal(
    text,
    [
      'true\\pred  back  front  none',
      '     back    15      0     0',
      '    front     1     24     0',
      '     none     0      0    20',
    ].join('\n') + '\n',
  );
  const wide = formatConfusionMatrix(metricsFromConfusion([[1234, 0], [5, 6]], ['a', 'bb']));
  assert.equal(wide, ['true\\pred     a  bb', '        a  1234   0', '       bb     5   6'].join('\n') + '\n');
});

test('metricsToJSON is plain, stable and round-trips through JSON', () => {
  const m = metricsFromConfusion(SEED_CM, SEED_CLASSES);
  const j = metricsToJSON(m);
  assert.deepEqual(Object.keys(j), ['classes', 'accuracy', 'total', 'confusion', 'perClass', 'macroAvg', 'weightedAvg']);
  assert.deepEqual(Object.keys(j.perClass[0]!), ['name', 'precision', 'recall', 'f1', 'support']);
  assert.deepEqual(Object.keys(j.macroAvg), ['precision', 'recall', 'f1', 'support']);
  assert.deepEqual(JSON.parse(JSON.stringify(j)), j);
  assert.equal(j.perClass[1]!.name, 'front');
  assert.equal(j.perClass[1]!.recall, 0.96);
  // A copy: mutating the JSON does not touch the metrics.
  j.confusion[0]![0] = 99;
  assert.equal(m.confusion[0]![0], 15);
});

test('expectedCalibrationError matches a numpy reference', () => {
  const probs = [
    [0.9, 0.05, 0.05],
    [0.6, 0.3, 0.1],
    [0.2, 0.7, 0.1],
    [0.34, 0.33, 0.33],
    [0.1, 0.1, 0.8],
    [0.05, 0.9, 0.05],
    [0.5, 0.4, 0.1],
    [0.25, 0.25, 0.5],
  ];
  const y = [0, 1, 1, 2, 2, 1, 0, 0];
  // Reference: numpy loop over linspace(0, 1, bins + 1) with (lo, hi] bins, |acc - conf| * n_b / n.
  close(expectedCalibrationError(probs, y), 0.205, 'ece 15 bins');
  close(expectedCalibrationError(probs, y, 5), 0.20500000000000002, 'ece 5 bins');
  // One bin: |mean acc - mean conf| = |5/8 - 5.24/8| = 0.03.
  close(expectedCalibrationError(probs, y, 1), 0.030000000000000027, 'ece 1 bin');
  // Perfectly confident and right: 0. Confident and wrong: 1.
  assert.equal(expectedCalibrationError([[1, 0], [0, 1]], [0, 1]), 0);
  assert.equal(expectedCalibrationError([[1, 0], [0, 1]], [1, 0]), 1);
  assert.equal(expectedCalibrationError([], []), 0);
  assert.throws(() => expectedCalibrationError([[0.5, 0.5]], [0, 1]), /differ in length/);
  assert.throws(() => expectedCalibrationError([[0.5, 0.5], [1]], [0, 1]), /probs\[1\] has 1 entries/);
  assert.throws(() => expectedCalibrationError([[0.5, 0.5]], [2]), /outside the class range/);
});
