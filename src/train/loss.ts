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

export type LossConfig =
  | { kind: 'focal'; gamma: number; alpha?: readonly number[] }
  | { kind: 'crossEntropy'; alpha?: readonly number[] };

// Floor for u = 1 - p_t: keeps u^(gamma - 1) in the gradient finite when p_t rounds to 1
// (gamma < 1); the effect on the loss is far below float32 resolution.
const ONE_MINUS_PT_FLOOR = 1e-30;

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
  const gamma = opts.gamma ?? 2;
  if (!(gamma >= 0) || !Number.isFinite(gamma)) throw new Error(`gamma must be >= 0, got ${gamma}`);
  if (logits.rank !== 2) throw new Error(`logits must be rank 2 [batch, classes], got rank ${logits.rank}`);
  const [batch, numClasses] = logits.shape;
  if (labels.rank !== 1 || labels.shape[0] !== batch) {
    throw new Error(`labels must be shape [${batch}], got [${labels.shape.join(', ')}]`);
  }
  const alpha = opts.alpha;
  if (alpha !== undefined) {
    if (alpha.length !== numClasses) {
      throw new Error(`alpha has ${alpha.length} entries but logits have ${numClasses} classes`);
    }
    if (alpha.some((a) => !Number.isFinite(a) || a < 0)) throw new Error('alpha entries must be finite and >= 0');
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
