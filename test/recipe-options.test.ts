/**
 * The optional recipe parts: label smoothing (loss values and analytic gradients against float64
 * finite differences), the Beta sampler behind mixup, mixup batches, class-balanced sampling, the
 * EMA of the weights (and how it meets early stopping), and short fits with each option on.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { ClassifierModel } from '../src/model/classifier-model.js';
import { initTrainingBackend, type TrainingBackend } from '../src/train/backend.js';
import type { Callback, EpochLogs } from '../src/train/callback.js';
import { EarlyStopping } from '../src/train/callbacks.js';
import { balancedEpochOrder, evaluateFeatures, fit, mixupBatch, WeightEma, type FitData, type FitOptions } from '../src/train/fit.js';
import { focalLoss, makeLoss, makeSoftTargetLoss, type LossConfig } from '../src/train/loss.js';
import { betaSample, createRng, gammaSample } from '../src/util/rng.js';
import { libraryOptions, parseCommandLine } from '../src/cli/parse.js';
import { TRAIN } from '../src/options/train.js';
import { fakeIO, runCli } from './helpers/cli.js';

const parseRecipe = async (args: string[]): Promise<ReturnType<typeof libraryOptions<typeof TRAIN.options>>> =>
  libraryOptions(TRAIN.options, parseCommandLine(TRAIN, [...args, 'DATA'], fakeIO().io).values);

// ---------------------------------------------------------------------------------------------
// Loss: float64 reference and gradient checks

/** sum_k q_k alpha_k (1 - p_k)^gamma (-log p_k), mean over rows, in float64. */
function refLoss(z: number[][], q: number[][], gamma: number, alpha?: readonly number[]): number {
  let total = 0;
  z.forEach((row, i) => {
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    row.forEach((v, k) => {
      const logp = v - lse;
      const p = Math.exp(logp);
      total += q[i]![k]! * (alpha?.[k] ?? 1) * (1 - p) ** gamma * -logp;
    });
  });
  return total / z.length;
}

function smoothed(labels: readonly number[], k: number, eps: number): number[][] {
  return labels.map((y) => Array.from({ length: k }, (_, j) => (1 - eps) * (j === y ? 1 : 0) + eps / k));
}

function numericGrad(f: (z: number[][]) => number, z: number[][], h = 1e-6): number[][] {
  return z.map((row, i) =>
    row.map((_, j) => {
      const plus = z.map((r) => [...r]);
      const minus = z.map((r) => [...r]);
      plus[i]![j]! += h;
      minus[i]![j]! -= h;
      return (f(plus) - f(minus)) / (2 * h);
    }),
  );
}

function randomLogits(seed: number, b: number, k: number, scale = 3): number[][] {
  const rng = createRng(seed);
  return Array.from({ length: b }, () => Array.from({ length: k }, () => rng.uniform(-scale, scale)));
}

function maxAbsDiff(a: number[][], b: number[][]): number {
  let d = 0;
  a.forEach((row, i) => row.forEach((v, j) => (d = Math.max(d, Math.abs(v - b[i]![j]!)))));
  return d;
}

function lossAndGrad(fn: (z: tf.Tensor2D) => tf.Scalar, z: number[][]): { value: number; grad: number[][] } {
  return tf.tidy(() => {
    const zt = tf.tensor2d(z);
    const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => fn(x as tf.Tensor2D))(zt);
    return { value: value.dataSync()[0]!, grad: grad.arraySync() as number[][] };
  });
}

