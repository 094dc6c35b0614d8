/**
 * Classification losses on logits, built from tfjs-core ops so they are differentiable on any
 * backend. Everything goes through logSoftmax (never log(softmax)) so ±50 logits stay finite.
 */
import * as tf from '@tensorflow/tfjs-core';

export type LossFn = (logits: tf.Tensor2D, labels: tf.Tensor1D) => tf.Scalar;

export interface FocalLossOptions {
  /** Focusing parameter; 0 gives (alpha-weighted) cross-entropy. Default 2. */
  gamma?: number;
  /** Per-class weight alpha_t, indexed by class; length must equal the number of classes. */
  alpha?: readonly number[];
}

/** Target distributions [batch, classes] (rows sum to 1): smoothed and/or mixed labels. */
export type SoftLossFn = (logits: tf.Tensor2D, targets: tf.Tensor2D) => tf.Scalar;

export type LossConfig =
  | { kind: 'focal'; gamma: number; alpha?: readonly number[]; labelSmoothing?: number }
  | { kind: 'crossEntropy'; alpha?: readonly number[]; labelSmoothing?: number };

// Floor for u = 1 - p_t: keeps u^(gamma - 1) in the gradient finite when p_t rounds to 1
// (gamma < 1); the effect on the loss is far below float32 resolution.
const ONE_MINUS_PT_FLOOR = 1e-30;

/** Checks what both focal losses take: gamma >= 0, rank-2 logits, one alpha >= 0 per class. */
function checkFocalInputs(logits: tf.Tensor2D, opts: FocalLossOptions): { gamma: number; alpha: readonly number[] | undefined; batch: number; numClasses: number } {
  const gamma = opts.gamma ?? 2;
  if (!(gamma >= 0) || !Number.isFinite(gamma)) throw new Error(`gamma must be >= 0, got ${gamma}`);
  if (logits.rank !== 2) throw new Error(`logits must be rank 2 [batch, classes], got rank ${logits.rank}`);
  const [batch, numClasses] = logits.shape;
  const alpha = opts.alpha;
  if (alpha !== undefined) {
    if (alpha.length !== numClasses) {
      throw new Error(`alpha has ${alpha.length} entries but logits have ${numClasses} classes`);
    }
    if (alpha.some((a) => !Number.isFinite(a) || a < 0)) throw new Error('alpha entries must be finite and >= 0');
  }
  return { gamma, alpha, batch, numClasses };
}

/**
 * Focal loss (Lin et al. 2017): mean over the batch of -alpha_t (1 - p_t)^gamma log(p_t).
 * `labels` are class indices (cast to int32 if given as float). Alpha weights are not
 * renormalised: the mean is over samples, as in the paper (unlike PyTorch's weighted CE).
 */
export function focalLoss(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  opts: FocalLossOptions = {},
): tf.Scalar {
  const { gamma, alpha, batch, numClasses } = checkFocalInputs(logits, opts);
  if (labels.rank !== 1 || labels.shape[0] !== batch) {
    throw new Error(`labels must be shape [${batch}], got [${labels.shape.join(', ')}]`);
  }

  const floor = ONE_MINUS_PT_FLOOR;
  const batchSize = batch;
  // customGrad with an analytic gradient: tfjs-core's Node bundle registers no gradient configs,
  // so taping Sum/Mean/Pow here would fail ("gradient function not found"). Labels and alpha are
  // constants; only logits get a gradient.
  const lossOf = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const z = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const idx = labels.dtype === 'int32' ? labels : tf.cast(labels, 'int32');
    const oneHot = tf.cast(tf.oneHot(idx, numClasses), 'float32');
    const alphaT =
      alpha === undefined ? tf.ones([batchSize]) : tf.sum(tf.mul(oneHot, tf.tensor1d([...alpha], 'float32')), 1);
    const logp = tf.logSoftmax(z);
    const p = tf.exp(logp);
    const logpt = tf.sum(tf.mul(logp, oneHot), 1); // [batch]
    // 1 - p_t as the sum of the other classes' probabilities: no cancellation when p_t ~ 1.
    const u = tf.maximum(tf.sum(tf.mul(p, tf.sub(1, oneHot)), 1), floor);
    const weight = gamma > 0 ? tf.pow(u, gamma) : tf.onesLike(u);
    const value = tf.mean(tf.mul(tf.neg(alphaT), tf.mul(weight, logpt))) as tf.Scalar;
    save([oneHot, alphaT, p, logpt, u]);
    const gradFunc = (dy: tf.Scalar, saved: tf.Tensor[]): tf.Tensor => {
      const [oh, aT, prob, lpt, um] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
      // L_i = -a_i u^g log p_t with u = 1 - p_t. Using d log p_t/dz_j = onehot_j - p_j and
      // du/dz_j = -p_t (onehot_j - p_j):
      //   dL_i/dz_j = a_i (onehot_j - p_j) [g u^(g-1) p_t log p_t - u^g].
      let bracket: tf.Tensor = tf.neg(gamma > 0 ? tf.pow(um, gamma) : tf.onesLike(um));
      if (gamma > 0) {
        const focusTerm = tf.mul(tf.mul(tf.pow(um, gamma - 1), tf.exp(lpt)), lpt);
        bracket = tf.add(bracket, tf.mul(gamma, focusTerm));
      }
      const coef = tf.mul(tf.mul(aT, bracket), tf.div(dy, batchSize)); // [batch]
      return tf.mul(tf.sub(oh, prob), tf.expandDims(coef, 1));
    };
    return { value, gradFunc };
  });
  return lossOf(logits);
}

