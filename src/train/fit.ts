/**
 * The training loop over cached trunk features: shuffled mini-batches (one random augmented
 * view per image per epoch), loss, AdamW steps, per-epoch validation, callbacks.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ClassifierModel } from '../model/classifier-model.js';
import { argmax, classificationMetrics } from '../eval/metrics.js';
import type { Rng } from '../util/rng.js';
import type { Callback, EpochLogs, TrainerControl } from './callback.js';
import type { FeatureTable } from './features.js';
import { makeLoss, type LossConfig } from './loss.js';
import { AdamOptimizer, type OptimizerConfig } from './optimizer.js';

export interface FitData {
  /** train[i][v]: trunk output of training image i, view v. */
  train: FeatureTable;
  trainLabels: number[];
  /** One (un-augmented) view per validation image. */
  val: Float32Array[];
  valLabels: number[];
  classes: string[];
}

export interface FitOptions {
  epochs: number;
  batchSize: number;
  loss: LossConfig;
  optimizer: OptimizerConfig;
  /** Learning-rate multiplier for fine-tuned backbone blocks (the head gets 1). */
  topLrScale: number;
  rng: Rng;
  callbacks: Callback[];
}

export interface FitResult {
  history: EpochLogs[];
  epochsRun: number;
}

function stack(rows: readonly Float32Array[], shape: number[]): tf.Tensor {
  const per = rows[0]!.length;
  const buf = new Float32Array(rows.length * per);
  rows.forEach((r, i) => buf.set(r, i * per));
  return tf.tensor(buf, [rows.length, ...shape]);
}

/** Class probabilities (softmax of logits / temperature) for feature rows, in inference mode. */
export function predictProbabilities(
  model: ClassifierModel,
  rows: readonly Float32Array[],
  batchSize = 32,
  temperature = 1,
): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < rows.length; i += batchSize) {
    const probs = tf.tidy(() => {
      const x = stack(rows.slice(i, i + batchSize), model.featureShape);
      return tf.softmax(tf.div(model.forward(x, false), temperature));
    });
    out.push(...(probs.arraySync() as number[][]));
    probs.dispose();
  }
  return out;
}

/** Logits for feature rows, in inference mode. */
export function predictLogits(model: ClassifierModel, rows: readonly Float32Array[], batchSize = 32): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < rows.length; i += batchSize) {
    const logits = tf.tidy(() => model.forward(stack(rows.slice(i, i + batchSize), model.featureShape), false));
    out.push(...(logits.arraySync() as number[][]));
    logits.dispose();
  }
  return out;
}

export async function fit(model: ClassifierModel, data: FitData, opts: FitOptions): Promise<FitResult> {
  const loss = makeLoss(opts.loss);
  const optimizer = new AdamOptimizer(opts.optimizer);
  const vars = model.trainableVariables;
  const lrScale = new Map(model.topVariables.map((v) => [v, opts.topLrScale] as const));
  let snapshot: tf.Tensor[] | undefined;
  const ctl: TrainerControl = {
    epochs: opts.epochs,
    lr: opts.optimizer.lr,
    stopTraining: false,
    snapshotWeights() {
      snapshot?.forEach((t) => t.dispose());
      snapshot = model.stateVariables.map((v) => tf.keep(v.clone()));
    },
    restoreSnapshot() {
      if (!snapshot) return;
      model.stateVariables.forEach((v, i) => v.assign(snapshot![i]!));
    },
  };
  const history: EpochLogs[] = [];
  const n = data.train.length;
  const batches = Math.ceil(n / opts.batchSize);
  for (const cb of opts.callbacks) await cb.onTrainBegin?.(ctl);
  try {
    for (let epoch = 1; epoch <= opts.epochs && !ctl.stopTraining; epoch++) {
      for (const cb of opts.callbacks) await cb.onEpochBegin?.(epoch, ctl);
      const lr = ctl.lr;
      optimizer.lr = lr;
      const t0 = performance.now();
      const order = opts.rng.shuffle([...Array(n).keys()]);
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      for (let b = 0; b < batches; b++) {
        const idx = order.slice(b * opts.batchSize, (b + 1) * opts.batchSize);
        // BatchNorm needs at least two samples: fold a lone last sample into nothing.
        if (idx.length < 2) continue;
        const rows = idx.map((i) => {
          const views = data.train[i]!;
          return views[opts.rng.int(0, views.length)]!;
        });
        const labels = idx.map((i) => data.trainLabels[i]!);
        const seed = opts.rng.int(0, 2 ** 31 - 1);
        const { value, grads, preds } = tf.tidy(() => {
          const x = stack(rows, model.featureShape);
          const y = tf.tensor1d(labels, 'int32');
          let predsT: tf.Tensor | undefined;
          const r = tf.variableGrads(() => {
            const logits = model.forward(x, true, seed);
            predsT = tf.keep(tf.argMax(logits, 1));
            return loss(logits, y);
          }, vars);
          return { value: r.value, grads: r.grads, preds: predsT! };
        });
        optimizer.apply(vars, grads, lrScale);
        const batchLoss = (await value.data())[0]!;
        const p = await preds.data();
        tf.dispose([value, preds, ...Object.values(grads)]);
        p.forEach((v, k) => {
          if (v === labels[k]) correct++;
        });
        lossSum += batchLoss * idx.length;
        seen += idx.length;
        for (const cb of opts.callbacks) await cb.onBatchEnd?.({ batch: b + 1, batches, loss: batchLoss }, ctl);
      }
      // Without a validation split (training on all images) the validation figures are NaN.
      const val =
        data.val.length > 0
          ? evaluateFeatures(model, data.val, data.valLabels, data.classes, opts.loss)
          : { loss: NaN, accuracy: NaN, macroF1: NaN };
      const logs: EpochLogs = {
        epoch,
        trainLoss: lossSum / Math.max(seen, 1),
        trainAccuracy: correct / Math.max(seen, 1),
        valLoss: val.loss,
        valAccuracy: val.accuracy,
        valMacroF1: val.macroF1,
        lr,
        seconds: (performance.now() - t0) / 1000,
      };
      history.push(logs);
      for (const cb of opts.callbacks) await cb.onEpochEnd?.(logs, ctl);
    }
    for (const cb of opts.callbacks) await cb.onTrainEnd?.(ctl);
  } finally {
    snapshot?.forEach((t) => t.dispose());
    optimizer.dispose();
  }
  return { history, epochsRun: history.length };
}

/** Validation loss (same loss as training), accuracy and macro F1 from feature rows. */
export function evaluateFeatures(
  model: ClassifierModel,
  rows: readonly Float32Array[],
  labels: readonly number[],
  classes: readonly string[],
  lossCfg: LossConfig,
): { loss: number; accuracy: number; macroF1: number; probs: number[][] } {
  const loss = makeLoss(lossCfg);
  const logits = predictLogits(model, rows);
  const lossValue = tf.tidy(() => loss(tf.tensor2d(logits), tf.tensor1d([...labels], 'int32')).dataSync()[0]!);
  const probs = tf.tidy(() => tf.softmax(tf.tensor2d(logits)).arraySync() as number[][]);
  const m = classificationMetrics([...labels], probs.map(argmax), classes);
  return { loss: lossValue, accuracy: m.accuracy, macroF1: m.macroAvg.f1, probs };
}
