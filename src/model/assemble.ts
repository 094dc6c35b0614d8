/**
 * Joins a backbone's frozen trunk and a bundle's trained layers into the whole classifier as one
 * layer graph (pixels -> class probabilities), ready for the ONNX emitter; optionally with
 * test-time augmentation (the image and its mirror image, logits averaged), and several such
 * classifiers joined into one ensemble graph.
 */
import { checkUniqueNames, prefixGraph, spliceGraph, truncateGraph, type GraphNode, type LayerGraph } from '../backbones/graph.js';
import type { LoadedBackbone } from '../backbones/load.js';
import type { Preprocessing } from '../backbones/registry.js';
import type { ModelBundle, TtaMode } from './bundle.js';

export { TTA_MODES, type TtaMode } from './bundle.js';

export interface AssembleOptions {
  /** End with the softmax (class probabilities, the default) or with the logits (divided by the temperature). */
  softmax?: boolean;
  /**
   * 'hflip': run the model on the input and on its left-right mirror (one batch of 2N rows) and
   * average the two logit vectors, then divide by the temperature and take the softmax.
   */
  tta?: TtaMode;
}

/** Checks that the bundle was trained on this backbone and these exact weights. */
function checkBackbone(backbone: LoadedBackbone, bundle: ModelBundle): void {
  const { manifest } = bundle;
  if (manifest.backbone.id !== backbone.spec.id) {
    throw new Error(`model was trained on backbone '${manifest.backbone.id}', not '${backbone.spec.id}'`);
  }
  if (manifest.backbone.weightsSha256 !== backbone.weightsSha256) {
    throw new Error(
      `model expects ${manifest.backbone.id} weights with digest ${manifest.backbone.weightsSha256.slice(0, 16)}…, ` +
        `but the weights found (${backbone.weights.dir}) have ${backbone.weightsSha256.slice(0, 16)}…`,
    );
  }
}

/**
 * Trunk + trained layers on normalised pixels; the logits divided by the temperature, averaged
 * over `views` stacked views when there are several, then the softmax if asked for.
 */
function classifierGraph(backbone: LoadedBackbone, bundle: ModelBundle, views: number, softmax: boolean): LayerGraph {
  checkBackbone(backbone, bundle);
  const { manifest, graph: trained } = bundle;
  const cut = manifest.backbone.cut;
  if (trained.input !== cut) throw new Error(`bundle graph starts at '${trained.input}', expected the cut '${cut}'`);
  const trunk = truncateGraph(backbone.graph, cut);
  const trunkNames = new Set(trunk.nodes.map((n) => n.name));
  let top = trained.nodes.filter((n) => n.name !== trained.input);
  const t = manifest.temperature;
  // mean(z_i) / T = mean(z_i / T): folding T into the logits layer is the same with views.
  if (t !== 1) top = top.map((n) => (n.name === trained.output ? divideLogits(n, t) : n));
  for (const n of top) {
    if (trunkNames.has(n.name)) throw new Error(`bundle layer '${n.name}' collides with a trunk layer`);
  }
  const nodes: GraphNode[] = [...trunk.nodes, ...top];
  let output = trained.output;
  if (views > 1) {
    nodes.push({ name: 'tta_mean', op: { kind: 'meanViews', views }, inputs: [output], weights: {} });
    output = 'tta_mean';
  }
  if (softmax) {
    nodes.push({ name: 'probabilities', op: { kind: 'activation', fn: 'softmax' }, inputs: [output], weights: {} });
    output = 'probabilities';
  }
  checkUniqueNames(nodes);
  return { nodes, input: trunk.input, output };
}

/** How many views of each image a TTA mode stacks. */
const TTA_VIEWS: Record<TtaMode, number> = { hflip: 2 };

/** The views of `input` that TTA runs the model on, stacked along the batch: [input; mirror(input)]. */
function ttaViews(input: string, tta: TtaMode): { nodes: GraphNode[]; output: string } {
  switch (tta) {
    case 'hflip':
      return {
        nodes: [
          { name: 'tta_flip', op: { kind: 'flipWidth' }, inputs: [input], weights: {} },
          { name: 'tta_views', op: { kind: 'concatBatch' }, inputs: [input, 'tta_flip'], weights: {} },
        ],
        output: 'tta_views',
      };
  }
}

export function assembleClassifierGraph(backbone: LoadedBackbone, bundle: ModelBundle, opts: AssembleOptions = {}): LayerGraph {
  const softmax = opts.softmax ?? true;
  if (opts.tta === undefined) return classifierGraph(backbone, bundle, 1, softmax);
  const inner = classifierGraph(backbone, bundle, TTA_VIEWS[opts.tta], softmax);
  const v = ttaViews(inner.input, opts.tta);
  const input = inner.nodes.find((n) => n.name === inner.input)!;
  // The views read the input; every layer that read the input reads the views instead.
  const nodes = [input, ...v.nodes, ...spliceGraph(inner, v.output)];
  checkUniqueNames(nodes);
  return { nodes, input: inner.input, output: inner.output };
}

