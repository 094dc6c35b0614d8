import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmGradientKernels } from '../src/train/kernels/wasm-gradients.js';
import { relErr, seededData } from './helpers/numeric.js';

type Backend = 'cpu' | 'wasm';
type Pad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];

const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** Runs `fn` on a backend and copies every output back to JS memory. */
async function onBackend(backend: Backend, fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  return tf.tidy(fn).map((t) => {
    const v = t.dataSync() as Float32Array;
    t.dispose();
    return Float32Array.from(v);
  });
}

interface Case {
  B: number;
  H: number;
  W: number;
  Ci: number;
  out: number; // Co for conv2d, channel multiplier for depthwise
  k: number;
  s: number;
  pad: Pad;
}

function describeCase(c: Case): string {
  return `B${c.B} ${c.H}x${c.W}x${c.Ci} k${c.k} s${c.s} pad=${JSON.stringify(c.pad)} out=${c.out}`;
}

/** Gradients of sum(op(x, w) * r) with respect to x and w. */
function convGrads(c: Case, depthwise: boolean, seed: number): () => tf.Tensor[] {
  const xShape = [c.B, c.H, c.W, c.Ci];
  const wShape = [c.k, c.k, c.Ci, c.out];
  const xData = seededData(size(xShape), seed);
  const wData = seededData(size(wShape), seed + 1);
  const op = (x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D =>
    depthwise
      ? tf.depthwiseConv2d(x, w, c.s, c.pad as 'same')
      : tf.conv2d(x, w, c.s, c.pad as 'same');
  return () => {
    const x = tf.tensor4d(xData, xShape as [number, number, number, number]);
    const w = tf.tensor4d(wData, wShape as [number, number, number, number]);
    const yShape = op(x, w).shape;
    const r = tf.tensor(seededData(size(yShape), seed + 2), yShape);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(op(a as tf.Tensor4D, b as tf.Tensor4D), r)));
    return g([x, w]);
  };
}

async function compareConv(c: Case, depthwise: boolean, seed: number): Promise<void> {
  const fn = convGrads(c, depthwise, seed);
  const [cdx, cdw] = await onBackend('cpu', fn);
  const [wdx, wdw] = await onBackend('wasm', fn);
  const ex = relErr(wdx!, cdx!);
  const ew = relErr(wdw!, cdw!);
  assert.ok(ex <= 1e-4, `dx mismatch ${ex} for ${describeCase(c)}`);
  assert.ok(ew <= 1e-4, `dw mismatch ${ew} for ${describeCase(c)}`);
}

const CONV_CASES: Case[] = [
  { B: 1, H: 7, W: 7, Ci: 8, out: 4, k: 1, s: 1, pad: 'same' },
  { B: 3, H: 7, W: 7, Ci: 5, out: 6, k: 1, s: 1, pad: 'valid' },
  { B: 3, H: 8, W: 8, Ci: 4, out: 3, k: 1, s: 2, pad: 'same' },
  { B: 1, H: 7, W: 7, Ci: 3, out: 5, k: 1, s: 2, pad: 'valid' },
  { B: 1, H: 7, W: 7, Ci: 6, out: 4, k: 3, s: 1, pad: 'same' },
  { B: 3, H: 8, W: 8, Ci: 4, out: 7, k: 3, s: 1, pad: 'valid' },
  { B: 3, H: 7, W: 7, Ci: 3, out: 4, k: 3, s: 2, pad: 'same' },
  { B: 1, H: 8, W: 8, Ci: 5, out: 2, k: 3, s: 2, pad: 'same' },
  { B: 3, H: 5, W: 6, Ci: 2, out: 3, k: 3, s: 2, pad: 'valid' },
  { B: 1, H: 8, W: 8, Ci: 4, out: 4, k: 3, s: 2, pad: 'valid' },
  { B: 3, H: 5, W: 6, Ci: 4, out: 5, k: 3, s: 1, pad: 'same' },
  { B: 1, H: 9, W: 8, Ci: 3, out: 4, k: 7, s: 2, pad: 'same' },
  { B: 1, H: 9, W: 9, Ci: 2, out: 3, k: 5, s: 1, pad: 'valid' },
  { B: 1, H: 6, W: 7, Ci: 3, out: 2, k: 3, s: 1, pad: 1 },
  { B: 3, H: 7, W: 6, Ci: 2, out: 3, k: 3, s: 2, pad: [[0, 0], [2, 0], [1, 2], [0, 0]] },
];

