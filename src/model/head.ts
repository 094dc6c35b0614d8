/**
 * The classification head that replaces the ImageNet classifier:
 * (pooled features) -> [FC -> BatchNorm -> PReLU -> Dropout] x 2 -> FC(classes).
 * Runs in tfjs for training and converts to layer-graph nodes for ONNX export.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GraphNode, WeightTensor } from '../backbones/graph.js';
import type { Rng } from '../util/rng.js';

export interface HeadConfig {
  inputDim: number;
  units: [number, number];
  numClasses: number;
  dropout: number;
  /** Momentum of the BatchNorm running statistics (Keras convention: new = m * old + (1 - m) * batch). */
  bnMomentum: number;
  bnEpsilon: number;
}

interface HiddenLayer {
  kernel: tf.Variable<tf.Rank.R2>;
  bias: tf.Variable<tf.Rank.R1>;
  gamma: tf.Variable<tf.Rank.R1>;
  beta: tf.Variable<tf.Rank.R1>;
  movingMean: tf.Variable<tf.Rank.R1>;
  movingVariance: tf.Variable<tf.Rank.R1>;
  alpha: tf.Variable<tf.Rank.R1>;
}

/** Glorot-uniform initial kernel, drawn from our seeded RNG so runs are reproducible. */
function glorot(rng: Rng, fanIn: number, fanOut: number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const out = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < out.length; i++) out[i] = (rng.next() * 2 - 1) * limit;
  return out;
}

let instances = 0;

export class ClassifierHead {
  readonly config: HeadConfig;
  private readonly hidden: HiddenLayer[];
  private readonly outKernel: tf.Variable<tf.Rank.R2>;
  private readonly outBias: tf.Variable<tf.Rank.R1>;

  constructor(config: HeadConfig, rng: Rng) {
    this.config = config;
    // tfjs variable names are global: make them unique per head.
    const p = `head${instances++}`;
    const dims = [config.inputDim, ...config.units];
    this.hidden = config.units.map((u, i) => {
      const fanIn = dims[i]!;
      return {
        kernel: tf.variable(tf.tensor2d(glorot(rng, fanIn, u), [fanIn, u]), true, `${p}/fc${i + 1}/kernel`),
        bias: tf.variable(tf.zeros([u]), true, `${p}/fc${i + 1}/bias`),
        gamma: tf.variable(tf.ones([u]), true, `${p}/bn${i + 1}/gamma`),
        beta: tf.variable(tf.zeros([u]), true, `${p}/bn${i + 1}/beta`),
        movingMean: tf.variable(tf.zeros([u]), false, `${p}/bn${i + 1}/moving_mean`),
        movingVariance: tf.variable(tf.ones([u]), false, `${p}/bn${i + 1}/moving_variance`),
        alpha: tf.variable(tf.fill([u], 0.25), true, `${p}/prelu${i + 1}/alpha`),
      };
    });
    const last = config.units[config.units.length - 1]!;
    this.outKernel = tf.variable(
      tf.tensor2d(glorot(rng, last, config.numClasses), [last, config.numClasses]),
      true,
      `${p}/logits/kernel`,
    );
    this.outBias = tf.variable(tf.zeros([config.numClasses]), true, `${p}/logits/bias`);
  }

  get trainableVariables(): tf.Variable[] {
    return [
      ...this.hidden.flatMap((h) => [h.kernel, h.bias, h.gamma, h.beta, h.alpha]),
      this.outKernel,
      this.outBias,
    ];
  }

  /** Every variable, moving statistics included (for snapshots and saving). */
  get allVariables(): tf.Variable[] {
    return [...this.hidden.flatMap((h) => [h.kernel, h.bias, h.gamma, h.beta, h.movingMean, h.movingVariance, h.alpha]), this.outKernel, this.outBias];
  }

  /**
   * Logits for pooled features [N, inputDim]. In training mode BatchNorm uses the batch's
   * statistics (and updates the running ones) and dropout is active.
   */
  apply(x: tf.Tensor2D, training: boolean, seed?: number): tf.Tensor2D {
    let h: tf.Tensor2D = x;
    const { bnEpsilon: eps, bnMomentum: m, dropout } = this.config;
    this.hidden.forEach((layer, i) => {
      h = tf.add(tf.matMul(h, layer.kernel), layer.bias) as tf.Tensor2D;
      if (training && h.shape[0] > 1) {
        const { mean, variance } = tf.moments(h, 0);
        tf.tidy(() => {
          layer.movingMean.assign(tf.add(tf.mul(layer.movingMean, m), tf.mul(mean, 1 - m)));
          // Keras updates the running variance with the biased batch variance as well.
          layer.movingVariance.assign(tf.add(tf.mul(layer.movingVariance, m), tf.mul(variance, 1 - m)));
        });
        h = tf.batchNorm(h, mean, variance, layer.beta, layer.gamma, eps) as tf.Tensor2D;
      } else {
        h = tf.batchNorm(h, layer.movingMean, layer.movingVariance, layer.beta, layer.gamma, eps) as tf.Tensor2D;
      }
      h = tf.prelu(h, layer.alpha as unknown as tf.Tensor2D);
      if (training && dropout > 0) h = tf.dropout(h, dropout, undefined, seed === undefined ? undefined : seed + i) as tf.Tensor2D;
    });
    return tf.add(tf.matMul(h, this.outKernel), this.outBias) as tf.Tensor2D;
  }

  /** The head as layer-graph nodes (inference mode), reading from `input`; the last node outputs logits. */
  toGraphNodes(input: string): GraphNode[] {
    const w = (v: tf.Variable): WeightTensor => ({ shape: v.shape.slice(), data: new Float32Array(v.dataSync()) });
    const nodes: GraphNode[] = [];
    let prev = input;
    this.hidden.forEach((layer, i) => {
      const k = i + 1;
      nodes.push(
        { name: `head_fc${k}`, op: { kind: 'dense', units: this.config.units[i]!, useBias: true, activation: 'linear' }, inputs: [prev], weights: { kernel: w(layer.kernel), bias: w(layer.bias) } },
        { name: `head_bn${k}`, op: { kind: 'batchNorm', epsilon: this.config.bnEpsilon }, inputs: [`head_fc${k}`], weights: { gamma: w(layer.gamma), beta: w(layer.beta), moving_mean: w(layer.movingMean), moving_variance: w(layer.movingVariance) } },
        { name: `head_prelu${k}`, op: { kind: 'prelu' }, inputs: [`head_bn${k}`], weights: { alpha: w(layer.alpha) } },
      );
      prev = `head_prelu${k}`;
    });
    nodes.push({
      name: 'head_logits',
      op: { kind: 'dense', units: this.config.numClasses, useBias: true, activation: 'linear' },
      inputs: [prev],
      weights: { kernel: w(this.outKernel), bias: w(this.outBias) },
    });
    return nodes;
  }

  dispose(): void {
    for (const v of this.allVariables) v.dispose();
  }
}
