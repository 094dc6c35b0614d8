/**
 * Data-parallel training of the fine-tuned top blocks (src/train/parallel.ts): N worker threads
 * give the same model as one thread within float tolerance, a given N is reproducible, and the
 * workers leave no tensors behind. A tiny top (conv-BN-depthwise-conv) keeps it fast.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type { GraphNode, LayerGraph, WeightTensor } from '../src/backbones/graph.js';
import { ClassifierModel } from '../src/model/classifier-model.js';
import { initTrainingBackend } from '../src/train/backend.js';
import { fit, type FitData, type FitOptions, type FitResult } from '../src/train/fit.js';
import { createRng, type Rng } from '../src/util/rng.js';

const SHAPE: [number, number, number] = [4, 4, 6];
const CLASSES = ['a', 'b', 'c'];

function weight(rng: Rng, shape: number[], scale: number, offset = 0): WeightTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, () => offset + rng.uniform(-scale, scale)) };
}

/**
 * cut -> conv3x3(8)+relu -> BN -> depthwise3x3+relu6 -> conv1x1(12)+relu: the "backbone" above the
 * cut. The last ReLU matters: a linear last layer's bias would only shift the head's input, which
 * the head's BatchNorm removes, so its gradient would be 0 up to rounding and Adam would turn that
 * rounding noise into full-size steps of either sign, differently for each worker count.
 */
function tinyBackbone(): LayerGraph {
  const rng = createRng(3);
  const nodes: GraphNode[] = [
    { name: 'cut', op: { kind: 'input', shape: SHAPE }, inputs: [], weights: {} },
    {
      name: 'c1',
      op: { kind: 'conv2d', filters: 8, kernel: [3, 3], strides: [1, 1], dilation: [1, 1], padding: 'same', useBias: true, activation: 'relu' },
      inputs: ['cut'],
      weights: { kernel: weight(rng, [3, 3, 6, 8], 0.3), bias: weight(rng, [8], 0.1) },
    },
    {
      name: 'bn1',
      op: { kind: 'batchNorm', epsilon: 1e-3 },
      inputs: ['c1'],
      weights: { gamma: weight(rng, [8], 0.2, 1), beta: weight(rng, [8], 0.1), moving_mean: weight(rng, [8], 0.1), moving_variance: weight(rng, [8], 0.2, 1) },
    },
    {
      name: 'dw',
      op: { kind: 'depthwiseConv2d', kernel: [3, 3], strides: [1, 1], dilation: [1, 1], padding: 'same', depthMultiplier: 1, useBias: true, activation: 'relu6' },
      inputs: ['bn1'],
      weights: { depthwise_kernel: weight(rng, [3, 3, 8, 1], 0.4), bias: weight(rng, [8], 0.1) },
    },
    {
      name: 'c2',
      op: { kind: 'conv2d', filters: 12, kernel: [1, 1], strides: [1, 1], dilation: [1, 1], padding: 'valid', useBias: true, activation: 'relu' },
      inputs: ['dw'],
      weights: { kernel: weight(rng, [1, 1, 8, 12], 0.4), bias: weight(rng, [12], 0.1) },
    },
  ];
  return { nodes, input: 'cut', output: 'c2' };
}

function tinyModel(): ClassifierModel {
  return new ClassifierModel({
    backboneGraph: tinyBackbone(),
    cut: 'cut',
    featureLayer: 'c2',
    cutShape: SHAPE,
    featureShape: [...SHAPE],
    head: { units: [16, 8], numClasses: CLASSES.length, dropout: 0.2, bnMomentum: 0.9, bnEpsilon: 1e-3 },
    rng: createRng(11),
  });
}

/** Class-dependent feature maps, one or two views per image. */
function tinyData(perClass: number, valPerClass: number): FitData {
  const rng = createRng(5);
  const size = SHAPE[0] * SHAPE[1] * SHAPE[2];
  const centre = CLASSES.map(() => Float32Array.from({ length: size }, () => rng.uniform(0, 1)));
  const sample = (y: number): Float32Array => Float32Array.from(centre[y]!, (c) => Math.max(0, c + rng.uniform(-0.6, 0.6)));
  const trainLabels = CLASSES.flatMap((_, y) => Array<number>(perClass).fill(y));
  const valLabels = CLASSES.flatMap((_, y) => Array<number>(valPerClass).fill(y));
  return { train: trainLabels.map((y) => [sample(y), sample(y)]), trainLabels, val: valLabels.map(sample), valLabels, classes: CLASSES };
}

