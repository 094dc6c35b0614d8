import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { registerTrainingGradients, TRAINING_GRADIENT_KERNELS } from '../src/train/kernels/gradients.js';
import { seededData } from './helpers/numeric.js';

/** Keeps values at least `gap` away from each kink so finite differences stay on one side. */
function awayFrom(v: Float32Array, kinks: number[], gap = 0.05): Float32Array {
  return v.map((x) => {
    for (const k of kinks) if (Math.abs(x - k) < gap) return k + (x < k ? -gap : gap);
    return x;
  });
}

interface Input {
  shape: number[];
  values: Float32Array;
}

const inp = (shape: number[], seed: number, lo = -1, hi = 1): Input => ({
  shape,
  values: seededData(shape.reduce((a, b) => a * b, 1), seed, lo, hi),
});

/**
 * Checks tf.grads of sum(f(...xs) * r) against central differences. Inputs and weights are small,
 * so float32 rounding stays well below the tolerance.
 */
function checkGrad(name: string, f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: Input[], eps = 1e-2, tol = 2e-2): void {
  const shapeOut = tf.tidy(() => f(...inputs.map((i) => tf.tensor(i.values, i.shape))).shape);
  const r = seededData(shapeOut.reduce((a, b) => a * b, 1), 999, 0.5, 1.5);
  const loss = (vals: Float32Array[]): number =>
    tf.tidy(() => tf.sum(tf.mul(f(...vals.map((v, i) => tf.tensor(v, inputs[i]!.shape))), tf.tensor(r, shapeOut))).dataSync()[0]!);
  const analytic = tf.tidy(() =>
    tf
      .grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), tf.tensor(r, shapeOut))))(
        inputs.map((i) => tf.tensor(i.values, i.shape)),
      )
      .map((g) => g.dataSync().slice()),
  );
  inputs.forEach((input, k) => {
    const vals = inputs.map((i) => i.values.slice());
    let scale = 0;
    let err = 0;
    for (let j = 0; j < input.values.length; j++) {
      const orig = vals[k]![j]!;
      vals[k]![j] = orig + eps;
      const up = loss(vals);
      vals[k]![j] = orig - eps;
      const down = loss(vals);
      vals[k]![j] = orig;
      const numeric = (up - down) / (2 * eps);
      err = Math.max(err, Math.abs(numeric - analytic[k]![j]!));
      scale = Math.max(scale, Math.abs(numeric));
    }
    assert.ok(scale > 0, `${name}: input ${k} has an all-zero numeric gradient; the case tests nothing`);
    assert.ok(err <= tol * Math.max(scale, 1), `${name}: input ${k} gradient off by ${err} (scale ${scale})`);
  });
}

