/**
 * Parses a Keras functional model (the `modelTopology` of a TensorFlow.js layers model) plus its
 * weights into the framework-neutral layer graph. Nested models are flattened, so a backbone
 * wrapped as `Input -> model1 -> GAP` reads the same as a flat one.
 */
import type { ActivationFn, GraphNode, LayerGraph, LayerOp, Padding, WeightTensor } from './graph.js';

interface KerasLayer {
  class_name: string;
  name?: string;
  config: Record<string, unknown> & { name?: string };
  inbound_nodes?: unknown[];
}

interface KerasModelConfig {
  name?: string;
  layers: KerasLayer[];
  input_layers: [string, number, number][];
  output_layers: [string, number, number][];
}

const WEIGHT_NAMES: Partial<Record<LayerOp['kind'], string[]>> = {
  conv2d: ['kernel', 'bias'],
  depthwiseConv2d: ['depthwise_kernel', 'bias'],
  batchNorm: ['gamma', 'beta', 'moving_mean', 'moving_variance'],
  dense: ['kernel', 'bias'],
};

function pair(v: unknown, what: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0], v[1]];
  throw new Error(`unsupported ${what}: ${JSON.stringify(v)}`);
}

function activationOf(v: unknown): ActivationFn {
  if (v === undefined || v === null || v === 'linear') return 'linear';
  if (v === 'relu' || v === 'softmax') return v;
  if (v === 'relu6') return 'relu6';
  throw new Error(`unsupported activation '${String(v)}'`);
}

function paddingOf(v: unknown): Padding {
  if (v === 'same' || v === 'valid') return v;
  throw new Error(`unsupported padding '${String(v)}'`);
}

function checkChannelsLast(cfg: Record<string, unknown>, name: string): void {
  const fmt = cfg['data_format'];
  if (fmt !== undefined && fmt !== 'channels_last') throw new Error(`layer '${name}': only channels_last is supported`);
}

function opOf(layer: KerasLayer, name: string): LayerOp {
  const c = layer.config;
  checkChannelsLast(c, name);
  switch (layer.class_name) {
    case 'InputLayer': {
      const shape = c['batch_input_shape'] as (number | null)[];
      if (!Array.isArray(shape) || shape.length !== 4) throw new Error(`input '${name}' must be 4-D (N,H,W,C)`);
      return { kind: 'input', shape: [shape[1] ?? 224, shape[2] ?? 224, shape[3] ?? 3] };
    }
    case 'Conv2D':
      return {
        kind: 'conv2d',
        filters: c['filters'] as number,
        kernel: pair(c['kernel_size'], 'kernel_size'),
        strides: pair(c['strides'] ?? 1, 'strides'),
        dilation: pair(c['dilation_rate'] ?? 1, 'dilation_rate'),
        padding: paddingOf(c['padding']),
        useBias: c['use_bias'] !== false,
        activation: activationOf(c['activation']),
      };
    case 'DepthwiseConv2D':
      return {
        kind: 'depthwiseConv2d',
        kernel: pair(c['kernel_size'], 'kernel_size'),
        strides: pair(c['strides'] ?? 1, 'strides'),
        dilation: pair(c['dilation_rate'] ?? 1, 'dilation_rate'),
        padding: paddingOf(c['padding']),
        depthMultiplier: (c['depth_multiplier'] as number | undefined) ?? 1,
        useBias: c['use_bias'] !== false,
        activation: activationOf(c['activation']),
      };
    case 'BatchNormalization': {
      const axis = c['axis'];
      const ax = Array.isArray(axis) ? axis[0] : axis;
      if (ax !== -1 && ax !== 3) throw new Error(`layer '${name}': batch normalisation must be over channels`);
      return { kind: 'batchNorm', epsilon: (c['epsilon'] as number | undefined) ?? 1e-3 };
    }
    case 'Activation':
      return { kind: 'activation', fn: activationOf(c['activation']) };
    case 'ReLU': {
      const max = c['max_value'];
      const slope = c['negative_slope'];
      const threshold = c['threshold'];
      if ((slope !== undefined && slope !== 0) || (threshold !== undefined && threshold !== 0)) {
        throw new Error(`layer '${name}': leaky or thresholded ReLU is not supported`);
      }
      if (max === undefined || max === null) return { kind: 'activation', fn: 'relu' };
      if (max === 6) return { kind: 'activation', fn: 'relu6' };
      throw new Error(`layer '${name}': ReLU max_value ${String(max)} is not supported`);
    }
    case 'ZeroPadding2D': {
      const p = c['padding'];
      if (typeof p === 'number') return { kind: 'zeroPad', pads: [[p, p], [p, p]] };
      if (Array.isArray(p) && typeof p[0] === 'number') {
        const [h, w] = pair(p, 'padding');
        return { kind: 'zeroPad', pads: [[h, h], [w, w]] };
      }
      const pp = p as [[number, number], [number, number]];
      return { kind: 'zeroPad', pads: [[pp[0][0], pp[0][1]], [pp[1][0], pp[1][1]]] };
    }
    case 'MaxPooling2D':
      return {
        kind: 'maxPool',
        pool: pair(c['pool_size'], 'pool_size'),
        strides: pair(c['strides'] ?? c['pool_size'], 'strides'),
        padding: paddingOf(c['padding']),
      };
    case 'Add':
      return { kind: 'add' };
    case 'GlobalAveragePooling2D':
      return { kind: 'globalAvgPool' };
    case 'Dense':
      return {
        kind: 'dense',
        units: c['units'] as number,
        useBias: c['use_bias'] !== false,
        activation: activationOf(c['activation']),
      };
    default:
      throw new Error(`layer '${name}': Keras layer type ${layer.class_name} is not supported`);
  }
}

