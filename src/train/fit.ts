/**
 * The training loop over cached trunk features: shuffled mini-batches (one random augmented
 * view per image per epoch), loss, AdamW steps, per-epoch validation, callbacks.
 *
 * Optional recipe parts, all off by default (and then drawing nothing from the rng, so runs
 * without them are unchanged): class-balanced sampling, mixup of the trunk features (manifold
 * mixup at the cut when top blocks are trained), label smoothing (in the loss config) and an
 * exponential moving average (EMA) of the trainable weights.
 *
 * EMA and early stopping: the EMA weights are swapped into the model at the end of every epoch,
 * before validation, and stay in while the epoch-end callbacks run; the raw (optimised) weights
 * are swapped back at the start of the next epoch. So validation, EarlyStopping's snapshot (taken
 * in onEpochEnd) and its restore (in onTrainEnd) all see EMA weights, and when fit returns the
 * model holds the EMA weights of the last epoch or, if early stopping restored, of the best one.
 * BatchNorm moving statistics are not averaged: they stay as trained (snapshots include them).
 *
 * With `workers` > 1 and fine-tuned top blocks, the top blocks' forward and backward passes (and
 * validation's forward) run split across worker threads, the head on this thread on the whole
 * batch (parallel.ts); everything else above (order, views, mixup, EMA, snapshots) is unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ClassifierModel } from '../model/classifier-model.js';
import { classificationMetrics } from '../eval/metrics.js';
import { argmax } from '../util/argmax.js';
import { betaSample, type Rng } from '../util/rng.js';
import type { Callback, EpochLogs, TrainerControl } from './callback.js';
import type { FeatureTable } from './features.js';
import { makeLoss, makeSoftTargetLoss, type LossConfig } from './loss.js';
import { AdamOptimizer, type OptimizerConfig } from './optimizer.js';
import type { TrainingBackend } from './backend.js';
import { ParallelTop } from './parallel.js';

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
  /**
   * Mixup of the trunk features within each training batch: lambda ~ Beta(mixup, mixup) per batch,
   * x = lambda x_i + (1 - lambda) x_perm(i), loss = lambda L(y_i) + (1 - lambda) L(y_perm(i)).
   * 0 or undefined: off. Training accuracy counts against the dominant label.
   */
  mixup?: number;
  /**
   * Each epoch draws as many images as there are, with replacement, with probability inversely
   * proportional to their class's frequency (classes equally likely), instead of a shuffled pass.
   */
  balancedSampling?: boolean;
  /** Decay of an exponential moving average of the trainable weights, in (0, 1); 0 or undefined: off. */
  ema?: number;
  /**
   * Worker threads for the fine-tuned top blocks (data-parallel, see parallel.ts); 1 or undefined:
   * everything on this thread. Ignored without top blocks (the head alone is too small to split).
   * Same results as 1 within float rounding; for a given count, runs are reproducible.
   */
  workers?: number;
  /** The tfjs backend the workers initialise (the caller's is already set); default 'wasm'. */
  backend?: TrainingBackend;
}

export interface FitResult {
  history: EpochLogs[];
  epochsRun: number;
}

/**
 * Training went numerically wrong: a batch's loss, an epoch's validation loss or a weight became
 * NaN or infinite (almost always a learning rate far too high). fit stops at once; nothing the
 * run would save is trustworthy, so train() writes no model (see eval/run-folder.ts).
 */
export class TrainingDivergedError extends Error {
  override readonly name = 'TrainingDivergedError';
  constructor(
    readonly epoch: number,
    /** What went non-finite, e.g. 'training loss NaN (batch 3 of 4)'. */
    readonly what: string,
    /** The learning rate of that epoch. */
    readonly lr: number,
  ) {
    super(`training diverged at epoch ${epoch}: ${what} at learning rate ${lr}; lower --lr`);
  }
}

/** Whether every value of the variables is finite (one small reduction each: x * 0 is NaN unless x is finite). */
function allFinite(vars: readonly tf.Variable[]): boolean {
  return tf.tidy(() => vars.every((v) => Number.isFinite(tf.sum(tf.mul(v, 0)).dataSync()[0]!)));
}

