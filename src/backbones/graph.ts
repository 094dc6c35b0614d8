/**
 * A backbone as a small, framework-neutral layer graph (the IR).
 *
 * Keras layers models (tfjs `model.json` + weight shards) are parsed into this form once; two
 * emitters consume it: `onnx/from-graph.ts` (the frozen trunk, and later the whole exported
 * classifier) and `model/graph-tfjs.ts` (the trainable top, run by tfjs). Tensors are NHWC and
 * weights keep Keras layouts (conv kernels HWIO, depthwise kernels HWC1, dense kernels IO).
 */

export type Padding = 'same' | 'valid';
export type ActivationFn = 'linear' | 'relu' | 'relu6' | 'softmax';

export type LayerOp =
  | { kind: 'input'; shape: [number, number, number] }
  | {
      kind: 'conv2d';
      filters: number;
      kernel: [number, number];
      strides: [number, number];
      dilation: [number, number];
      padding: Padding;
      useBias: boolean;
      activation: ActivationFn;
    }
  | {
      kind: 'depthwiseConv2d';
      kernel: [number, number];
      strides: [number, number];
      dilation: [number, number];
      padding: Padding;
      depthMultiplier: number;
      useBias: boolean;
      activation: ActivationFn;
    }
  /** Inference-mode batch normalisation: (x - moving_mean) / sqrt(moving_variance + eps) * gamma + beta. */
  | { kind: 'batchNorm'; epsilon: number }
  | { kind: 'activation'; fn: ActivationFn }
  /** [[top, bottom], [left, right]] zeros. */
  | { kind: 'zeroPad'; pads: [[number, number], [number, number]] }
  | { kind: 'maxPool'; pool: [number, number]; strides: [number, number]; padding: Padding }
  | { kind: 'add' }
  | { kind: 'globalAvgPool' }
  | { kind: 'dense'; units: number; useBias: boolean; activation: ActivationFn }
  /** Parametric ReLU with one learned slope per channel (last axis): weight `alpha` of shape [C]. */
  | { kind: 'prelu' }
  /** Mirror image: reverses the width axis of an image tensor (left-right flip). */
  | { kind: 'flipWidth' }
  /**
   * Test-time views: stacks its k inputs (same per-image shape) along the batch axis, so a batch of
   * N becomes k*N rows (input i at rows i*N .. i*N+N-1) and the layers after it run once on all views.
   */
  | { kind: 'concatBatch' }
  /**
   * The inverse of `concatBatch` followed by averaging: a batch of views*N rows -> N rows, row j the
   * mean of rows j, N+j, ..., (views-1)*N+j.
   */
  | { kind: 'meanViews'; views: number }
  /** Elementwise mean of its inputs (same shape), e.g. an ensemble's class probabilities. */
  | { kind: 'mean' };

export type OpKind = LayerOp['kind'];

export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}

/**
 * Weight names per op kind (Keras names): conv2d `kernel`, `bias`; depthwiseConv2d
 * `depthwise_kernel`, `bias`; batchNorm `gamma`, `beta`, `moving_mean`, `moving_variance`
 * (gamma/beta may be absent: then 1/0); dense `kernel`, `bias`; prelu `alpha`.
 */
export interface GraphNode {
  name: string;
  op: LayerOp;
  /** Names of the nodes whose outputs feed this one (two for `add`, any number for `concatBatch` / `mean`, none for `input`). */
  inputs: string[];
  weights: Record<string, WeightTensor>;
}

/** Nodes in topological order; exactly one input node and one output. */
export interface LayerGraph {
  nodes: GraphNode[];
  input: string;
  output: string;
}

/** Names of all nodes that `output` depends on, itself included. */
function ancestors(graph: LayerGraph, output: string): Set<string> {
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const seen = new Set<string>();
  const stack = [output];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (seen.has(name)) continue;
    const node = byName.get(name);
    if (!node) throw new Error(`layer '${name}' is not in the graph`);
    seen.add(name);
    stack.push(...node.inputs);
  }
  return seen;
}

/**
 * The part of `graph` from the output of `from` (exclusive; it becomes a new input node of the
 * given shape) up to `to` (inclusive). Throws if anything between them reaches back past `from`,
 * which would make the cut invalid (a skip connection crossing it).
 */
export function sliceGraph(
  graph: LayerGraph,
  from: string,
  to: string,
  inputShape: [number, number, number],
): LayerGraph {
  const needed = ancestors(graph, to);
  if (!needed.has(from)) throw new Error(`layer '${to}' does not depend on '${from}'`);
  const upstreamOfCut = ancestors(graph, from);
  const nodes: GraphNode[] = [{ name: from, op: { kind: 'input', shape: inputShape }, inputs: [], weights: {} }];
  for (const node of graph.nodes) {
    if (!needed.has(node.name) || upstreamOfCut.has(node.name)) continue;
    for (const inp of node.inputs) {
      if (upstreamOfCut.has(inp) && inp !== from) {
        throw new Error(`cannot cut at '${from}': '${node.name}' also reads '${inp}' from before the cut`);
      }
    }
    nodes.push(node);
  }
  return { nodes, input: from, output: to };
}

