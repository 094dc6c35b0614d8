/**
 * Adam and AdamW (decoupled weight decay, Loshchilov & Hutter) over tfjs variables, with a
 * learning rate the trainer's callbacks can change between steps.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface OptimizerConfig {
  kind: 'adam' | 'adamw';
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Decoupled weight decay (AdamW only), applied to kernels (rank >= 2), not to biases/BN/PReLU parameters. */
  weightDecay: number;
}

export class AdamOptimizer {
  lr: number;
  private step = 0;
  private readonly m = new Map<tf.Variable, tf.Variable>();
  private readonly v = new Map<tf.Variable, tf.Variable>();

  constructor(private readonly cfg: OptimizerConfig) {
    this.lr = cfg.lr;
  }

  /**
   * One update from gradients keyed by variable name (as returned by tf.variableGrads).
   * `lrScale` gives some variables a smaller step (e.g. fine-tuned backbone blocks).
   */
  apply(vars: readonly tf.Variable[], grads: Record<string, tf.Tensor>, lrScale?: ReadonlyMap<tf.Variable, number>): void {
    this.step++;
    const { beta1, beta2, epsilon, weightDecay, kind } = this.cfg;
    const bc1 = 1 - beta1 ** this.step;
    const bc2 = 1 - beta2 ** this.step;
    tf.tidy(() => {
      for (const variable of vars) {
        const lr = this.lr * (lrScale?.get(variable) ?? 1);
        const stepSize = (lr * Math.sqrt(bc2)) / bc1;
        const g = grads[variable.name];
        if (!g) continue;
        let m = this.m.get(variable);
        let v = this.v.get(variable);
        if (!m || !v) {
          m = tf.variable(tf.zerosLike(variable), false);
          v = tf.variable(tf.zerosLike(variable), false);
          this.m.set(variable, m);
          this.v.set(variable, v);
        }
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        let next = tf.sub(variable, tf.mul(tf.div(m, tf.add(tf.sqrt(v), epsilon)), stepSize));
        if (kind === 'adamw' && weightDecay > 0 && variable.rank >= 2) {
          next = tf.sub(next, tf.mul(variable, lr * weightDecay));
        }
        variable.assign(next);
      }
    });
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
