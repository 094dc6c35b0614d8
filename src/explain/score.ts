/**
 * The score Grad-CAM differentiates: the log-probability of a class in the model's output, made
 * from the members' logits in float64 (the model's output is the mean of its members' softmaxes;
 * one member for a plain classifier). Taken from the logits rather than the float32
 * probabilities, so a confident answer (p = 0.9999) still has a usable gradient. Pure arithmetic.
 */

/** log(sum(exp(row))), stable. */
function logSumExp(row: ArrayLike<number>, offset: number, k: number): number {
  let max = -Infinity;
  for (let j = 0; j < k; j++) max = Math.max(max, row[offset + j]!);
  if (!Number.isFinite(max)) return max;
  let s = 0;
  for (let j = 0; j < k; j++) s += Math.exp(row[offset + j]! - max);
  return max + Math.log(s);
}

/** log softmax(logits)[c] for the row of `k` logits at `offset`. */
export function logSoftmaxAt(logits: ArrayLike<number>, offset: number, k: number, c: number): number {
  return logits[offset + c]! - logSumExp(logits, offset, k);
}

/**
 * log((1/M) * sum_m softmax(z_m)[c]) given each member's log softmax[c]: the log-probability of
 * class c in the mean of M members' probabilities.
 */
export function logMeanProbability(memberLogProbs: readonly number[]): number {
  return logSumExp(memberLogProbs, 0, memberLogProbs.length) - Math.log(memberLogProbs.length);
}