function stack(rows: readonly Float32Array[], shape: number[]): tf.Tensor {
  const per = rows[0]!.length;
  const buf = new Float32Array(rows.length * per);
  rows.forEach((r, i) => buf.set(r, i * per));
  return tf.tensor(buf, [rows.length, ...shape]);
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

/**
 * One epoch of class-balanced sampling: labels.length indices drawn with replacement, each with
 * probability proportional to 1 / (its class's count), i.e. a uniformly drawn class, then a
 * uniformly drawn image of it.
 */
export function balancedEpochOrder(labels: readonly number[], rng: Rng): number[] {
  const byClass = new Map<number, number[]>();
  labels.forEach((y, i) => {
    const list = byClass.get(y) ?? [];
    list.push(i);
    byClass.set(y, list);
  });
  const members = [...byClass.entries()].sort((a, b) => a[0] - b[0]).map(([, list]) => list);
  return labels.map(() => {
    const list = members[rng.int(0, members.length)]!;
    return list[rng.int(0, list.length)]!;
  });
}

export interface MixedBatch {
  /** lambda rows[i] + (1 - lambda) rows[partner[i]]. */
  rows: Float32Array[];
  /** Mixed one-hot targets, row-major [batch, numClasses]. */
  targets: Float32Array;
  lambda: number;
  /** A random permutation of the batch positions. */
  partner: number[];
  /** The label with the larger weight (labels[i] when lambda >= 0.5): what accuracy counts against. */
  dominant: number[];
}

/** Mixup of one batch: lambda ~ Beta(alpha, alpha), partners a random permutation (both from rng). */
export function mixupBatch(
  rows: readonly Float32Array[],
  labels: readonly number[],
  numClasses: number,
  alpha: number,
  rng: Rng,
): MixedBatch {
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new RangeError(`mixup alpha must be > 0, got ${alpha}`);
  const lambda = betaSample(rng, alpha, alpha);
  const partner = rng.shuffle([...rows.keys()]);
  const mixed = rows.map((a, i) => {
    const b = rows[partner[i]!]!;
    const out = new Float32Array(a.length);
    for (let j = 0; j < a.length; j++) out[j] = lambda * a[j]! + (1 - lambda) * b[j]!;
    return out;
  });
  const targets = new Float32Array(rows.length * numClasses);
  labels.forEach((y, i) => {
    const j = labels[partner[i]!]!;
    targets[i * numClasses + y] = lambda + (y === j ? 1 - lambda : 0);
    if (y !== j) targets[i * numClasses + j] = 1 - lambda;
  });
  const dominant = labels.map((y, i) => (lambda >= 0.5 ? y : labels[partner[i]!]!));
  return { rows: mixed, targets, lambda, partner, dominant };
}

/**
 * An exponential moving average of variables, debiased as in Adam (optax.ema with debias): after
 * t updates, ema = sum_s (1 - d) d^(t - s) w_s / (1 - d^t), computed as
 * ema += (1 - d) / (1 - d^t) (w - ema). The first update copies the weights, so the average never
 * drags the initial weights along; decay -> 0 gives the raw weights.
 */
export class WeightEma {
  private steps = 0;
  private readonly shadow: tf.Variable[];
  private stash: tf.Tensor[] | undefined;

  constructor(
    private readonly vars: readonly tf.Variable[],
    readonly decay: number,
  ) {
    if (!(decay > 0 && decay < 1)) throw new RangeError(`ema decay must be in (0, 1), got ${decay}`);
    // tidy frees the clones; each variable keeps its own reference to the data.
    this.shadow = tf.tidy(() => vars.map((v) => tf.variable(v.clone(), false)));
  }

  /** Number of updates so far. */
  get updates(): number {
    return this.steps;
  }

  /** Fold the variables' current values in (after each optimiser step). */
  update(): void {
    if (this.stash) throw new Error('WeightEma.update: the EMA weights are swapped in');
    this.steps++;
    const rate = (1 - this.decay) / (1 - this.decay ** this.steps);
    tf.tidy(() => {
      this.vars.forEach((v, i) => {
        const s = this.shadow[i]!;
        s.assign(this.steps === 1 ? v : tf.add(s, tf.mul(tf.sub(v, s), rate)));
      });
    });
  }

  /** Put the EMA weights into the variables, keeping the raw ones aside; no-op if already in. */
  swapIn(): void {
    if (this.stash) return;
    this.stash = this.vars.map((v) => tf.keep(v.clone()));
    this.vars.forEach((v, i) => v.assign(this.shadow[i]!));
  }

  /** Put the raw weights back; no-op if the EMA weights are not in. */
  swapOut(): void {
    if (!this.stash) return;
    this.vars.forEach((v, i) => v.assign(this.stash![i]!));
    tf.dispose(this.stash);
    this.stash = undefined;
  }

  /** Frees the average (and the raw weights, if the EMA weights are in: they stay in the variables). */
  dispose(): void {
    if (this.stash) tf.dispose(this.stash);
    this.stash = undefined;
    tf.dispose(this.shadow);
  }
}

export async function fit(model: ClassifierModel, data: FitData, opts: FitOptions): Promise<FitResult> {
  const loss = makeLoss(opts.loss);
  const mixup = opts.mixup ?? 0;
  if (!(mixup >= 0) || !Number.isFinite(mixup)) throw new RangeError(`mixup must be >= 0, got ${mixup}`);
  const emaDecay = opts.ema ?? 0;
  if (!(emaDecay >= 0 && emaDecay < 1)) throw new RangeError(`ema must be in [0, 1), got ${emaDecay}`);
  const softLoss = mixup > 0 ? makeSoftTargetLoss(opts.loss) : undefined;
  // Own streams, derived from the seed only: switching mixup on leaves the main stream's draws
  // (order, views, dropout seeds) as they were; balanced sampling replaces the shuffle's draws.
  const mixRng = opts.rng.fork('mixup');
  const sampleRng = opts.rng.fork('balanced-sampling');
  const numClasses = data.classes.length;
  const optimizer = new AdamOptimizer(opts.optimizer);
  const vars = model.trainableVariables;
  const ema = emaDecay > 0 ? new WeightEma(vars, emaDecay) : undefined;
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
  const workers = Math.min(opts.workers ?? 1, opts.batchSize);
  if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`workers must be an integer >= 1, got ${opts.workers}`);
  const headVars = model.head.trainableVariables;
  let parallel: ParallelTop | undefined;
  try {
    if (model.top && workers > 1) {
      parallel = await ParallelTop.create({
        top: model.top,
        featureShape: model.featureShape,
        width: model.headInputDim,
        workers,
        maxRows: opts.batchSize,
        backend: opts.backend ?? 'wasm',
      });
    }
    for (const cb of opts.callbacks) await cb.onTrainBegin?.(ctl);
    for (let epoch = 1; epoch <= opts.epochs && !ctl.stopTraining; epoch++) {
      for (const cb of opts.callbacks) await cb.onEpochBegin?.(epoch, ctl);
      const lr = ctl.lr;
      optimizer.lr = lr;
      const t0 = performance.now();
      ema?.swapOut(); // train the raw weights (the EMA ones were in for the last validation)
      const order = opts.balancedSampling ? balancedEpochOrder(data.trainLabels, sampleRng) : opts.rng.shuffle([...Array(n).keys()]);
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
        const mixed = softLoss ? mixupBatch(rows, labels, numClasses, mixup, mixRng) : undefined;
        const gradStep = (xt: tf.Tensor, wrt: tf.Variable[], forward: (x: tf.Tensor) => tf.Tensor2D) =>
          tf.tidy(() => {
            const y = tf.tensor1d(labels, 'int32');
            const q = mixed ? tf.tensor2d(mixed.targets, [labels.length, numClasses]) : undefined;
            let predsT: tf.Tensor | undefined;
            const r = tf.variableGrads(() => {
              const logits = forward(xt);
              predsT = tf.keep(tf.argMax(logits, 1));
              return softLoss && q ? softLoss(logits, q) : loss(logits, y);
            }, wrt);
            return { value: r.value, grads: r.grads, preds: predsT! };
          });
        let step: { value: tf.Scalar; grads: tf.NamedTensorMap; preds: tf.Tensor };
        if (parallel) {
          // Top blocks on the workers, the head here on the whole batch (see parallel.ts).
          let headOut: typeof step | undefined;
          const topGrads = await parallel.step(mixed ? mixed.rows : rows, (pooled, rowsN) => {
            const pooledT = tf.tensor2d(pooled, [rowsN, model.headInputDim]);
            const pooledVar = tf.variable(pooledT, true);
            pooledT.dispose();
            try {
              headOut = gradStep(pooledVar, [...headVars, pooledVar], (p) => model.head.apply(p as tf.Tensor2D, true, seed));
              const dPooled = headOut.grads[pooledVar.name]!;
              delete headOut.grads[pooledVar.name];
              const d = (dPooled.dataSync() as Float32Array).slice();
              dPooled.dispose();
              return d;
            } finally {
              pooledVar.dispose();
            }
          });
          step = headOut!;
          model.topVariables.forEach((v, i) => {
            step.grads[v.name] = tf.tensor(topGrads[i]!, v.shape);
          });
        } else {
          step = tf.tidy(() => {
            const x = stack(mixed ? mixed.rows : rows, model.featureShape);
            return gradStep(x, vars, (xt) => model.forward(xt, true, seed));
          });
        }
        const { value, grads, preds } = step;
        optimizer.apply(vars, grads, lrScale);
        ema?.update();
        const batchLoss = (await value.data())[0]!;
        const p = await preds.data();
        tf.dispose([value, preds, ...Object.values(grads)]);
        if (!Number.isFinite(batchLoss)) throw new TrainingDivergedError(epoch, `training loss ${batchLoss} (batch ${b + 1} of ${batches})`, lr);
        const truth = mixed ? mixed.dominant : labels;
        p.forEach((v, k) => {
          if (v === truth[k]) correct++;
        });
        lossSum += batchLoss * idx.length;
        seen += idx.length;
        for (const cb of opts.callbacks) await cb.onBatchEnd?.({ batch: b + 1, batches, loss: batchLoss }, ctl);
      }
      ema?.swapIn(); // validate (and let callbacks snapshot) the EMA weights
      // Without a validation split (training on all images) the validation figures are NaN.
      const val =
        data.val.length === 0
          ? { loss: NaN, accuracy: NaN, macroF1: NaN }
          : parallel
            ? evaluateLogits(await predictLogitsParallel(model, parallel, data.val), data.valLabels, data.classes, opts.loss)
            : evaluateFeatures(model, data.val, data.valLabels, data.classes, opts.loss);
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
      // After the callbacks, so the epoch is in metrics.jsonl; the checks cost one reduction per variable.
      if (data.val.length > 0 && !Number.isFinite(val.loss)) {
        throw new TrainingDivergedError(epoch, `validation loss ${val.loss} (training loss ${logs.trainLoss.toPrecision(3)})`, lr);
      }
      if (!allFinite(model.stateVariables)) throw new TrainingDivergedError(epoch, 'the weights are no longer finite', lr);
    }
    for (const cb of opts.callbacks) await cb.onTrainEnd?.(ctl);
  } finally {
    snapshot?.forEach((t) => t.dispose());
    optimizer.dispose();
    await parallel?.close();
    ema?.dispose(); // the model keeps what it holds now: EMA weights, unless training failed mid-epoch
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
  return evaluateLogits(predictLogits(model, rows), labels, classes, lossCfg);
}