const DEPTHWISE_CASES: Case[] = [
  { B: 1, H: 7, W: 7, Ci: 8, out: 1, k: 3, s: 1, pad: 'same' },
  { B: 3, H: 7, W: 7, Ci: 5, out: 1, k: 3, s: 2, pad: 'same' },
  { B: 3, H: 8, W: 8, Ci: 6, out: 1, k: 3, s: 2, pad: 'same' },
  { B: 1, H: 8, W: 8, Ci: 4, out: 1, k: 3, s: 1, pad: 'valid' },
  { B: 3, H: 5, W: 6, Ci: 3, out: 1, k: 3, s: 2, pad: 'valid' },
  { B: 1, H: 7, W: 7, Ci: 7, out: 1, k: 1, s: 1, pad: 'valid' },
  { B: 1, H: 9, W: 8, Ci: 3, out: 1, k: 5, s: 2, pad: 'same' },
  { B: 3, H: 7, W: 7, Ci: 3, out: 2, k: 3, s: 1, pad: 'same' },
  { B: 1, H: 8, W: 7, Ci: 2, out: 3, k: 3, s: 2, pad: 'valid' },
  { B: 1, H: 6, W: 6, Ci: 4, out: 1, k: 3, s: 1, pad: 1 },
];

/** Small net touching every op a fine-tuning step uses; returns the loss and its variables' gradients. */
function smallNetGrads(): tf.Tensor[] {
  const names: Array<[string, number[]]> = [
    ['c1', [3, 3, 4, 6]],
    ['c1b', [6]],
    ['c2', [1, 1, 6, 8]],
    ['dw', [3, 3, 8, 1]],
    ['dwb', [8]],
    ['dw2', [3, 3, 8, 2]],
    ['pw', [1, 1, 16, 8]],
    ['gamma', [8]],
    ['beta', [8]],
    ['alpha', [5]],
    ['d1', [8, 5]],
    ['b1', [5]],
    ['d2', [5, 3]],
    ['b2', [3]],
  ];
  const vars = names.map(([n, shape], i) => tf.variable(tf.tensor(seededData(size(shape), 100 + i), shape), true, n));
  const v = <T extends tf.Tensor>(n: string): T => vars[names.findIndex(([m]) => m === n)]! as unknown as T;
  const x = tf.tensor4d(seededData(2 * 9 * 9 * 4, 7), [2, 9, 9, 4]);
  const labels = tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3);
  const mean = tf.mul<tf.Tensor1D>(tf.tensor1d(seededData(8, 8)), 0.1);
  const variance = tf.add<tf.Tensor1D>(tf.abs(tf.tensor1d(seededData(8, 9))), 0.5);
  const { grads, value } = tf.variableGrads(() => {
    // Fused conv with a non-linear activation: tfjs records the unfused ops while taping.
    let h: tf.Tensor4D = tf.fused.conv2d({ x, filter: v<tf.Tensor4D>('c1'), strides: 2, pad: 'same', bias: v('c1b'), activation: 'relu6' });
    h = tf.relu(tf.conv2d(h, v<tf.Tensor4D>('c2'), 1, 'valid'));
    // Linear fused depthwise: tfjs's custom gradient calls the depthwise backprop kernels.
    let b: tf.Tensor4D = tf.fused.depthwiseConv2d({ x: h, filter: v<tf.Tensor4D>('dw'), strides: 1, pad: 'same', bias: v('dwb') });
    b = tf.batchNorm(b, mean, variance, v<tf.Tensor1D>('beta'), v<tf.Tensor1D>('gamma'), 1e-3);
    b = tf.clipByValue(b, 0, 6);
    b = tf.depthwiseConv2d(tf.pad(b, [[0, 0], [1, 1], [1, 1], [0, 0]]), v<tf.Tensor4D>('dw2'), 1, 'valid');
    b = tf.conv2d(b, v<tf.Tensor4D>('pw'), 1, 'same');
    h = tf.add<tf.Tensor4D>(h, b);
    let z = tf.mean<tf.Tensor2D>(h, [1, 2]);
    const m = tf.moments(z, 0);
    // tfjs's tape cannot record batchNorm with a missing offset or scale, hence zeros / ones.
    z = tf.batchNorm(z, m.mean as tf.Tensor1D, m.variance, tf.zeros([8]), tf.ones([8]), 1e-3) as tf.Tensor2D;
    z = tf.add<tf.Tensor2D>(tf.matMul(z, v<tf.Tensor2D>('d1')), v('b1'));
    z = tf.prelu(z, v('alpha')) as tf.Tensor2D;
    z = tf.dropout(z, 0.3, undefined, 42) as tf.Tensor2D;
    const logits = tf.fused.matMul({ a: z, b: v<tf.Tensor2D>('d2'), bias: v('b2') });
    return tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  });
  const out = [value, ...names.map(([n]) => grads[n]!)];
  vars.forEach((t) => t.dispose());
  return out;
}

