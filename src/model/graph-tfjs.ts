/**
 * Runs a layer graph with @tensorflow/tfjs-core ops (NHWC, Keras weight layouts as-is), used to
 * train the top blocks. BatchNorm always runs in inference mode with frozen statistics and
 * frozen gamma/beta: fine-tuning on a few hundred images would only make the stats noisy.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ActivationFn, GraphNode, LayerGraph, WeightTensor } from '../backbones/graph.js';
import { batchNormAffine } from '../onnx/from-graph.js';

export interface GraphModuleOptions {
  /** Whether conv / depthwise / dense kernels and biases (and PReLU slopes) become trainable variables. */
  trainable: boolean;
}

export interface GraphModule {
  /** The graph's output for an NHWC batch; a pure function of `x` and the module's variables. */
  apply(x: tf.Tensor4D): tf.Tensor;
  /** Kernels, biases and PReLU slopes (empty when not trainable). */
  readonly trainableVariables: tf.Variable[];
  /** A copy of the graph with the current variable values written into the nodes' weights. */
  exportWeights(): LayerGraph;
  dispose(): void;
}

type FusedActivation = 'linear' | 'relu' | 'relu6';

/** The tfjs tensors one node needs, built once. */
interface NodeParams {
  /** Keyed by the Keras weight name, so exportWeights can write them back. */
  learned: Map<string, tf.Tensor>;
  /** batchNorm as y = x * scale + shift. */
  scale?: tf.Tensor1D;
  shift?: tf.Tensor1D;
}

const LEARNED: Record<string, readonly string[]> = {
  conv2d: ['kernel', 'bias'],
  depthwiseConv2d: ['depthwise_kernel', 'bias'],
  dense: ['kernel', 'bias'],
  prelu: ['alpha'],
};

function activate(x: tf.Tensor, fn: ActivationFn): tf.Tensor {
  switch (fn) {
    case 'linear':
      return x;
    case 'relu':
      return tf.relu(x);
    case 'relu6':
      return tf.relu6(x);
    case 'softmax':
      return tf.softmax(x); // last axis = channels in NHWC
  }
}

/** Splits an activation into the part tfjs can fuse into conv/matMul and the rest. */
function fusable(fn: ActivationFn): [FusedActivation, ActivationFn] {
  return fn === 'softmax' ? ['linear', 'softmax'] : [fn, 'linear'];
}

