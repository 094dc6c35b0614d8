/**
 * Multiply-accumulates of a layer graph per image, for benchmarks: how much arithmetic the
 * network does, so a measured speed can be compared with what the CPU could do at best.
 * Only convolutions and dense layers are counted (everything else is a rounding error next to
 * them, and is memory-bound rather than arithmetic-bound anyway).
 */
import { inferShapes, type LayerGraph } from './graph.js';

export interface MacCount {
  /** Multiply-accumulates per image (conv2d + depthwiseConv2d + dense). */
  macs: number;
  /** Floating-point operations per image: 2 per multiply-accumulate. */
  flops: number;
  /** MACs per op kind. */
  byKind: { conv2d: number; depthwiseConv2d: number; dense: number };
}

/** MACs per image of `graph` at the input size fixed by its input node. */
export function countMacs(graph: LayerGraph): MacCount {
  const shapes = inferShapes(graph);
  const byKind = { conv2d: 0, depthwiseConv2d: 0, dense: 0 };
  const channelsIn = (name: string): number => {
    const s = shapes.get(name)!;
    return s[s.length - 1]!;
  };
  for (const node of graph.nodes) {
    const op = node.op;
    if (op.kind === 'conv2d') {
      const [h, w, c] = shapes.get(node.name) as [number, number, number];
      byKind.conv2d += h * w * c * op.kernel[0] * op.kernel[1] * channelsIn(node.inputs[0]!);
    } else if (op.kind === 'depthwiseConv2d') {
      // Each output channel reads one input channel.
      const [h, w, c] = shapes.get(node.name) as [number, number, number];
      byKind.depthwiseConv2d += h * w * c * op.kernel[0] * op.kernel[1];
    } else if (op.kind === 'dense') {
      byKind.dense += channelsIn(node.inputs[0]!) * op.units;
    }
  }
  const macs = byKind.conv2d + byKind.depthwiseConv2d + byKind.dense;
  return { macs, flops: 2 * macs, byKind };
}