for (const backend of ['cpu', 'wasm'] as TrainingBackend[]) {
  describe(`label-smoothed losses on ${backend}`, () => {
    const B = 6;
    const K = 4;
    const labels = [0, 3, 1, 2, 3, 1];
    for (const kind of ['focal', 'crossEntropy'] as const) {
      for (const gamma of kind === 'focal' ? [2, 0.5] : [0]) {
        for (const eps of [0, 0.1]) {
          for (const alpha of [undefined, [0.25, 1, 0.5, 2]] as const) {
            const name = `${kind} gamma ${gamma} eps ${eps}${alpha ? ' alpha' : ''}`;
            test(`${name}: value and analytic gradient match float64 finite differences`, async () => {
              await initTrainingBackend(backend);
              const cfg: LossConfig =
                kind === 'focal'
                  ? { kind, gamma, labelSmoothing: eps, ...(alpha ? { alpha } : {}) }
                  : { kind, labelSmoothing: eps, ...(alpha ? { alpha } : {}) };
              const loss = makeLoss(cfg);
              for (const seed of [1, 2, 3]) {
                const z = randomLogits(seed, B, K);
                const q = smoothed(labels, K, eps);
                const ref = (x: number[][]): number => refLoss(x, q, gamma, alpha);
                const got = lossAndGrad((x) => loss(x, tf.tensor1d(labels, 'int32')), z);
                assert.ok(Math.abs(got.value - ref(z)) <= 1e-5 * Math.max(1, ref(z)), `value ${got.value} vs ${ref(z)}`);
                const num = numericGrad(ref, z);
                const scale = Math.max(...num.flat().map(Math.abs));
                assert.ok(scale > 1e-3, 'reference gradient ~0: the case tests nothing');
                const err = maxAbsDiff(got.grad, num) / scale;
                assert.ok(err < 2e-4, `gradient relative error ${err}`);
              }
            });
          }
        }
      }
    }

    test('soft-target loss (mixed rows, smoothing on top): gradient matches finite differences', async () => {
      await initTrainingBackend(backend);
      for (const gamma of [0, 2]) {
        for (const eps of [0, 0.1]) {
          const z = randomLogits(10 + gamma, B, K);
          const lam = 0.3;
          const partner = labels.map((_, i) => (i + 2) % B);
          const mixed = labels.map((y, i) =>
            Array.from({ length: K }, (_, j) => lam * (j === y ? 1 : 0) + (1 - lam) * (j === labels[partner[i]!]! ? 1 : 0)),
          );
          const q = mixed.map((row) => row.map((v) => (1 - eps) * v + eps / K));
          const loss = makeSoftTargetLoss({ kind: 'focal', gamma, labelSmoothing: eps });
          const got = lossAndGrad((x) => loss(x, tf.tensor2d(mixed)), z);
          const ref = (x: number[][]): number => refLoss(x, q, gamma);
          assert.ok(Math.abs(got.value - ref(z)) <= 1e-5 * Math.max(1, ref(z)), `value ${got.value} vs ${ref(z)}`);
          // lambda L(y_i) + (1 - lambda) L(y_perm(i)) is the same number.
          const split = lam * refLoss(z, smoothed(labels, K, eps), gamma) + (1 - lam) * refLoss(z, smoothed(partner.map((p) => labels[p]!), K, eps), gamma);
          assert.ok(Math.abs(got.value - split) <= 1e-5 * Math.max(1, split), `mixup identity ${got.value} vs ${split}`);
          const num = numericGrad(ref, z);
          const err = maxAbsDiff(got.grad, num) / Math.max(...num.flat().map(Math.abs));
          assert.ok(err < 2e-4, `gradient relative error ${err} (gamma ${gamma}, eps ${eps})`);
        }
      }
    });

    test('label smoothing 0 gives the old loss and gradient bit for bit; extreme logits stay finite', async () => {
      await initTrainingBackend(backend);
      const z = randomLogits(4, B, K, 6);
      for (const gamma of [0, 2]) {
        const y = (): tf.Tensor1D => tf.tensor1d(labels, 'int32');
        const old = lossAndGrad((x) => focalLoss(x, y(), { gamma, alpha: [1, 0.5, 0.25, 2] }), z);
        for (const cfg of [
          { kind: 'focal', gamma, alpha: [1, 0.5, 0.25, 2] },
          { kind: 'focal', gamma, alpha: [1, 0.5, 0.25, 2], labelSmoothing: 0 },
        ] as LossConfig[]) {
          const now = lossAndGrad((x) => makeLoss(cfg)(x, y()), z);
          assert.equal(now.value, old.value);
          assert.deepEqual(now.grad, old.grad);
        }
        // The smoothed loss differs (and is larger here: it pays for every confident mistake on eps/K).
        const s = lossAndGrad((x) => makeLoss({ kind: 'focal', gamma, labelSmoothing: 0.1 })(x, y()), z);
        assert.notEqual(s.value, old.value);
        const big = [[50, -50, 0, 0], [-50, 50, 0, 0]];
        const b = lossAndGrad((x) => makeLoss({ kind: 'focal', gamma, labelSmoothing: 0.1 })(x, tf.tensor1d([0, 0], 'int32')), big);
        assert.ok(Number.isFinite(b.value) && b.grad.flat().every(Number.isFinite), `finite at +-50 (gamma ${gamma})`);
      }
      assert.throws(() => makeLoss({ kind: 'crossEntropy', labelSmoothing: 1 }), RangeError);
      assert.throws(() => makeLoss({ kind: 'crossEntropy', labelSmoothing: -0.1 }), RangeError);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Beta sampler

test('Gamma and Beta samplers: mean and variance over many draws', () => {
  const rng = createRng(123);
  const n = 40000;
  const moments = (draw: () => number): { mean: number; variance: number } => {
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const x = draw();
      s += x;
      s2 += x * x;
    }
    const mean = s / n;
    return { mean, variance: s2 / n - mean * mean };
  };
  for (const shape of [0.3, 1, 2.5, 9]) {
    const m = moments(() => gammaSample(rng, shape));
    assert.ok(Math.abs(m.mean - shape) < 0.03 * shape + 0.01, `Gamma(${shape}) mean ${m.mean}`);
    assert.ok(Math.abs(m.variance - shape) < 0.08 * shape, `Gamma(${shape}) variance ${m.variance}`);
  }
  for (const [a, b] of [[0.2, 0.2], [0.4, 0.4], [1, 1], [2, 5], [8, 3]] as const) {
    const mean = a / (a + b);
    const variance = (a * b) / ((a + b) ** 2 * (a + b + 1));
    const m = moments(() => {
      const x = betaSample(rng, a, b);
      assert.ok(x >= 0 && x <= 1);
      return x;
    });
    assert.ok(Math.abs(m.mean - mean) < 0.01, `Beta(${a}, ${b}) mean ${m.mean} vs ${mean}`);
    assert.ok(Math.abs(m.variance - variance) < 0.04 * variance, `Beta(${a}, ${b}) variance ${m.variance} vs ${variance}`);
  }
  // Seeded: the same seed draws the same numbers.
  const d1 = Array.from({ length: 5 }, ((r) => () => betaSample(r, 0.4, 0.4))(createRng(5)));
  const d2 = Array.from({ length: 5 }, ((r) => () => betaSample(r, 0.4, 0.4))(createRng(5)));
  assert.deepEqual(d1, d2);
  assert.throws(() => gammaSample(rng, 0), RangeError);
});

// ---------------------------------------------------------------------------------------------
// Mixup and balanced sampling

test('mixupBatch mixes rows and one-hot targets by lambda, reproducibly by seed', () => {
  const rows = Array.from({ length: 8 }, (_, i) => Float32Array.from({ length: 5 }, (_, j) => i * 10 + j));
  const labels = [0, 1, 2, 0, 1, 2, 0, 1];
  const a = mixupBatch(rows, labels, 3, 0.4, createRng(11));
  const b = mixupBatch(rows, labels, 3, 0.4, createRng(11));
  const c = mixupBatch(rows, labels, 3, 0.4, createRng(12));
  assert.deepEqual(a, b);
  assert.notEqual(a.lambda, c.lambda);
  assert.ok(a.lambda > 0 && a.lambda < 1);
  assert.deepEqual([...a.partner].sort(), [...rows.keys()]);
  let changed = 0;
  a.rows.forEach((r, i) => {
    const p = a.partner[i]!;
    r.forEach((v, j) => assert.ok(Math.abs(v - (a.lambda * rows[i]![j]! + (1 - a.lambda) * rows[p]![j]!)) < 1e-4));
    if (p !== i) changed++;
    const t = [...a.targets.subarray(i * 3, i * 3 + 3)];
    assert.ok(Math.abs(t.reduce((s, x) => s + x, 0) - 1) < 1e-6);
    assert.ok(Math.abs(t[labels[i]!]! - (labels[p] === labels[i] ? 1 : a.lambda)) < 1e-6);
    assert.equal(a.dominant[i], a.lambda >= 0.5 ? labels[i] : labels[p]);
  });
  assert.ok(changed > 0, 'the batch changed');
  assert.ok(a.rows.some((r, i) => r.some((v, j) => v !== rows[i]![j])));
});

test('balanced sampling draws classes about equally from an imbalanced set, reproducibly', () => {
  const labels = [...Array(80).fill(0), ...Array(15).fill(1), ...Array(5).fill(2)] as number[];
  const rng = createRng(3);
  const counts = [0, 0, 0];
  const seen = new Set<number>();
  for (let e = 0; e < 100; e++) {
    const order = balancedEpochOrder(labels, rng);
    assert.equal(order.length, labels.length);
    for (const i of order) {
      counts[labels[i]!]!++;
      seen.add(i);
    }
  }
  const total = counts.reduce((s, x) => s + x, 0);
  for (const c of counts) assert.ok(Math.abs(c / total - 1 / 3) < 0.02, `class shares ${counts.map((x) => (x / total).toFixed(3))}`);
  assert.equal(seen.size, labels.length, 'every image gets drawn');
  assert.deepEqual(balancedEpochOrder(labels, createRng(4)), balancedEpochOrder(labels, createRng(4)));
  assert.notDeepEqual(balancedEpochOrder(labels, createRng(4)), balancedEpochOrder(labels, createRng(5)));
});

// ---------------------------------------------------------------------------------------------
// Fits on a toy model (head only, pooled features)

const DIM = 8;
const CLASSES = ['a', 'b', 'c'];

function toyModel(seed = 1, dropout = 0): ClassifierModel {
  return new ClassifierModel({
    backboneGraph: { nodes: [], input: 'cut', output: 'cut' },
    cut: 'cut',
    featureLayer: 'cut',
    cutShape: [1, 1, DIM],
    featureShape: [DIM],
    head: { units: [16, 8], numClasses: CLASSES.length, dropout, bnMomentum: 0.9, bnEpsilon: 1e-3 },
    rng: createRng(seed),
  });
}

/** Three noisy clusters, imbalanced (counts per class), two views per training image. */
function toyData(counts: readonly number[], valPerClass: number, seed = 7): FitData {
  const rng = createRng(seed);
  const centre = CLASSES.map(() => Array.from({ length: DIM }, () => rng.uniform(-1.5, 1.5)));
  const sample = (y: number): Float32Array => Float32Array.from(centre[y]!, (c) => c + rng.uniform(-1.2, 1.2));
  const trainLabels = counts.flatMap((n, y) => Array<number>(n).fill(y));
  const valLabels = CLASSES.flatMap((_, y) => Array<number>(valPerClass).fill(y));
  return {
    train: trainLabels.map((y) => [sample(y), sample(y)]),
    trainLabels,
    val: valLabels.map(sample),
    valLabels,
    classes: CLASSES,
  };
}

function fitOptions(over: Partial<FitOptions> = {}): FitOptions {
  return {
    epochs: 8,
    batchSize: 16,
    loss: { kind: 'focal', gamma: 2 },
    optimizer: { kind: 'adamw', lr: 5e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 1e-4 },
    topLrScale: 0.1,
    rng: createRng(42),
    callbacks: [],
    ...over,
  };
}

const weightsOf = (m: ClassifierModel): Float32Array[] => m.trainableVariables.map((v) => v.dataSync().slice() as Float32Array);

describe('fit with the recipe options (wasm)', () => {
  const cases: [string, Partial<FitOptions>][] = [
    ['none', {}],
    ['label smoothing 0.1 (focal)', { loss: { kind: 'focal', gamma: 2, labelSmoothing: 0.1 } }],
    ['label smoothing 0.1 (ce)', { loss: { kind: 'crossEntropy', labelSmoothing: 0.1 } }],
    ['mixup 0.4', { mixup: 0.4 }],
    ['balanced sampling', { balancedSampling: true }],
    ['ema 0.9', { ema: 0.9 }],
    ['all four', { loss: { kind: 'focal', gamma: 2, labelSmoothing: 0.1 }, mixup: 0.4, balancedSampling: true, ema: 0.9 }],
  ];
  for (const [name, over] of cases) {
    test(`${name}: runs, lowers the training loss, and is reproducible by seed`, async () => {
      await initTrainingBackend('wasm');
      const data = toyData([60, 20, 8], 6);
      const runOnce = async (): Promise<{ history: EpochLogs[]; weights: Float32Array[] }> => {
        const model = toyModel();
        try {
          const before = tf.memory().numTensors;
          const r = await fit(model, data, fitOptions(over));
          assert.equal(tf.memory().numTensors, before, 'fit leaves no tensors behind');
          return { history: r.history, weights: weightsOf(model) };
        } finally {
          model.dispose();
        }
      };
      const a = await runOnce();
      const b = await runOnce();
      assert.equal(a.history.length, 8);
      const first = a.history[0]!.trainLoss;
      const last = a.history[a.history.length - 1]!.trainLoss;
      assert.ok(Number.isFinite(last) && last < 0.8 * first, `train loss ${first} -> ${last}`);
      assert.ok(a.history.every((h) => Number.isFinite(h.valLoss) && h.trainAccuracy >= 0 && h.trainAccuracy <= 1));
      assert.ok(a.history[a.history.length - 1]!.valAccuracy > 0.6, `val accuracy ${a.history[a.history.length - 1]!.valAccuracy}`);
      assert.deepEqual(
        a.history.map((h) => [h.trainLoss, h.valLoss]),
        b.history.map((h) => [h.trainLoss, h.valLoss]),
      );
      assert.deepEqual(a.weights, b.weights);
    });
  }

  test('each option changes the run (it is not silently ignored)', async () => {
    await initTrainingBackend('wasm');
    const data = toyData([60, 20, 8], 6);
    const lossesOf = async (over: Partial<FitOptions>): Promise<number[]> => {
      const model = toyModel();
      try {
        return (await fit(model, data, fitOptions({ ...over, epochs: 2 }))).history.map((h) => h.trainLoss);
      } finally {
        model.dispose();
      }
    };
    const base = await lossesOf({});
    assert.deepEqual(await lossesOf({ mixup: 0, ema: 0, balancedSampling: false, loss: { kind: 'focal', gamma: 2, labelSmoothing: 0 } }), base);
    for (const over of [{ mixup: 0.4 }, { balancedSampling: true }, { loss: { kind: 'focal', gamma: 2, labelSmoothing: 0.1 } as LossConfig }]) {
      assert.notDeepEqual(await lossesOf(over), base, JSON.stringify(over));
    }
  });

  test('EMA: the final weights are the debiased EMA of the weights after every step', async () => {
    await initTrainingBackend('wasm');
    const data = toyData([30, 20, 10], 0);
    const decay = 0.8;
    const recorded: Float64Array[][] = [];
    const recorder: Callback = {
      onBatchEnd: () => void recorded.push(model.trainableVariables.map((v) => Float64Array.from(v.dataSync()))),
    };
    const model = toyModel();
    try {
      await fit(model, data, fitOptions({ ema: decay, epochs: 3, callbacks: [recorder] }));
      assert.ok(recorded.length >= 9);
      // ema_t = sum_s (1 - d) d^(t - s) w_s / (1 - d^t), in float64.
      const t = recorded.length;
      const expected = recorded[0]!.map((w) => new Float64Array(w.length));
      recorded.forEach((ws, s) => ws.forEach((w, i) => w.forEach((x, j) => (expected[i]![j]! += ((1 - decay) * decay ** (t - 1 - s) * x) / (1 - decay ** t)))));
      const got = weightsOf(model);
      let err = 0;
      let diffFromRaw = 0;
      got.forEach((g, i) =>
        g.forEach((x, j) => {
          err = Math.max(err, Math.abs(x - expected[i]![j]!));
          diffFromRaw = Math.max(diffFromRaw, Math.abs(x - recorded[t - 1]![i]![j]!));
        }),
      );
      assert.ok(err < 1e-5, `EMA mismatch ${err}`);
      assert.ok(diffFromRaw > 1e-3, `EMA weights should differ from the last raw weights (${diffFromRaw})`);
    } finally {
      model.dispose();
    }
  });

  test('EMA: as decay -> 0 the final weights are the raw ones', async () => {
    await initTrainingBackend('wasm');
    const data = toyData([30, 20, 10], 0);
    let last: Float32Array[] = [];
    const model = toyModel();
    const recorder: Callback = { onBatchEnd: () => void (last = weightsOf(model)) };
    try {
      await fit(model, data, fitOptions({ ema: 1e-9, epochs: 2, callbacks: [recorder] }));
      const got = weightsOf(model);
      got.forEach((g, i) => g.forEach((x, j) => assert.ok(Math.abs(x - last[i]![j]!) < 1e-6)));
    } finally {
      model.dispose();
    }
    const w = tf.variable(tf.tensor1d([1, 2]));
    const ema = new WeightEma([w], 0.5);
    w.assign(tf.tensor1d([3, 4]));
    ema.update(); // first update copies: [3, 4]
    w.assign(tf.tensor1d([5, 8]));
    ema.update(); // (0.5 * 0.5 * [3,4] + 0.5 * [5,8]) / 0.75 = [13/3, 20/3]
    ema.swapIn();
    assert.deepEqual([...w.dataSync()].map((x) => +x.toFixed(5)), [13 / 3, 20 / 3].map((x) => +x.toFixed(5)));
    ema.swapOut();
    assert.deepEqual([...w.dataSync()], [5, 8]);
    ema.dispose();
    w.dispose();
    assert.throws(() => new WeightEma([], 1), RangeError);
  });

  test('EMA with early stopping: validation, snapshot and restore all use the EMA weights', async () => {
    await initTrainingBackend('wasm');
    // Random labels: validation loss gets worse after a few epochs, so early stopping restores.
    const data = toyData([30, 30, 30], 10, 21);
    const rng = createRng(99);
    data.trainLabels = data.trainLabels.map(() => rng.int(0, 3));
    data.valLabels = data.valLabels.map(() => rng.int(0, 3));
    const early = new EarlyStopping({ monitor: 'valLoss', patience: 3, restoreBestWeights: true });
    const atEpochEnd: Float32Array[][] = [];
    const model = toyModel(3);
    const recorder: Callback = { onEpochEnd: () => void atEpochEnd.push(weightsOf(model)) };
    try {
      const r = await fit(model, data, fitOptions({ ema: 0.9, epochs: 30, callbacks: [early, recorder], optimizer: { kind: 'adam', lr: 2e-2, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0 } }));
      assert.ok(early.bestEpoch > 0 && early.bestEpoch < r.epochsRun, `restore path exercised (best ${early.bestEpoch} of ${r.epochsRun})`);
      // The model holds the weights that were validated at the best epoch...
      assert.deepEqual(weightsOf(model), atEpochEnd[early.bestEpoch - 1]);
      // ...and scores exactly that epoch's validation loss.
      const again = evaluateFeatures(model, data.val, data.valLabels, data.classes, { kind: 'focal', gamma: 2 });
      assert.ok(Math.abs(again.loss - r.history[early.bestEpoch - 1]!.valLoss) < 1e-6, `${again.loss} vs ${r.history[early.bestEpoch - 1]!.valLoss}`);
    } finally {
      model.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// CLI

test('CLI: the four recipe flags parse into TrainOptions, off when absent, and bad values are usage errors', async () => {
  const on = await parseRecipe(['--label-smoothing', '0.1', '--mixup', '0.4', '--balanced-sampling', '--ema', '0.99']);
  assert.equal(on.labelSmoothing, 0.1);
  assert.equal(on.mixup, 0.4);
  assert.equal(on.balancedSampling, true);
  assert.equal(on.ema, 0.99);
  const off = await parseRecipe([]);
  for (const k of ['labelSmoothing', 'mixup', 'balancedSampling', 'ema'] as const) assert.equal(off[k], undefined);
  for (const bad of [['--label-smoothing', '1'], ['--label-smoothing=-0.1'], ['--mixup=-1'], ['--ema', '1'], ['--ema', 'x']]) {
    await assert.rejects(parseRecipe(bad), /must be/, bad.join(' '));
  }
  const help = await runCli(['train', '--help']);
  assert.equal(help.code, 0);
  for (const flag of ['--label-smoothing X', '--mixup X', '--balanced-sampling', '--ema D']) assert.ok(help.out.includes(flag), flag);
});