/** The graph up to and including `to` (inputs unchanged). */
export function truncateGraph(graph: LayerGraph, to: string): LayerGraph {
  const needed = ancestors(graph, to);
  return { nodes: graph.nodes.filter((n) => needed.has(n.name)), input: graph.input, output: to };
}

/** Output shape (H, W, C) of every node, for a fixed input size. */
export function inferShapes(graph: LayerGraph): Map<string, [number, number, number] | [number]> {
  const shapes = new Map<string, [number, number, number] | [number]>();
  const spatial = (name: string): [number, number, number] => {
    const s = shapes.get(name);
    if (!s || s.length !== 3) throw new Error(`layer '${name}' has no spatial output`);
    return s;
  };
  const outSize = (n: number, k: number, s: number, d: number, p: Padding): number =>
    p === 'same' ? Math.ceil(n / s) : Math.floor((n - (k - 1) * d - 1) / s) + 1;
  for (const node of graph.nodes) {
    const op = node.op;
    switch (op.kind) {
      case 'input':
        shapes.set(node.name, op.shape);
        break;
      case 'conv2d':
      case 'depthwiseConv2d': {
        const [h, w, c] = spatial(node.inputs[0]!);
        const ch = op.kind === 'conv2d' ? op.filters : c * op.depthMultiplier;
        shapes.set(node.name, [
          outSize(h, op.kernel[0], op.strides[0], op.dilation[0], op.padding),
          outSize(w, op.kernel[1], op.strides[1], op.dilation[1], op.padding),
          ch,
        ]);
        break;
      }
      case 'maxPool': {
        const [h, w, c] = spatial(node.inputs[0]!);
        shapes.set(node.name, [
          outSize(h, op.pool[0], op.strides[0], 1, op.padding),
          outSize(w, op.pool[1], op.strides[1], 1, op.padding),
          c,
        ]);
        break;
      }
      case 'zeroPad': {
        const [h, w, c] = spatial(node.inputs[0]!);
        shapes.set(node.name, [h + op.pads[0][0] + op.pads[0][1], w + op.pads[1][0] + op.pads[1][1], c]);
        break;
      }
      case 'globalAvgPool':
        shapes.set(node.name, [spatial(node.inputs[0]!)[2]]);
        break;
      case 'dense':
        shapes.set(node.name, [op.units]);
        break;
      case 'flipWidth':
        shapes.set(node.name, spatial(node.inputs[0]!));
        break;
      case 'concatBatch':
      case 'mean': {
        if (node.inputs.length < 1) throw new Error(`layer '${node.name}' has no inputs`);
        const first = shapes.get(node.inputs[0]!)!;
        for (const inp of node.inputs) {
          const s = shapes.get(inp);
          if (!s || s.join() !== first.join()) {
            throw new Error(`layer '${node.name}': input '${inp}' has shape [${s?.join(', ') ?? '?'}], not [${first.join(', ')}]`);
          }
        }
        shapes.set(node.name, first);
        break;
      }
      case 'meanViews':
        if (!Number.isInteger(op.views) || op.views < 1) throw new Error(`layer '${node.name}': views must be a positive integer`);
        shapes.set(node.name, shapes.get(node.inputs[0]!)!);
        break;
      case 'batchNorm':
      case 'activation':
      case 'prelu':
      case 'add':
        shapes.set(node.name, shapes.get(node.inputs[0]!)!);
        break;
    }
  }
  return shapes;
}

/**
 * `graph` with every node name (and every reference to one) prefixed, so that several graphs can
 * be joined into one without their layer names colliding.
 */
export function prefixGraph(graph: LayerGraph, prefix: string): LayerGraph {
  const p = (name: string): string => prefix + name;
  return {
    nodes: graph.nodes.map((n) => ({ ...n, name: p(n.name), inputs: n.inputs.map(p) })),
    input: p(graph.input),
    output: p(graph.output),
  };
}

/**
 * The nodes of `graph` without its input node, reading `source` wherever they read the input:
 * the graph spliced onto the output of another node.
 */
export function spliceGraph(graph: LayerGraph, source: string): GraphNode[] {
  return graph.nodes
    .filter((n) => n.name !== graph.input)
    .map((n) => (n.inputs.includes(graph.input) ? { ...n, inputs: n.inputs.map((i) => (i === graph.input ? source : i)) } : n));
}

/** Throws if two nodes share a name (joined graphs must not collide). */
export function checkUniqueNames(nodes: readonly GraphNode[]): void {
  const seen = new Set<string>();
  for (const n of nodes) {
    if (seen.has(n.name)) throw new Error(`layer name '${n.name}' is used twice`);
    seen.add(n.name);
  }
}