function options(over: Partial<FitOptions>): FitOptions {
  return {
    epochs: 3,
    batchSize: 10,
    loss: { kind: 'focal', gamma: 2 },
    // A large epsilon: the head's FC biases feed BatchNorm, so their exact gradient is 0 and what is
    // computed is rounding noise, which Adam with a tiny epsilon turns into full steps of random
    // sign (different for each worker count, as for any change of summation order). Epsilon 1e-3
    // damps such noise and leaves real gradients (>> 1e-3) normalised as usual.
    optimizer: { kind: 'adamw', lr: 3e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-3, weightDecay: 1e-4 },
    topLrScale: 0.5,
    rng: createRng(42),
    callbacks: [],
    ...over,
  };
}

interface Run {
  result: FitResult;
  weights: Float32Array[];
}

async function run(data: FitData, over: Partial<FitOptions>): Promise<Run> {
  const model = tinyModel();
  try {
    const before = tf.memory().numTensors;
    const result = await fit(model, data, options(over));
    assert.equal(tf.memory().numTensors, before, 'fit leaves no tensors behind');
    return { result, weights: model.stateVariables.map((v) => (v.dataSync() as Float32Array).slice()) };
  } finally {
    model.dispose();
  }
}

function assertClose(a: Run, b: Run, tol: number, what: string): void {
  assert.equal(a.weights.length, b.weights.length);
  let worst = 0;
  let where = -1;
  a.weights.forEach((w, i) => {
    const u = b.weights[i]!;
    assert.equal(w.length, u.length);
    for (let j = 0; j < w.length; j++) {
      const d = Math.abs(w[j]! - u[j]!) / (1 + Math.abs(w[j]!));
      if (d > worst) [worst, where] = [d, i];
    }
  });
  assert.ok(worst < tol, `${what}: weights differ by ${worst.toExponential(2)} (state variable ${where}; tolerance ${tol})`);
  a.result.history.forEach((h, i) => {
    const g = b.result.history[i]!;
    for (const k of ['trainLoss', 'valLoss', 'valAccuracy'] as const) {
      assert.ok(Math.abs(h[k] - g[k]) <= tol * (1 + Math.abs(h[k])), `${what}: epoch ${h.epoch} ${k} ${h[k]} vs ${g[k]}`);
    }
  });
}

describe('data-parallel training of the top blocks', () => {
  // 14 images per class: 42 per epoch, batches 10,10,10,10 and a last one of 2 (one row per worker).
  const data = tinyData(14, 4);

  test('2 and 3 workers give the model of 1 within float tolerance; a given count is reproducible', async () => {
    await initTrainingBackend('wasm');
    const one = await run(data, { workers: 1 });
    const two = await run(data, { workers: 2 });
    const three = await run(data, { workers: 3 });
    assert.equal(one.result.epochsRun, 3);
    assertClose(one, two, 1e-4, '1 vs 2 workers');
    assertClose(one, three, 1e-4, '1 vs 3 workers');
    const twoAgain = await run(data, { workers: 2 });
    assert.deepEqual(twoAgain.weights, two.weights, '2 workers twice: bit-identical');
    // Training moved the top blocks (their gradients came back from the workers).
    const start = tinyModel();
    const moved = start.topVariables.map((v, i) => Math.max(...(v.dataSync() as Float32Array).map((x, j) => Math.abs(x - two.weights[i]![j]!))));
    start.dispose();
    assert.ok(Math.min(...moved) > 1e-4, `every top variable moved (${moved.map((m) => m.toExponential(1)).join(', ')})`);
  });

  test('with mixup and EMA too', async () => {
    await initTrainingBackend('wasm');
    const over = { mixup: 0.4, ema: 0.9, epochs: 2 };
    const one = await run(data, { ...over, workers: 1 });
    const two = await run(data, { ...over, workers: 2 });
    assertClose(one, two, 1e-4, 'mixup + ema, 1 vs 2 workers');
  });
});
