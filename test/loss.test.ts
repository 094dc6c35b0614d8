import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { crossEntropyLoss, focalLoss, makeLoss } from '../src/train/loss.js';

before(async () => {
  await tf.setBackend('cpu');
});

const near = (actual: number, expected: number, tol: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected}`);

// Two samples, three classes, chosen so the softmax is easy by hand:
//  A: logits [ln 2, 0, 0], label 0 -> p_t = 2 / (2 + 1 + 1) = 0.5
//  B: logits [0, ln 3, 0], label 2 -> p_t = 1 / (1 + 3 + 1) = 0.2
const LOGITS = [
  [Math.log(2), 0, 0],
  [0, Math.log(3), 0],
];
const LABELS = [0, 2];
const logits = (): tf.Tensor2D => tf.tensor2d(LOGITS);
const labels = (): tf.Tensor1D => tf.tensor1d(LABELS, 'int32');
const value = (s: tf.Scalar): number => {
  const v = s.dataSync()[0]!;
  s.dispose();
  return v;
};

test('cross-entropy matches hand arithmetic', () => {
  // mean(-ln 0.5, -ln 0.2) = (ln 2 + ln 5) / 2 = ln(10) / 2 = 1.1512925
  near(value(crossEntropyLoss(logits(), labels())), Math.log(10) / 2, 1e-5, 'CE');
  // alpha = [0.25, 0.5, 1]: alpha_t = 0.25 for A, 1 for B -> (0.25 ln 2 + ln 5) / 2 = 0.8913542
  near(value(crossEntropyLoss(logits(), labels(), { alpha: [0.25, 0.5, 1] })), (0.25 * Math.log(2) + Math.log(5)) / 2, 1e-5, 'alpha CE');
  // Same as tfjs' own softmax cross-entropy on one-hot labels.
  const ref = tf.losses.softmaxCrossEntropy(tf.oneHot(labels(), 3), logits()) as tf.Scalar;
  near(value(crossEntropyLoss(logits(), labels())), value(ref), 1e-6, 'vs tf.losses');
});

test('focal loss matches hand arithmetic', () => {
  // gamma 2: A: (1 - 0.5)^2 * ln 2 = 0.25 * 0.6931472 = 0.1732868
  //          B: (1 - 0.2)^2 * ln 5 = 0.64 * 1.6094379 = 1.0300403
  //          mean = 0.6016635
  near(value(focalLoss(logits(), labels())), (0.25 * Math.log(2) + 0.64 * Math.log(5)) / 2, 1e-5, 'gamma 2 default');
  near(value(focalLoss(logits(), labels(), { gamma: 2 })), 0.6016635, 1e-5, 'gamma 2 explicit');
  // gamma 1: (0.5 ln 2 + 0.8 ln 5) / 2 = (0.3465736 + 1.2875503) / 2 = 0.8170620
  near(value(focalLoss(logits(), labels(), { gamma: 1 })), 0.817062, 1e-5, 'gamma 1');
  // gamma 2, alpha [0.25, 0.5, 1]: (0.25 * 0.1732868 + 1 * 1.0300403) / 2 = 0.5366810
  near(value(focalLoss(logits(), labels(), { gamma: 2, alpha: [0.25, 0.5, 1] })), 0.536681, 1e-5, 'alpha');
  // Float labels are accepted and cast.
  near(value(focalLoss(logits(), tf.tensor1d(LABELS, 'float32'))), 0.6016635, 1e-5, 'float labels');
});

test('gamma = 0 equals cross-entropy; alpha only reweights samples', () => {
  const rng = mulberry32(7);
  const big = Array.from({ length: 6 }, () => Array.from({ length: 4 }, () => (rng() - 0.5) * 8));
  const lab = [0, 1, 2, 3, 1, 0];
  const ce = value(crossEntropyLoss(tf.tensor2d(big), tf.tensor1d(lab, 'int32')));
  const f0 = value(focalLoss(tf.tensor2d(big), tf.tensor1d(lab, 'int32'), { gamma: 0 }));
  near(f0, ce, 1e-6, 'gamma 0');
  assert.ok(value(focalLoss(tf.tensor2d(big), tf.tensor1d(lab, 'int32'), { gamma: 2 })) < ce, 'focal < CE');
  // Doubling every alpha doubles the loss.
  const a1 = value(focalLoss(tf.tensor2d(big), tf.tensor1d(lab, 'int32'), { alpha: [0.1, 0.2, 0.3, 0.4] }));
  const a2 = value(focalLoss(tf.tensor2d(big), tf.tensor1d(lab, 'int32'), { alpha: [0.2, 0.4, 0.6, 0.8] }));
  near(a2, 2 * a1, 1e-6, 'alpha scaling');
});

test('makeLoss builds the configured function', () => {
  near(value(makeLoss({ kind: 'focal', gamma: 2 })(logits(), labels())), 0.6016635, 1e-5, 'focal');
  near(value(makeLoss({ kind: 'focal', gamma: 2, alpha: [0.25, 0.5, 1] })(logits(), labels())), 0.536681, 1e-5, 'focal alpha');
  near(value(makeLoss({ kind: 'crossEntropy' })(logits(), labels())), Math.log(10) / 2, 1e-5, 'CE');
  near(value(makeLoss({ kind: 'crossEntropy', alpha: [0.25, 0.5, 1] })(logits(), labels())), 0.8913542, 1e-5, 'CE alpha');
});

test('bad arguments are rejected', () => {
  assert.throws(() => focalLoss(logits(), labels(), { alpha: [1, 1] }), /alpha has 2 entries but logits have 3 classes/);
  assert.throws(() => focalLoss(logits(), tf.tensor1d([0], 'int32')), /labels must be shape \[2\]/);
  assert.throws(() => focalLoss(logits(), labels(), { gamma: -1 }), /gamma must be >= 0/);
});

/** Float64 reference of the same loss, for finite differences. */
function focalRef(z: number[][], y: number[], gamma: number, alpha?: number[]): number {
  let total = 0;
  z.forEach((row, i) => {
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    const logpt = row[y[i]!]! - lse;
    const pt = Math.exp(logpt);
    total += -(alpha ? alpha[y[i]!]! : 1) * Math.pow(1 - pt, gamma) * logpt;
  });
  return total / z.length;
}

test('gradient w.r.t. logits is finite and matches finite differences', () => {
  const rng = mulberry32(3);
  const z = Array.from({ length: 4 }, () => Array.from({ length: 3 }, () => (rng() - 0.5) * 4));
  const y = [0, 1, 2, 1];
  for (const [gamma, alpha] of [[2, undefined], [0, [0.5, 1, 2]], [1.5, [0.3, 0.3, 0.4]], [0.5, undefined]] as const) {
    const opts = { gamma, ...(alpha ? { alpha } : {}) };
    const g = tf.grad((x: tf.Tensor) => focalLoss(x as tf.Tensor2D, tf.tensor1d(y, 'int32'), opts));
    const analytic = g(tf.tensor2d(z)).arraySync() as number[][];
    const h = 1e-5;
    z.forEach((row, i) =>
      row.forEach((_, j) => {
        const plus = z.map((r) => [...r]);
        const minus = z.map((r) => [...r]);
        plus[i]![j]! += h;
        minus[i]![j]! -= h;
        const fd = (focalRef(plus, y, gamma, alpha ? [...alpha] : undefined) - focalRef(minus, y, gamma, alpha ? [...alpha] : undefined)) / (2 * h);
        assert.ok(Number.isFinite(analytic[i]![j]!), 'finite');
        near(analytic[i]![j]!, fd, 2e-5, `gamma ${gamma} d/dz[${i}][${j}]`);
      }),
    );
  }
  // Sanity: the reference agrees with the tfjs value.
  near(value(focalLoss(tf.tensor2d(z), tf.tensor1d(y, 'int32'))), focalRef(z, y, 2), 1e-5, 'value vs ref');
});

test('extreme logits (±50) give finite loss and gradients', () => {
  // Sample 0 is confidently right (loss ~ 0), sample 1 confidently wrong: -log p_t = 100.
  const z = [
    [50, -50, 0],
    [-50, 50, 0],
  ];
  const y = tf.tensor1d([0, 0], 'int32');
  for (const gamma of [0, 0.5, 1, 2]) {
    const loss = value(focalLoss(tf.tensor2d(z), y, { gamma }));
    // (1 - p_t)^gamma ~ 1 for the wrong sample, ~ 0 for the right one: mean ~ 100 / 2.
    near(loss, 50, 1e-3, `gamma ${gamma} loss`);
    const grad = tf.grad((x: tf.Tensor) => focalLoss(x as tf.Tensor2D, y, { gamma }))(tf.tensor2d(z));
    const values = Array.from(grad.dataSync());
    assert.ok(values.every(Number.isFinite), `gamma ${gamma} gradient ${values}`);
    // Wrong sample: dL/dz = (softmax - onehot) / batch -> [-0.5, 0.5, 0] for the CE part.
    near(values[3]!, -0.5, 1e-3, `gamma ${gamma} true-class grad`);
    near(values[4]!, 0.5, 1e-3, `gamma ${gamma} winning-class grad`);
  }
});

test('no tensors leak from the loss or its gradient', () => {
  const l = logits();
  const y = labels();
  const before = tf.memory().numTensors;
  value(focalLoss(l, y, { alpha: [1, 2, 3] }));
  assert.equal(tf.memory().numTensors, before);
  const w = tf.variable(l, true, 'leakcheck');
  const { value: v, grads } = tf.variableGrads(() => focalLoss(w as tf.Tensor as tf.Tensor2D, y, { alpha: [1, 2, 3] }), [w]);
  const g = grads['leakcheck']!;
  assert.deepEqual(g.shape, [2, 3]);
  // Per row the gradient sums to 0 (softmax shift invariance).
  const rows = g.arraySync() as number[][];
  for (const r of rows) near(r[0]! + r[1]! + r[2]!, 0, 1e-6, 'row sum');
  v.dispose();
  g.dispose();
  w.dispose();
  assert.equal(tf.memory().numTensors, before);
});

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