/** Temperature scaling (logits / T) folded into the final dense layer: x(W/T) + b/T. */
function divideLogits(node: GraphNode, t: number): GraphNode {
  if (node.op.kind !== 'dense') throw new Error(`the logits layer '${node.name}' is not dense`);
  const weights = Object.fromEntries(
    Object.entries(node.weights).map(([k, w]) => [k, { shape: w.shape, data: w.data.map((v) => v / t) }]),
  );
  return { ...node, weights };
}

export interface EnsembleGraphMember {
  /** Used in layer names (prefix `m<i>_<name>/`) and messages. */
  name: string;
  backbone: LoadedBackbone;
  bundle: ModelBundle;
}

/**
 * The input of an ensemble graph: raw RGB pixels 0..255 at the members' common size and resize
 * policy (each member normalises them itself, inside the graph).
 */
export function rawPixelPreprocessing(size: number, resize: Preprocessing['resize']): Preprocessing {
  return { size, channelOrder: 'RGB', mean: [0, 0, 0], std: [1, 1, 1], resize };
}

/**
 * A member's preprocessing as a 1x1 convolution over raw RGB pixels: output channel c reads
 * source channel src[c] (BGR reverses RGB) and computes (x - mean[c]) / std[c].
 */
export function normalizationConv(name: string, input: string, pre: Preprocessing): GraphNode {
  const src = pre.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const kernel = new Float32Array(9); // HWIO [1, 1, 3, 3]: index i * 3 + o
  const bias = new Float32Array(3);
  for (let o = 0; o < 3; o++) {
    kernel[src[o]! * 3 + o] = 1 / pre.std[o]!;
    bias[o] = -pre.mean[o]! / pre.std[o]!;
  }
  return {
    name,
    op: { kind: 'conv2d', filters: 3, kernel: [1, 1], strides: [1, 1], dilation: [1, 1], padding: 'valid', useBias: true, activation: 'linear' },
    inputs: [input],
    weights: { kernel: { shape: [1, 1, 3, 3], data: kernel }, bias: { shape: [3], data: bias } },
  };
}

/**
 * Several classifiers as one graph: raw RGB pixels in (see rawPixelPreprocessing), the mean of
 * the members' class probabilities out. Each member normalises the pixels its own way, runs its
 * trunk and trained layers and its temperature-scaled softmax; with TTA the views are made once,
 * on the raw pixels, and each member averages its logits over them before its temperature and
 * softmax. Members must share classes (same order), input size and resize policy.
 */
export function assembleEnsembleGraph(members: readonly EnsembleGraphMember[], opts: { tta?: TtaMode } = {}): LayerGraph {
  if (members.length === 0) throw new Error('an ensemble needs at least one member');
  const first = members[0]!;
  const pre0 = first.bundle.manifest.preprocessing;
  for (const m of members) {
    const { classes, preprocessing: pre } = m.bundle.manifest;
    if (classes.join('\0') !== first.bundle.manifest.classes.join('\0')) {
      throw new Error(`ensemble member '${m.name}' has classes ${classes.join(', ')} but '${first.name}' has ${first.bundle.manifest.classes.join(', ')}`);
    }
    if (pre.size !== pre0.size || pre.resize !== pre0.resize) {
      throw new Error(`ensemble member '${m.name}' takes ${pre.size}x${pre.size} images (${pre.resize}) but '${first.name}' takes ${pre0.size}x${pre0.size} (${pre0.resize})`);
    }
  }
  const nodes: GraphNode[] = [{ name: 'pixels', op: { kind: 'input', shape: [pre0.size, pre0.size, 3] }, inputs: [], weights: {} }];
  let source = 'pixels';
  let views = 1;
  if (opts.tta !== undefined) {
    const v = ttaViews('pixels', opts.tta);
    nodes.push(...v.nodes);
    source = v.output;
    views = TTA_VIEWS[opts.tta];
  }
  const outputs: string[] = [];
  members.forEach((m, i) => {
    const prefix = `m${i}_${m.name.replace(/[^A-Za-z0-9_.-]+/g, '_')}/`;
    const g = prefixGraph(classifierGraph(m.backbone, m.bundle, views, true), prefix);
    const inputNode = g.nodes.find((n) => n.name === g.input)!;
    if (inputNode.op.kind !== 'input' || inputNode.op.shape.join() !== [pre0.size, pre0.size, 3].join()) {
      throw new Error(`ensemble member '${m.name}': its trunk does not take ${pre0.size}x${pre0.size}x3 images`);
    }
    const norm = normalizationConv(`${prefix}normalize`, source, m.bundle.manifest.preprocessing);
    nodes.push(norm, ...spliceGraph(g, norm.name));
    outputs.push(g.output);
  });
  nodes.push({ name: 'probabilities', op: { kind: 'mean' }, inputs: outputs, weights: {} });
  checkUniqueNames(nodes);
  return { nodes, input: 'pixels', output: 'probabilities' };
}