describe('training gradients', () => {
  before(async () => {
    await tf.setBackend('cpu');
    registerTrainingGradients();
    registerTrainingGradients(); // idempotent
  });

  test('every listed kernel has a gradient', () => {
    for (const k of TRAINING_GRADIENT_KERNELS) assert.ok(tf.getGradient(k) !== undefined, k);
    for (const k of ['Conv2D', 'DepthwiseConv2dNative', 'FusedBatchNorm', 'Relu6', 'Prelu', 'Mean', 'BatchMatMul']) {
      assert.ok(TRAINING_GRADIENT_KERNELS.includes(k), k);
    }
  });

  test('element-wise binary ops with broadcasting', () => {
    const a = inp([2, 3], 1);
    const b = inp([3], 2);
    checkGrad('add', (x, y) => tf.add(x!, y!), [a, b]);
    checkGrad('sub', (x, y) => tf.sub(x!, y!), [a, b]);
    checkGrad('mul', (x, y) => tf.mul(x!, y!), [a, b]);
    checkGrad('div', (x, y) => tf.div(x!, y!), [a, inp([3], 3, 0.5, 1.5)]);
    checkGrad('squaredDifference', (x, y) => tf.squaredDifference(x!, y!), [a, b]);
    const m = { shape: [2, 3], values: awayFrom(seededData(6, 4), [0]) };
    checkGrad('maximum scalar', (x) => tf.maximum(x!, 0), [m]);
    const p = { shape: [4], values: Float32Array.from([0.1, 1.5, 0.7, 2.0]) };
    const q = { shape: [4], values: Float32Array.from([1.0, 0.3, 1.2, 0.5]) };
    checkGrad('maximum both', (x, y) => tf.maximum(x!, y!), [p, q]);
    checkGrad('minimum both', (x, y) => tf.minimum(x!, y!), [p, q]);
    checkGrad('pow', (x, y) => tf.pow(x!, y!), [inp([2, 3], 7, 0.5, 1.5), inp([3], 8, 0.5, 2)]);
    checkGrad('addN', (x, y) => tf.addN([x!, y!, x!]), [inp([3], 9), inp([3], 10)]);
  });

  test('element-wise unary ops and activations', () => {
    const x = inp([2, 4], 11);
    const pos = inp([2, 4], 12, 0.5, 2);
    checkGrad('neg', (t) => tf.neg(t!), [x]);
    checkGrad('square', (t) => tf.square(t!), [x]);
    checkGrad('sqrt', (t) => tf.sqrt(t!), [pos]);
    checkGrad('rsqrt', (t) => tf.rsqrt(t!), [pos]);
    checkGrad('exp', (t) => tf.exp(t!), [x]);
    checkGrad('log', (t) => tf.log(t!), [pos]);
    checkGrad('sigmoid', (t) => tf.sigmoid(t!), [x]);
    checkGrad('tanh', (t) => tf.tanh(t!), [x]);
    checkGrad('cast', (t) => tf.cast(t!, 'float32'), [x]);
    const kinked = { shape: [3, 4], values: awayFrom(seededData(12, 13, -2, 8), [0, 6]) };
    checkGrad('abs', (t) => tf.abs(t!), [kinked]);
    checkGrad('relu', (t) => tf.relu(t!), [kinked]);
    checkGrad('relu6', (t) => tf.relu6(t!), [kinked]);
    checkGrad('leakyRelu', (t) => tf.leakyRelu(t!, 0.2), [kinked]);
    checkGrad('clipByValue', (t) => tf.clipByValue(t!, 0, 6), [kinked]);
    checkGrad('prelu', (t, a) => tf.prelu(t!, a!), [kinked, inp([4], 14, 0.1, 0.5)]);
    checkGrad('softmax', (t) => tf.softmax(t!), [x]);
    checkGrad('logSoftmax', (t) => tf.logSoftmax(t!), [x]);
    const cond = tf.tensor1d([1, 0, 0, 1], 'bool');
    checkGrad('where', (t, e) => tf.where(cond, t!, e!), [inp([4], 15), inp([4], 16)]);
    cond.dispose();
  });

  test('activation masks at their kinks follow tfjs conventions', () => {
    const x = tf.tensor1d([-1, 0, 3, 6, 7]);
    const grad = (f: (t: tf.Tensor) => tf.Tensor): number[] => Array.from(tf.grad(f)(x).dataSync());
    assert.deepEqual(grad((t) => tf.relu(t)), [0, 0, 1, 1, 1]);
    assert.deepEqual(grad((t) => tf.relu6(t)), [0, 0, 1, 1, 0]);
    assert.deepEqual(grad((t) => tf.clipByValue(t, 0, 6)), [0, 1, 1, 1, 0]);
    assert.deepEqual(grad((t) => tf.leakyRelu(t, 0.25)), [0.25, 0.25, 1, 1, 1]);
    x.dispose();
  });

  test('shape ops', () => {
    const x = inp([2, 3, 4], 21);
    checkGrad('reshape', (t) => tf.reshape(t!, [6, 4]), [x]);
    checkGrad('expandDims', (t) => tf.expandDims(t!, 1), [x]);
    checkGrad('transpose', (t) => tf.transpose(t!, [2, 0, 1]), [x]);
    checkGrad('slice', (t) => tf.slice(t!, [0, 1, 1], [2, -1, 2]), [x]);
    checkGrad('pad', (t) => tf.pad(t!, [[0, 1], [2, 0], [1, 1]]), [x]);
    checkGrad('tile', (t) => tf.tile(t!, [2, 1, 3]), [x]);
    checkGrad('concat', (a, b) => tf.concat([a!, b!], 1), [x, inp([2, 2, 4], 22)]);
    checkGrad('stack', (a, b) => tf.stack([a!, b!], 1), [x, inp([2, 3, 4], 23)]);
    checkGrad('split', (t) => {
      const [p, q] = tf.split(t!, [1, 3], 2);
      return tf.add(tf.mul(p!, 2), tf.sum(q!, 2, true));
    }, [x]);
  });

  test('reductions and matMul', () => {
    const x = inp([2, 3, 4], 31);
    checkGrad('sum', (t) => tf.sum(t!, [0, 2]), [x]);
    checkGrad('sum keepDims', (t) => tf.sum(t!, 1, true), [x]);
    checkGrad('mean', (t) => tf.mean(t!, [1, 2]), [x]);
    checkGrad('mean all', (t) => tf.mean(t!), [x]);
    checkGrad('moments', (t) => {
      const { mean, variance } = tf.moments(t!, 0);
      return tf.add(mean, variance);
    }, [inp([5, 3], 32)]);
    const a = inp([3, 4], 33);
    const b = inp([4, 2], 34);
    const aT = inp([4, 3], 35);
    const bT = inp([2, 4], 36);
    checkGrad('matMul', (p, q) => tf.matMul(p!, q!), [a, b]);
    checkGrad('matMul tA', (p, q) => tf.matMul(p!, q!, true, false), [aT, b]);
    checkGrad('matMul tB', (p, q) => tf.matMul(p!, q!, false, true), [a, bT]);
    checkGrad('matMul tA tB', (p, q) => tf.matMul(p!, q!, true, true), [aT, bT]);
    checkGrad('batched matMul', (p, q) => tf.matMul(p!, q!), [inp([2, 3, 4], 37), inp([2, 4, 2], 38)]);
    checkGrad('fused matMul relu', (p, q, c) => tf.fused.matMul({ a: p as tf.Tensor2D, b: q as tf.Tensor2D, bias: c!, activation: 'relu' }), [
      a,
      b,
      inp([2], 39),
    ]);
  });

  test('batchNorm with respect to all five inputs', () => {
    checkGrad(
      'batchNorm',
      (x, m, v, o, s) => tf.batchNorm(x!, m!, v!, o!, s!, 1e-3),
      [inp([2, 2, 2, 3], 41), inp([3], 42), inp([3], 43, 0.5, 1.5), inp([3], 44), inp([3], 45)],
    );
  });

  test('conv2d and depthwiseConv2d, plain and fused', () => {
    const x = inp([1, 5, 5, 2], 51);
    checkGrad('conv2d s2 same', (t, w) => tf.conv2d(t as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'), [x, inp([3, 3, 2, 3], 52)]);
    checkGrad('depthwise s1 valid', (t, w) => tf.depthwiseConv2d(t as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid'), [
      x,
      inp([3, 3, 2, 2], 53),
    ]);
    checkGrad(
      'fused conv2d relu6 + bias',
      (t, w, c) => tf.fused.conv2d({ x: t as tf.Tensor4D, filter: w as tf.Tensor4D, strides: 1, pad: 'same', bias: c!, activation: 'relu6' }),
      [x, inp([1, 1, 2, 3], 54), inp([3], 55)],
    );
  });
});
