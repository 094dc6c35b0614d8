/**
 * Temperature scaling (Guo et al., 2017): one scalar T > 0 that divides the logits, fitted on
 * held-out data by minimising the negative log-likelihood. It changes confidence, never the
 * predicted class. Pure arithmetic on logits: no tfjs.
 */

/** Softmax of logits / t, row by row, computed stably. */
export function softmaxWithTemperature(logits: readonly (readonly number[])[], t = 1): number[][] {
  return logits.map((row) => {
    const scaled = row.map((v) => v / t);
    const max = Math.max(...scaled);
    const exps = scaled.map((v) => Math.exp(v - max));
    const sum = exps.reduce((a, b) => a + b, 0);
    return exps.map((e) => e / sum);
  });
}

/** Mean negative log-likelihood of the true labels under softmax(logits / t). */
export function nllWithTemperature(logits: readonly (readonly number[])[], labels: readonly number[], t: number): number {
  if (logits.length !== labels.length) throw new Error('logits and labels differ in length');
  let total = 0;
  logits.forEach((row, i) => {
    const scaled = row.map((v) => v / t);
    const max = Math.max(...scaled);
    const logSum = max + Math.log(scaled.reduce((a, v) => a + Math.exp(v - max), 0));
    total += logSum - scaled[labels[i]!]!;
  });
  return total / Math.max(1, logits.length);
}

/**
 * The temperature in [0.05, 20] that minimises the NLL (golden-section search on log T; the NLL
 * is unimodal in T for a fixed set of logits).
 */
export function fitTemperature(logits: readonly (readonly number[])[], labels: readonly number[]): number {
  if (logits.length === 0) return 1;
  const f = (logT: number): number => nllWithTemperature(logits, labels, Math.exp(logT));
  let lo = Math.log(0.05);
  let hi = Math.log(20);
  const g = (Math.sqrt(5) - 1) / 2;
  let a = hi - g * (hi - lo);
  let b = lo + g * (hi - lo);
  let fa = f(a);
  let fb = f(b);
  for (let i = 0; i < 80 && hi - lo > 1e-6; i++) {
    if (fa < fb) {
      hi = b;
      b = a;
      fb = fa;
      a = hi - g * (hi - lo);
      fa = f(a);
    } else {
      lo = a;
      a = b;
      fa = fb;
      b = lo + g * (hi - lo);
      fb = f(b);
    }
  }
  return Math.exp((lo + hi) / 2);
}
