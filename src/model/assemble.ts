/**
 * Joins a backbone's frozen trunk and a bundle's trained layers into the whole classifier as one
 * layer graph (pixels -> class probabilities), ready for the ONNX emitter.
 */
import { truncateGraph, type GraphNode, type LayerGraph } from '../backbones/graph.js';
import type { LoadedBackbone } from '../backbones/load.js';
import type { ModelBundle } from './bundle.js';

export function assembleClassifierGraph(backbone: LoadedBackbone, bundle: ModelBundle, opts: { softmax?: boolean } = {}): LayerGraph {
  const { manifest, graph: trained } = bundle;
  if (manifest.backbone.id !== backbone.spec.id) {
    throw new Error(`model was trained on backbone '${manifest.backbone.id}', not '${backbone.spec.id}'`);
  }
  if (manifest.backbone.weightsSha256 !== backbone.weightsSha256) {
    throw new Error(
      `model expects ${manifest.backbone.id} weights with digest ${manifest.backbone.weightsSha256.slice(0, 16)}…, ` +
        `but the weights found (${backbone.weights.dir}) have ${backbone.weightsSha256.slice(0, 16)}…`,
    );
  }
  const cut = manifest.backbone.cut;
  if (trained.input !== cut) throw new Error(`bundle graph starts at '${trained.input}', expected the cut '${cut}'`);
  const trunk = truncateGraph(backbone.graph, cut);
  const trunkNames = new Set(trunk.nodes.map((n) => n.name));
  let top = trained.nodes.filter((n) => n.name !== trained.input);
  const t = manifest.temperature;
  if (t !== 1) top = top.map((n) => (n.name === trained.output ? divideLogits(n, t) : n));
  for (const n of top) {
    if (trunkNames.has(n.name)) throw new Error(`bundle layer '${n.name}' collides with a trunk layer`);
  }
  const nodes: GraphNode[] = [...trunk.nodes, ...top];
  let output = trained.output;
  if (opts.softmax ?? true) {
    nodes.push({ name: 'probabilities', op: { kind: 'activation', fn: 'softmax' }, inputs: [output], weights: {} });
    output = 'probabilities';
  }
  return { nodes, input: trunk.input, output };
}

/** Temperature scaling (logits / T) folded into the final dense layer: x(W/T) + b/T. */
function divideLogits(node: GraphNode, t: number): GraphNode {
  if (node.op.kind !== 'dense') throw new Error(`the logits layer '${node.name}' is not dense`);
  const weights = Object.fromEntries(
    Object.entries(node.weights).map(([k, w]) => [k, { shape: w.shape, data: w.data.map((v) => v / t) }]),
  );
  return { ...node, weights };
}