/** Mean softmax cross-entropy, optionally alpha-weighted per true class (focal with gamma 0). */
export function crossEntropyLoss(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  opts: { alpha?: readonly number[] } = {},
): tf.Scalar {
  return focalLoss(logits, labels, { gamma: 0, ...(opts.alpha ? { alpha: opts.alpha } : {}) });
}

export function makeLoss(cfg: LossConfig): LossFn {
  const eps = checkLabelSmoothing(cfg.labelSmoothing);
  if (eps > 0) {
    // Smoothed targets go through the soft-target loss; eps = 0 keeps the hard-label code below
    // (bit-for-bit the loss of runs made before label smoothing existed).
    const soft = makeSoftTargetLoss(cfg);
    return (logits, labels) =>
      tf.tidy(() => {
        const idx = labels.dtype === 'int32' ? labels : tf.cast(labels, 'int32');
        return soft(logits, tf.cast(tf.oneHot(idx, logits.shape[1]), 'float32') as tf.Tensor2D);
      });
  }
  switch (cfg.kind) {
    case 'focal': {
      const opts: FocalLossOptions = { gamma: cfg.gamma, ...(cfg.alpha ? { alpha: cfg.alpha } : {}) };
      return (logits, labels) => focalLoss(logits, labels, opts);
    }
    case 'crossEntropy': {
      const opts = cfg.alpha ? { alpha: cfg.alpha } : {};
      return (logits, labels) => crossEntropyLoss(logits, labels, opts);
    }
  }
}

function checkLabelSmoothing(eps: number | undefined): number {
  const e = eps ?? 0;
  if (!(e >= 0 && e < 1)) throw new RangeError(`labelSmoothing must be in [0, 1), got ${e}`);
  return e;
}

/**
 * The configured loss on target distributions (mixup's mixed one-hot rows, say); the config's
 * label smoothing is applied to them: q' = (1 - eps) q + eps / K.
 */
export function makeSoftTargetLoss(cfg: LossConfig): SoftLossFn {
  const eps = checkLabelSmoothing(cfg.labelSmoothing);
  const opts: FocalLossOptions = { gamma: cfg.kind === 'focal' ? cfg.gamma : 0, ...(cfg.alpha ? { alpha: cfg.alpha } : {}) };
  return (logits, targets) =>
    tf.tidy(() => {
      const k = logits.shape[1];
      const q = eps > 0 ? (tf.add(tf.mul(targets, 1 - eps), eps / k) as tf.Tensor2D) : targets;
      return softTargetFocalLoss(logits, q, opts);
    });
}

/**
 * Focal loss on target distributions q (rows of [batch, classes], e.g. smoothed or mixed labels),
 * the usual generalisation: mean over the batch of sum_k q_k alpha_k (1 - p_k)^gamma (-log p_k).
 * With one-hot q it is focalLoss (up to float rounding); gamma 0 is soft-target cross-entropy. It is
 * linear in q, so a mixup loss lambda L(y_i) + (1 - lambda) L(y_j) is this loss on the mixed row.
 */
export function softTargetFocalLoss(logits: tf.Tensor2D, targets: tf.Tensor2D, opts: FocalLossOptions = {}): tf.Scalar {
  const { gamma, alpha, batch, numClasses } = checkFocalInputs(logits, opts);
  if (targets.rank !== 2 || targets.shape[0] !== batch || targets.shape[1] !== numClasses) {
    throw new Error(`targets must be shape [${batch}, ${numClasses}], got [${targets.shape.join(', ')}]`);
  }
  const floor = ONE_MINUS_PT_FLOOR;
  // Analytic gradient, as in focalLoss (no gradient configs in the Node bundle); targets are constants.
  const lossOf = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const z = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const q = tf.cast(targets, 'float32');
    const c = alpha === undefined ? q : tf.mul(q, tf.tensor1d([...alpha], 'float32')); // q_k alpha_k
    const logp = tf.logSoftmax(z);
    const p = tf.exp(logp);
    // u_k = 1 - p_k as the sum of the other classes' probabilities (p times 1 - I): no cancellation.
    const others = tf.sub(tf.ones([numClasses, numClasses]), tf.eye(numClasses));
    const u = tf.maximum(tf.matMul(p, others), floor);
    const weight = gamma > 0 ? tf.pow(u, gamma) : tf.onesLike(u);
    const perSample = tf.sum(tf.mul(c, tf.mul(weight, tf.neg(logp))), 1);
    const value = tf.mean(perSample) as tf.Scalar;
    save([c, p, logp, u]);
    const gradFunc = (dy: tf.Scalar, saved: tf.Tensor[]): tf.Tensor => {
      const [cs, prob, lp, um] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      // L = sum_k c_k u_k^g (-log p_k), u_k = 1 - p_k. With d log p_k/dz_j = d_kj - p_j and
      // du_k/dz_j = -p_k (d_kj - p_j):  dL/dz_j = sum_k c_k b_k (d_kj - p_j) = a_j - p_j sum_k a_k,
      // where b_k = g u_k^(g-1) p_k log p_k - u_k^g and a = c * b.
      let b: tf.Tensor = tf.neg(gamma > 0 ? tf.pow(um, gamma) : tf.onesLike(um));
      if (gamma > 0) b = tf.add(b, tf.mul(gamma, tf.mul(tf.mul(tf.pow(um, gamma - 1), prob), lp)));
      const a = tf.mul(cs, b);
      const g = tf.sub(a, tf.mul(prob, tf.sum(a, 1, true)));
      return tf.mul(g, tf.div(dy, batch));
    };
    return { value, gradFunc };
  });
  return lossOf(logits);
}