/** Logits for feature rows, in inference mode, the top blocks running on the workers. */
async function predictLogitsParallel(model: ClassifierModel, parallel: ParallelTop, rows: readonly Float32Array[], chunk = 64): Promise<number[][]> {
  const out: number[][] = [];
  for (let i = 0; i < rows.length; i += chunk) {
    const part = rows.slice(i, i + chunk);
    const pooled = await parallel.forward(part);
    const logits = tf.tidy(() => model.head.apply(tf.tensor2d(pooled, [part.length, model.headInputDim]), false));
    out.push(...(logits.arraySync() as number[][]));
    logits.dispose();
  }
  return out;
}

/** Loss, accuracy and macro F1 from logits. */
export function evaluateLogits(
  logits: number[][],
  labels: readonly number[],
  classes: readonly string[],
  lossCfg: LossConfig,
): { loss: number; accuracy: number; macroF1: number; probs: number[][] } {
  const loss = makeLoss(lossCfg);
  const lossValue = tf.tidy(() => loss(tf.tensor2d(logits), tf.tensor1d([...labels], 'int32')).dataSync()[0]!);
  const probs = tf.tidy(() => tf.softmax(tf.tensor2d(logits)).arraySync() as number[][]);
  const m = classificationMetrics([...labels], probs.map(argmax), classes);
  return { loss: lossValue, accuracy: m.accuracy, macroF1: m.macroAvg.f1, probs };
}
