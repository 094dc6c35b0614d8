import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import type { GraphNode, LayerGraph, WeightTensor } from '../src/backbones/graph.js';
import { createGraphModule } from '../src/model/graph-tfjs.js';
import { registerTrainingGradients } from '../src/train/kernels/gradients.js';
import { registerWasmGradientKernels } from '../src/train/kernels/wasm-gradients.js';
import { createRng, type Rng } from '../src/util/rng.js';

const w = (shape: number[], values: number[]): WeightTensor => ({ shape, data: Float32Array.from(values) });

function rand(rng: Rng, shape: number[], lo = -0.5, hi = 0.5): WeightTensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform(lo, hi);
  return { shape, data };
}

/**
 * A small graph with every op kind: zeroPad + maxPool first (no gradient has to pass them), then
 * conv (bias), BN, PReLU, depthwise (no bias, relu6), residual add, relu, GAP, dense + softmax.
 */
function smallGraph(seed: number): LayerGraph {
  const r = createRng(seed);
  const nodes: GraphNode[] = [
    { name: 'in', op: { kind: 'input', shape: [15, 15, 3] }, inputs: [], weights: {} },
    { name: 'pad', op: { kind: 'zeroPad', pads: [[0, 1], [0, 1]] }, inputs: ['in'], weights: {} },
    { name: 'pool', op: { kind: 'maxPool', pool: [3, 3], strides: [2, 2], padding: 'valid' }, inputs: ['pad'], weights: {} },
    {
      name: 'conv',
      op: { kind: 'conv2d', filters: 4, kernel: [3, 3], strides: [2, 2], dilation: [1, 1], padding: 'same', useBias: true, activation: 'linear' },
      inputs: ['pool'],
      weights: { kernel: rand(r, [3, 3, 3, 4]), bias: rand(r, [4]) },
    },
    {
      name: 'bn',
      op: { kind: 'batchNorm', epsilon: 1e-3 },
      inputs: ['conv'],
      weights: { gamma: rand(r, [4], 0.5, 1.5), beta: rand(r, [4]), moving_mean: rand(r, [4]), moving_variance: rand(r, [4], 0.5, 2) },
    },
    { name: 'prelu', op: { kind: 'prelu' }, inputs: ['bn'], weights: { alpha: rand(r, [4], 0.1, 0.3) } },
    {
      name: 'dw',
      op: { kind: 'depthwiseConv2d', kernel: [3, 3], strides: [1, 1], dilation: [1, 1], padding: 'same', depthMultiplier: 1, useBias: false, activation: 'relu6' },
      inputs: ['prelu'],
      weights: { depthwise_kernel: rand(r, [3, 3, 4, 1]) },
    },
    { name: 'add', op: { kind: 'add' }, inputs: ['prelu', 'dw'], weights: {} },
    { name: 'relu', op: { kind: 'activation', fn: 'relu' }, inputs: ['add'], weights: {} },
    { name: 'gap', op: { kind: 'globalAvgPool' }, inputs: ['relu'], weights: {} },
    {
      name: 'dense',
      op: { kind: 'dense', units: 3, useBias: true, activation: 'softmax' },
      inputs: ['gap'],
      weights: { kernel: rand(r, [4, 3], -1, 1), bias: rand(r, [3]) },
    },
  ];
  return { nodes, input: 'in', output: 'dense' };
}

function batch(seed: number, shape: [number, number, number, number]): tf.Tensor4D {
  const r = createRng(seed);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = r.uniform(-1, 1);
  return tf.tensor4d(data, shape);
}

/** Cross-entropy against fixed labels: a loss whose gradient reaches every weight. */
function lossOf(probs: tf.Tensor, labels: number[]): tf.Scalar {
  const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), 3);
  return tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.log(tf.add(probs, 1e-7))), 1))) as tf.Scalar;
}

/** Loss and gradients (in trainableVariables order) on the given backend. */
async function gradsOn(backend: 'cpu' | 'wasm', graph: LayerGraph): Promise<{ loss: number; grads: Float32Array[] }> {
  assert.ok(await tf.setBackend(backend), `backend ${backend} failed to start`);
  registerTrainingGradients();
  const module = createGraphModule(graph, { trainable: true });
  try {
    const x = batch(3, [2, 15, 15, 3]);
    const { value, grads } = tf.variableGrads(() => lossOf(module.apply(x), [0, 2]), module.trainableVariables);
    const out = {
      loss: value.dataSync()[0]!,
      grads: module.trainableVariables.map((v) => grads[v.name]!.dataSync() as Float32Array),
    };
    tf.dispose([x, value, ...Object.values(grads)]);
    return out;
  } finally {
    module.dispose();
  }
}