describe('wasm gradient kernels', () => {
  let nativeBackpropInput: tf.KernelConfig | undefined;

  before(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
    nativeBackpropInput = tf.getKernel('Conv2DBackpropInput', 'wasm');
    registerWasmGradientKernels();
    registerWasmGradientKernels(); // idempotent
  });

  test('registers all conv gradient kernels for wasm', () => {
    for (const k of [
      'Conv2DBackpropFilter',
      'Conv2DBackpropInput',
      'DepthwiseConv2dNativeBackpropFilter',
      'DepthwiseConv2dNativeBackpropInput',
    ]) {
      assert.ok(tf.getKernel(k, 'wasm') !== undefined, `${k} missing`);
    }
    assert.notEqual(tf.getKernel('Conv2DBackpropInput', 'wasm')!.kernelFunc, nativeBackpropInput?.kernelFunc);
  });

  test('conv2d gradients match the cpu backend', async () => {
    for (const [i, c] of CONV_CASES.entries()) await compareConv(c, false, 10 * i + 1);
  });

  test("the backend's own Conv2DBackpropInput (replaced for speed) also matches at stride 1 and 2", async () => {
    assert.ok(nativeBackpropInput !== undefined);
    const ours = tf.getKernel('Conv2DBackpropInput', 'wasm')!;
    tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
    tf.registerKernel(nativeBackpropInput);
    try {
      for (const [i, c] of CONV_CASES.entries()) if (c.k > 1) await compareConv(c, false, 10 * i + 2);
    } finally {
      tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
      tf.registerKernel(ours);
    }
  });

  test('depthwiseConv2d gradients match the cpu backend', async () => {
    for (const [i, c] of DEPTHWISE_CASES.entries()) await compareConv(c, true, 10 * i + 3);
  });

  test('a small network has the same variable gradients on wasm and cpu', async () => {
    const cpu = await onBackend('cpu', smallNetGrads);
    const wasm = await onBackend('wasm', smallNetGrads);
    assert.equal(wasm.length, cpu.length);
    assert.equal(cpu.length, 1 + 14, 'every variable should receive a gradient');
    for (let i = 0; i < cpu.length; i++) {
      const e = relErr(wasm[i]!, cpu[i]!);
      assert.ok(e <= 1e-4, `output ${i} differs by ${e}`);
    }
  });

  test('gradient kernels free their intermediates', async () => {
    await tf.setBackend('wasm');
    const fns = [convGrads(CONV_CASES[6]!, false, 5), convGrads(DEPTHWISE_CASES[8]!, true, 6)];
    for (const fn of fns) tf.tidy(() => void fn()); // warm up
    const engineBefore = tf.memory().numTensors;
    const dataBefore = tf.engine().backend.numDataIds();
    for (const fn of fns) tf.tidy(() => void fn());
    assert.equal(tf.memory().numTensors, engineBefore);
    assert.equal(tf.engine().backend.numDataIds(), dataBefore);
  });

  test('unsupported attributes fail loudly', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 5, 5, 2]);
    const dy = tf.zeros([1, 5, 5, 2]);
    assert.throws(
      () =>
        tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, {
          strides: 1,
          pad: 'same',
          dilations: 2,
          filterShape: [3, 3, 2, 1],
        }),
      /dilations/,
    );
    assert.throws(
      () =>
        tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
          strides: 1,
          pad: 'same',
          dataFormat: 'NCHW',
          filterShape: [3, 3, 2, 2],
        }),
      /NHWC/,
    );
    tf.dispose([x, dy]);
  });
});