/** Inbound layer names of a layer's first call (shared layers are not used by our backbones). */
function inboundNames(layer: KerasLayer): string[] {
  const calls = layer.inbound_nodes ?? [];
  if (calls.length === 0) return [];
  const first = calls[0];
  // Keras 2 format: [[name, nodeIndex, tensorIndex, kwargs], ...]
  if (Array.isArray(first)) return first.map((t) => (t as [string])[0]);
  throw new Error(`layer '${layer.name ?? layer.config.name}': unsupported inbound_nodes format`);
}

function modelConfigOf(topology: unknown): KerasModelConfig {
  const t = topology as Record<string, unknown>;
  const mc = (t['model_config'] ?? t) as { class_name?: string; config?: KerasModelConfig };
  if (!mc.config || !Array.isArray(mc.config.layers)) throw new Error('model.json has no functional model topology');
  return mc.config;
}

/**
 * Flattens one functional model. `aliases` maps a name to the node that produces it (used for
 * nested-model inputs and outputs); returns the graph's nodes and its output node name.
 */
function flatten(
  cfg: KerasModelConfig,
  weights: Map<string, WeightTensor>,
  nodes: GraphNode[],
  aliases: Map<string, string>,
  outerInput: string | undefined,
): string {
  const resolve = (n: string): string => aliases.get(n) ?? n;
  for (const layer of cfg.layers) {
    const name = layer.name ?? layer.config.name;
    if (!name) throw new Error('a layer has no name');
    if (layer.class_name === 'Model' || layer.class_name === 'Functional') {
      const inner = layer.config as unknown as KerasModelConfig;
      const ins = inboundNames(layer).map(resolve);
      if (ins.length !== 1) throw new Error(`nested model '${name}' must have one input`);
      const out = flatten(inner, weights, nodes, aliases, ins[0]);
      aliases.set(name, out);
      continue;
    }
    if (layer.class_name === 'InputLayer' && outerInput !== undefined) {
      aliases.set(name, outerInput);
      continue;
    }
    if (layer.class_name === 'Dropout' || layer.class_name === 'Flatten') {
      // Identity at inference (Flatten only ever follows global pooling in supported models).
      aliases.set(name, resolve(inboundNames(layer)[0]!));
      continue;
    }
    const op = opOf(layer, name);
    const nodeWeights: Record<string, WeightTensor> = {};
    for (const w of WEIGHT_NAMES[op.kind] ?? []) {
      const t = weights.get(`${name}/${w}`);
      if (t) nodeWeights[w] = t;
    }
    if (op.kind === 'conv2d' || op.kind === 'dense') {
      if (!nodeWeights['kernel']) throw new Error(`weights for '${name}/kernel' are missing`);
      if (op.useBias && !nodeWeights['bias']) throw new Error(`weights for '${name}/bias' are missing`);
    }
    if (op.kind === 'depthwiseConv2d' && !nodeWeights['depthwise_kernel']) {
      throw new Error(`weights for '${name}/depthwise_kernel' are missing`);
    }
    if (op.kind === 'batchNorm' && (!nodeWeights['moving_mean'] || !nodeWeights['moving_variance'])) {
      throw new Error(`moving statistics for '${name}' are missing`);
    }
    if (nodes.some((n) => n.name === name)) throw new Error(`duplicate layer name '${name}'`);
    nodes.push({ name, op, inputs: inboundNames(layer).map(resolve), weights: nodeWeights });
  }
  const outs = cfg.output_layers.map((o) => resolve(o[0]));
  if (outs.length !== 1) throw new Error('only single-output models are supported');
  return outs[0]!;
}

/** Builds the layer graph of a Keras functional model from a tfjs layers model's topology and weights. */
export function kerasToLayerGraph(topology: unknown, weights: Map<string, WeightTensor>): LayerGraph {
  const cfg = modelConfigOf(topology);
  const nodes: GraphNode[] = [];
  const output = flatten(cfg, weights, nodes, new Map(), undefined);
  const inputs = nodes.filter((n) => n.op.kind === 'input');
  if (inputs.length !== 1) throw new Error(`expected one input layer, found ${inputs.length}`);
  return { nodes, input: inputs[0]!.name, output };
}