const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('createGraphModule (cpu)', () => {
  test('hand-computed: 1x1 conv + bias, BN (gamma/beta), relu6', async () => {
    await tf.setBackend('cpu');
    const graph: LayerGraph = {
      input: 'in',
      output: 'act',
      nodes: [
        { name: 'in', op: { kind: 'input', shape: [2, 2, 1] }, inputs: [], weights: {} },
        {
          name: 'c',
          op: { kind: 'conv2d', filters: 1, kernel: [1, 1], strides: [1, 1], dilation: [1, 1], padding: 'valid', useBias: true, activation: 'linear' },
          inputs: ['in'],
          weights: { kernel: w([1, 1, 1, 1], [2]), bias: w([1], [1]) },
        },
        {
          name: 'bn',
          op: { kind: 'batchNorm', epsilon: 1 },
          inputs: ['c'],
          weights: { gamma: w([1], [2]), beta: w([1], [0.5]), moving_mean: w([1], [1]), moving_variance: w([1], [3]) },
        },
        { name: 'act', op: { kind: 'activation', fn: 'relu6' }, inputs: ['bn'], weights: {} },
      ],
    };
    const m = createGraphModule(graph, { trainable: false });
    // conv: 2x+1 = 3,5,7,9; BN: (v-1)/2*2+0.5 = 2.5,4.5,6.5,8.5; relu6 clips the last two.
    const y = m.apply(tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]));
    assert.deepEqual([...y.dataSync()], [2.5, 4.5, 6, 6]);
    y.dispose();
    m.dispose();
  });

  test('shapes, softmax rows sum to 1, no tensors leak, input channels checked', async () => {
    await tf.setBackend('cpu');
    const before = tf.memory().numTensors;
    const m = createGraphModule(smallGraph(1), { trainable: false });
    assert.equal(m.trainableVariables.length, 0);
    const x = batch(1, [2, 15, 15, 3]);
    const y = m.apply(x);
    assert.deepEqual(y.shape, [2, 3]);
    const sums = tf.sum(y, 1);
    for (const s of sums.dataSync()) assert.ok(Math.abs(s - 1) < 1e-5);
    assert.throws(() => m.apply(tf.zeros([1, 15, 15, 4]) as tf.Tensor4D), /3 channels/);
    tf.dispose([x, y, sums]);
    m.dispose();
    // The zeros tensor from the rejected call is the only survivor.
    assert.equal(tf.memory().numTensors, before + 1);
  });

  test('gradients reach every trainable variable (kernels, biases, PReLU slopes)', async () => {
    const graph = smallGraph(2);
    await tf.setBackend('cpu');
    const m = createGraphModule(graph, { trainable: true });
    // conv kernel + bias, depthwise kernel, PReLU alpha, dense kernel + bias; BN stays frozen.
    assert.deepEqual(
      m.trainableVariables.map((v) => v.shape),
      [[3, 3, 3, 4], [4], [4], [3, 3, 4, 1], [4, 3], [3]],
    );
    m.dispose();
    const { loss, grads } = await gradsOn('cpu', graph);
    assert.ok(Number.isFinite(loss) && loss > 0);
    grads.forEach((g, i) => assert.ok(maxAbs(g) > 1e-6, `gradient ${i} is all zeros`));
  });

  test('a gradient step lowers the loss; exportWeights returns the trained values as a copy', async () => {
    await tf.setBackend('cpu');
    registerTrainingGradients();
    const graph = smallGraph(3);
    const m = createGraphModule(graph, { trainable: true });
    const x = batch(4, [2, 15, 15, 3]);
    const loss = (): tf.Scalar => lossOf(m.apply(x), [1, 2]);
    const l0 = tf.tidy(() => loss().dataSync()[0]!);
    const { grads } = tf.variableGrads(loss, m.trainableVariables);
    for (const v of m.trainableVariables) tf.tidy(() => v.assign(tf.sub(v, tf.mul(grads[v.name]!, 0.5))));
    tf.dispose(Object.values(grads));
    const l1 = tf.tidy(() => loss().dataSync()[0]!);
    assert.ok(l1 < l0, `loss ${l0} -> ${l1}`);

    const exported = m.exportWeights();
    const conv = exported.nodes.find((n) => n.name === 'conv')!;
    const orig = graph.nodes.find((n) => n.name === 'conv')!;
    assert.deepEqual([...conv.weights['kernel']!.data], [...(m.trainableVariables[0]!.dataSync() as Float32Array)]);
    assert.notDeepEqual([...conv.weights['kernel']!.data], [...orig.weights['kernel']!.data]);
    // Frozen weights come back equal but as copies.
    const bnOut = exported.nodes.find((n) => n.name === 'bn')!.weights['gamma']!;
    const bnIn = graph.nodes.find((n) => n.name === 'bn')!.weights['gamma']!;
    assert.notEqual(bnOut.data, bnIn.data);
    assert.deepEqual(bnOut, bnIn);
    // The exported graph computes what the trained module computes.
    const m2 = createGraphModule(exported, { trainable: false });
    const [a, b] = [m.apply(x), m2.apply(x)];
    assert.deepEqual([...a.dataSync()], [...b.dataSync()]);
    tf.dispose([a, b, x]);
    m.dispose();
    m2.dispose();
  });
});

describe('createGraphModule (wasm)', () => {
  test('forward and gradients on wasm match cpu', async () => {
    registerWasmGradientKernels();
    const graph = smallGraph(5);
    await tf.setBackend('cpu');
    const refOut = tf.tidy(() => {
      const m = createGraphModule(graph, { trainable: false });
      const y = m.apply(batch(6, [2, 15, 15, 3])).dataSync() as Float32Array;
      m.dispose();
      return y;
    });
    assert.ok(await tf.setBackend('wasm'), 'wasm backend failed to start');
    const m = createGraphModule(graph, { trainable: false });
    const x = batch(6, [2, 15, 15, 3]);
    const y = m.apply(x);
    const out = y.dataSync() as Float32Array;
    tf.dispose([x, y]);
    m.dispose();
    out.forEach((v, i) => assert.ok(Math.abs(v - refOut[i]!) < 1e-5, `output ${i}: ${v} vs ${refOut[i]}`));

    const cpu = await gradsOn('cpu', graph);
    const wasm = await gradsOn('wasm', graph);
    assert.ok(Math.abs(cpu.loss - wasm.loss) < 1e-5);
    cpu.grads.forEach((g, i) => {
      const err = wasm.grads[i]!.reduce((m, v, j) => Math.max(m, Math.abs(v - g[j]!)), 0);
      assert.ok(err <= 1e-4 * maxAbs(g), `gradient ${i}: wasm differs from cpu by ${err}`);
    });
  });
});

after(async () => {
  await tf.setBackend('cpu');
  tf.disposeVariables();
});
