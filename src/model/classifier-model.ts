/**
 * The trainable part of a classifier: the fine-tuned top blocks of the backbone (optional) +
 * global average pooling + the custom head. Input: trunk activations at the cut.
 */
import * as tf from '@tensorflow/tfjs-core';
import { sliceGraph, type GraphNode, type LayerGraph } from '../backbones/graph.js';
import { createGraphModule, type GraphModule } from './graph-tfjs.js';
import { ClassifierHead, type HeadConfig } from './head.js';
import type { Rng } from '../util/rng.js';

export interface ClassifierModelOptions {
  /** The backbone's full graph, the cut layer and the last spatial layer. */
  backboneGraph: LayerGraph;
  cut: string;
  featureLayer: string;
  /** Shape [H, W, C] of the cut layer's output. */
  cutShape: [number, number, number];
  /** Trunk output per image: [H, W, C] at the cut, or [C] when the trunk already pools. */
  featureShape: number[];
  head: Omit<HeadConfig, 'inputDim'>;
  rng: Rng;
}

export class ClassifierModel {
  readonly top: GraphModule | undefined;
  readonly head: ClassifierHead;
  readonly featureShape: number[];
  readonly cut: string;
  /** Width of the head's input: the pooled output of the top blocks (or the pooled trunk). */
  readonly headInputDim: number;
  private readonly cutShape: [number, number, number];

  constructor(opts: ClassifierModelOptions) {
    this.cut = opts.cut;
    this.cutShape = opts.cutShape;
    this.featureShape = opts.featureShape;
    let inputDim: number;
    if (opts.featureShape.length === 3) {
      const [h, w, c] = opts.featureShape as [number, number, number];
      const sliced = sliceGraph(opts.backboneGraph, opts.cut, opts.featureLayer, [h, w, c]);
      const gap: GraphNode = { name: 'head_gap', op: { kind: 'globalAvgPool' }, inputs: [opts.featureLayer], weights: {} };
      this.top = createGraphModule({ nodes: [...sliced.nodes, gap], input: sliced.input, output: 'head_gap' }, { trainable: true });
      const out = opts.backboneGraph.nodes.find((n) => n.name === opts.featureLayer);
      inputDim = out?.op.kind === 'conv2d' ? out.op.filters : -1;
      if (inputDim < 0) inputDim = this.probeWidth();
    } else {
      this.top = undefined;
      inputDim = opts.featureShape[0]!;
    }
    this.headInputDim = inputDim;
    this.head = new ClassifierHead({ ...opts.head, inputDim }, opts.rng);
  }

  private probeWidth(): number {
    return tf.tidy(() => {
      const y = this.top!.apply(tf.zeros([1, ...this.featureShape] as [number, number, number, number]));
      return y.shape[1]!;
    });
  }

  /** Trainable variables of the top blocks (to be stepped with a smaller learning rate). */
  get topVariables(): tf.Variable[] {
    return this.top?.trainableVariables ?? [];
  }

  get trainableVariables(): tf.Variable[] {
    return [...this.topVariables, ...this.head.trainableVariables];
  }

  /** Everything that defines the model's outputs (for snapshots). */
  get stateVariables(): tf.Variable[] {
    return [...this.topVariables, ...this.head.allVariables];
  }

  /** Logits for a batch of trunk outputs. */
  forward(x: tf.Tensor, training: boolean, seed?: number): tf.Tensor2D {
    const pooled = this.top ? (this.top.apply(x as tf.Tensor4D) as tf.Tensor2D) : (x as tf.Tensor2D);
    return this.head.apply(pooled, training, seed);
  }

  /**
   * The trained layers as a layer graph: input = the cut layer, output = logits. Joined to the
   * backbone trunk it forms the whole classifier (see model/assemble.ts).
   */
  toGraph(): LayerGraph {
    if (this.top) {
      const top = this.top.exportWeights();
      const nodes = [...top.nodes, ...this.head.toGraphNodes(top.output)];
      return { nodes, input: top.input, output: nodes[nodes.length - 1]!.name };
    }
    // Nothing of the backbone is trained (the trunk pooled for speed): cut -> GAP -> head.
    const input: GraphNode = { name: this.cut, op: { kind: 'input', shape: this.cutShape }, inputs: [], weights: {} };
    const gap: GraphNode = { name: 'head_gap', op: { kind: 'globalAvgPool' }, inputs: [this.cut], weights: {} };
    const nodes = [input, gap, ...this.head.toGraphNodes(gap.name)];
    return { nodes, input: input.name, output: nodes[nodes.length - 1]!.name };
  }

  dispose(): void {
    this.top?.dispose();
    this.head.dispose();
  }
}