export function createGraphModule(graph: LayerGraph, opts: GraphModuleOptions): GraphModule {
  const params = new Map<string, NodeParams>();
  const variables: tf.Variable[] = [];
  const owned: tf.Tensor[] = [];

  for (const node of graph.nodes) {
    const p: NodeParams = { learned: new Map() };
    for (const key of LEARNED[node.op.kind] ?? []) {
      const w = node.weights[key];
      if (!w) continue;
      const t = tf.tensor(w.data, w.shape, 'float32');
      if (opts.trainable) {
        // Unnamed: tfjs variable names are global, and one graph may back several modules.
        const v = tf.variable(t, true);
        t.dispose();
        variables.push(v);
        p.learned.set(key, v);
      } else {
        owned.push(tf.keep(t)); // survives a tf.tidy the module may be created in
        p.learned.set(key, t);
      }
    }
    if (node.op.kind === 'batchNorm') {
      const { scale, shift } = batchNormAffine(node);
      p.scale = tf.keep(tf.tensor1d(Float32Array.from(scale)));
      p.shift = tf.keep(tf.tensor1d(Float32Array.from(shift)));
      owned.push(p.scale, p.shift);
    }
    params.set(node.name, p);
  }

  const learned = (node: GraphNode, key: string): tf.Tensor => {
    const t = params.get(node.name)!.learned.get(key);
    if (!t) throw new Error(`layer '${node.name}' has no weight '${key}'`);
    return t;
  };
  const bias = (node: GraphNode, useBias: boolean): tf.Tensor | undefined =>
    useBias ? learned(node, 'bias') : undefined;

  const run = (node: GraphNode, inputs: tf.Tensor[]): tf.Tensor => {
    const op = node.op;
    const x = inputs[0]!;
    switch (op.kind) {
      case 'input':
        throw new Error('unreachable: input nodes are not run');
      case 'conv2d':
      case 'depthwiseConv2d': {
        // The two convolutions differ only in the tfjs op and the name of their kernel weight.
        const [conv, kernel] = op.kind === 'conv2d' ? [tf.fused.conv2d, 'kernel'] : [tf.fused.depthwiseConv2d, 'depthwise_kernel'];
        const [fused, rest] = fusable(op.activation);
        const y = conv({
          x: x as tf.Tensor4D,
          filter: learned(node, kernel) as tf.Tensor4D,
          strides: op.strides,
          pad: op.padding,
          dataFormat: 'NHWC',
          dilations: op.dilation,
          bias: bias(node, op.useBias),
          activation: fused,
        });
        return activate(y, rest);
      }
      case 'batchNorm': {
        const p = params.get(node.name)!;
        return tf.add(tf.mul(x, p.scale!), p.shift!);
      }
      case 'activation':
        return activate(x, op.fn);
      case 'zeroPad':
        return tf.pad(x, [[0, 0], op.pads[0], op.pads[1], [0, 0]]);
      case 'maxPool':
        return tf.maxPool(x as tf.Tensor4D, op.pool, op.strides, op.padding);
      case 'add':
        return tf.add(x, inputs[1]!);
      case 'prelu':
        // alpha [C] (or Keras' [1, 1, C]) broadcasts over the last axis.
        return tf.prelu(x, learned(node, 'alpha'));
      case 'globalAvgPool':
        return tf.mean(x, [1, 2]);
      case 'dense': {
        if (x.rank !== 2) throw new Error(`dense layer '${node.name}' needs a 2-D input, got rank ${x.rank}`);
        const [fused, rest] = fusable(op.activation);
        const y = tf.fused.matMul({ a: x, b: learned(node, 'kernel'), bias: bias(node, op.useBias), activation: fused });
        return activate(y, rest);
      }
      case 'flipWidth':
        return tf.reverse(x, 2);
      case 'concatBatch':
        return tf.concat(inputs, 0);
      case 'meanViews':
        return tf.mean(tf.reshape(x, [op.views, -1, ...x.shape.slice(1)]), 0);
      case 'mean':
        return inputs.length === 1 ? x : tf.div(tf.addN(inputs), inputs.length);
    }
    const unknown: never = op;
    throw new Error(`unsupported layer op ${JSON.stringify(unknown)}`);
  };

  const inputNode = graph.nodes.find((n) => n.name === graph.input);
  if (!inputNode || inputNode.op.kind !== 'input') throw new Error(`graph input '${graph.input}' is not an input node`);
  const inputChannels = inputNode.op.shape[2];

  return {
    apply(x: tf.Tensor4D): tf.Tensor {
      if (x.rank !== 4 || x.shape[3] !== inputChannels) {
        throw new Error(`expected an NHWC batch with ${inputChannels} channels, got shape [${x.shape.join(',')}]`);
      }
      return tf.tidy(() => {
        const values = new Map<string, tf.Tensor>([[graph.input, x]]);
        for (const node of graph.nodes) {
          if (node.name === graph.input) continue;
          const inputs = node.inputs.map((name) => {
            const v = values.get(name);
            if (!v) throw new Error(`layer '${name}' is used before it is computed`);
            return v;
          });
          values.set(node.name, run(node, inputs));
        }
        return values.get(graph.output)!;
      });
    },
    trainableVariables: variables,
    exportWeights(): LayerGraph {
      const nodes = graph.nodes.map((node): GraphNode => {
        const weights: Record<string, WeightTensor> = {};
        for (const [key, w] of Object.entries(node.weights)) {
          const t = params.get(node.name)!.learned.get(key);
          const data = t ? (t.dataSync() as Float32Array) : w.data;
          weights[key] = { shape: [...w.shape], data: new Float32Array(data) };
        }
        return { name: node.name, op: structuredClone(node.op), inputs: [...node.inputs], weights };
      });
      return { nodes, input: graph.input, output: graph.output };
    },
    dispose(): void {
      for (const v of variables) v.dispose();
      for (const t of owned) t.dispose();
      variables.length = 0;
      owned.length = 0;
    },
  };
}
