/**
 * The frozen part of a backbone, run by ONNX Runtime: normalised NCHW pixels in, NHWC
 * activations at the cut (or pooled features when nothing above the cut is trained) out.
 */
import * as ort from 'onnxruntime-node';
import { inferShapes, truncateGraph, type LayerGraph } from '../backbones/graph.js';
import type { LoadedBackbone } from '../backbones/load.js';
import { buildTrunkModel } from '../onnx/from-graph.js';

export interface TrunkOptions {
  /** Layer whose output the trunk returns. */
  cut: string;
  /** Append global average pooling (used when no backbone block is fine-tuned). */
  pool: boolean;
  /** ONNX Runtime intra-op threads (default: all cores). */
  threads?: number;
}

export class Trunk {
  /** Per-image output shape: [H, W, C] or [C] when pooled. */
  readonly outputShape: number[];
  readonly outputSize: number;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputSize: number,
    outputShape: number[],
  ) {
    this.outputShape = outputShape;
    this.outputSize = outputShape.reduce((a, b) => a * b, 1);
  }

  static async create(backbone: LoadedBackbone, opts: TrunkOptions): Promise<Trunk> {
    let graph: LayerGraph = truncateGraph(backbone.graph, opts.cut);
    if (opts.pool) {
      graph = {
        nodes: [...graph.nodes, { name: `${opts.cut}_gap`, op: { kind: 'globalAvgPool' }, inputs: [opts.cut], weights: {} }],
        input: graph.input,
        output: `${opts.cut}_gap`,
      };
    }
    const shapes = inferShapes(graph);
    const inShape = shapes.get(graph.input)!;
    const bytes = buildTrunkModel(graph, { outputLayout: 'NHWC' });
    const session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: opts.threads ?? 0,
      graphOptimizationLevel: 'all',
      // Decoding and augmentation (sharp) run beside the trunk: idle ORT threads must sleep, not spin.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    return new Trunk(session, inShape[0], [...shapes.get(graph.output)!]);
  }

  /** Runs `n` images (NCHW, normalised) and returns n * outputSize floats. */
  async run(pixels: Float32Array, n: number): Promise<Float32Array> {
    const s = this.inputSize;
    if (pixels.length !== n * 3 * s * s) throw new Error(`trunk expects ${n}x3x${s}x${s} values, got ${pixels.length}`);
    const out = await this.session.run({ input: new ort.Tensor('float32', pixels, [n, 3, s, s]) });
    const t = out['output'];
    if (!t) throw new Error('trunk produced no output');
    const data = t.data as Float32Array;
    t.dispose();
    return data;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
