/**
 * Emits a layer graph (NHWC IR, Keras weight layouts) as ONNX nodes working on NCHW tensors,
 * the layout ONNX Runtime's CPU kernels are fastest in.
 */
import { inferShapes, type ActivationFn, type GraphNode, type LayerGraph, type Padding, type WeightTensor } from '../backbones/graph.js';
import { OnnxGraphBuilder, float, type Dim } from './builder.js';

export interface EmitOptions {
  /**
   * Fold an inference-mode batchNorm into the conv / depthwise conv feeding it (when that conv
   * has no activation and nothing else reads its output). Default true.
   */
  foldBatchNorm?: boolean;
}

/** TensorFlow 'same' padding along one axis: [before, after], the odd pixel going after. */
function samePads(inSize: number, outSize: number, k: number, s: number, d: number): [number, number] {
  const total = Math.max((outSize - 1) * s + (k - 1) * d + 1 - inSize, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/** ONNX `pads` = [top, left, bottom, right] for a 2-D window op. */
function windowPads(
  padding: Padding,
  inHW: [number, number],
  outHW: [number, number],
  kernel: [number, number],
  strides: [number, number],
  dilation: [number, number],
): number[] {
  if (padding === 'valid') return [0, 0, 0, 0];
  const [t, b] = samePads(inHW[0], outHW[0], kernel[0], strides[0], dilation[0]);
  const [l, r] = samePads(inHW[1], outHW[1], kernel[1], strides[1], dilation[1]);
  return [t, l, b, r];
}

function weight(node: GraphNode, key: string): WeightTensor {
  const w = node.weights[key];
  if (!w) throw new Error(`layer '${node.name}' has no weight '${key}'`);
  return w;
}

/**
 * Per-channel affine form of an inference batchNorm: y = x * scale + shift. The one place the
 * batch-norm statistics are folded: the ONNX emitter here and the tfjs runner (model/graph-tfjs.ts).
 */
export function batchNormAffine(node: GraphNode): { scale: Float64Array; shift: Float64Array } {
  if (node.op.kind !== 'batchNorm') throw new Error(`layer '${node.name}' is not a batchNorm`);
  const mean = weight(node, 'moving_mean').data;
  const variance = weight(node, 'moving_variance').data;
  const gamma = node.weights['gamma']?.data;
  const beta = node.weights['beta']?.data;
  const c = mean.length;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  for (let i = 0; i < c; i++) {
    scale[i] = (gamma ? gamma[i]! : 1) / Math.sqrt(variance[i]! + node.op.epsilon);
    shift[i] = (beta ? beta[i]! : 0) - mean[i]! * scale[i]!;
  }
  return { scale, shift };
}

/** HWIO [kh, kw, ci, co] -> OIHW [co, ci, kh, kw]. */
function convKernelOIHW(w: WeightTensor): { data: Float32Array; dims: number[] } {
  const [kh, kw, ci, co] = w.shape as [number, number, number, number];
  const out = new Float32Array(w.data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) {
          out[((o * ci + i) * kh + y) * kw + x] = w.data[((y * kw + x) * ci + i) * co + o]!;
        }
  return { data: out, dims: [co, ci, kh, kw] };
}

/**
 * Depthwise [kh, kw, C, M] -> [C*M, 1, kh, kw]. With group = C, ONNX output channel c*M + m reads
 * input channel c, the same order TensorFlow gives its depthwise outputs.
 */
function depthwiseKernelOIHW(w: WeightTensor): { data: Float32Array; dims: number[] } {
  const [kh, kw, c, m] = w.shape as [number, number, number, number];
  const out = new Float32Array(w.data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < c * m; i++) out[(i * kh + y) * kw + x] = w.data[(y * kw + x) * c * m + i]!;
  return { data: out, dims: [c * m, 1, kh, kw] };
}

/**
 * Appends nodes computing `graph` on the NCHW float tensor `inputNCHW`; returns the name of the
 * output tensor (NCHW when 4-D, [N, C] after globalAvgPool / dense).
 */
export function emitLayerGraph(
  b: OnnxGraphBuilder,
  graph: LayerGraph,
  inputNCHW: string,
  opts: EmitOptions = {},
): string {
  const foldBn = opts.foldBatchNorm ?? true;
  const shapes = inferShapes(graph);
  const hwOf = (name: string): [number, number] => {
    const s = shapes.get(name);
    if (!s || s.length !== 3) throw new Error(`layer '${name}' has no spatial output`);
    return [s[0], s[1]];
  };
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const readers = new Map<string, number>();
  for (const n of graph.nodes) for (const i of n.inputs) readers.set(i, (readers.get(i) ?? 0) + 1);

  // conv name -> the batchNorm folded into it.
  const foldedInto = new Map<string, GraphNode>();
  if (foldBn) {
    for (const n of graph.nodes) {
      if (n.op.kind !== 'batchNorm') continue;
      const src = byName.get(n.inputs[0]!);
      if (!src || (src.op.kind !== 'conv2d' && src.op.kind !== 'depthwiseConv2d')) continue;
      if (src.op.activation !== 'linear' || readers.get(src.name) !== 1 || src.name === graph.output) continue;
      foldedInto.set(src.name, n);
    }
  }

  let clip: [string, string] | undefined;
  const activation = (x: string, fn: ActivationFn, hint: string): string => {
    switch (fn) {
      case 'linear':
        return x;
      case 'relu':
        return b.node('Relu', [x], b.uniqueName(`${hint}/relu`));
      case 'relu6':
        clip ??= [b.constant('relu6/min', new Float32Array([0]), []), b.constant('relu6/max', new Float32Array([6]), [])];
        return b.node('Clip', [x, clip[0], clip[1]], b.uniqueName(`${hint}/relu6`));
      case 'softmax':
        // Keras softmax is over the last (channel) axis = NCHW axis 1.
        return b.node('Softmax', [x], b.uniqueName(`${hint}/softmax`), { axis: 1 });
    }
  };

  const tensors = new Map<string, string>();
  const tensorOf = (layer: string): string => {
    const t = tensors.get(layer);
    if (t === undefined) throw new Error(`layer '${layer}' is used before it is computed`);
    return t;
  };

  for (const node of graph.nodes) {
    const op = node.op;
    const name = node.name;
    switch (op.kind) {
      case 'input':
        if (name !== graph.input) throw new Error(`unexpected second input layer '${name}'`);
        tensors.set(name, inputNCHW);
        break;
      case 'conv2d':
      case 'depthwiseConv2d': {
        const x = tensorOf(node.inputs[0]!);
        const isDw = op.kind === 'depthwiseConv2d';
        const k = isDw ? depthwiseKernelOIHW(weight(node, 'depthwise_kernel')) : convKernelOIHW(weight(node, 'kernel'));
        const outC = k.dims[0]!;
        let bias: Float64Array | undefined = op.useBias ? Float64Array.from(weight(node, 'bias').data) : undefined;
        const bn = foldedInto.get(name);
        if (bn) {
          const { scale, shift } = batchNormAffine(bn);
          const per = k.data.length / outC;
          for (let o = 0; o < outC; o++) for (let j = 0; j < per; j++) k.data[o * per + j] = k.data[o * per + j]! * scale[o]!;
          const folded = new Float64Array(outC);
          for (let o = 0; o < outC; o++) folded[o] = (bias ? bias[o]! : 0) * scale[o]! + shift[o]!;
          bias = folded;
        }
        const inputs = [x, b.constant(`${name}/W`, k.data, k.dims)];
        if (bias) inputs.push(b.constant(`${name}/B`, Float32Array.from(bias), [outC]));
        const inC = (shapes.get(node.inputs[0]!) as [number, number, number])[2];
        const y = b.node('Conv', inputs, b.uniqueName(bn ? bn.name : name), {
          kernel_shape: op.kernel,
          strides: op.strides,
          dilations: op.dilation,
          pads: windowPads(op.padding, hwOf(node.inputs[0]!), hwOf(name), op.kernel, op.strides, op.dilation),
          group: isDw ? inC : 1,
        });
        tensors.set(name, y);
        if (bn) tensors.set(bn.name, y);
        else tensors.set(name, activation(y, op.activation, name));
        break;
      }
      case 'batchNorm': {
        if (tensors.has(name)) break; // folded into its conv
        const { scale, shift } = batchNormAffine(node);
        const c = scale.length;
        const mean = b.constant(`${name}/mean`, new Float32Array(c), [c]);
        const variance = b.constant(`${name}/var`, new Float32Array(c).fill(1), [c]);
        // Pre-reduced to scale/shift with mean 0, var 1; epsilon 0 keeps that exact.
        const y = b.node(
          'BatchNormalization',
          [tensorOf(node.inputs[0]!), b.constant(`${name}/scale`, Float32Array.from(scale), [c]), b.constant(`${name}/shift`, Float32Array.from(shift), [c]), mean, variance],
          b.uniqueName(name),
          { epsilon: float(0) },
        );
        tensors.set(name, y);
        break;
      }
      case 'activation':
        tensors.set(name, activation(tensorOf(node.inputs[0]!), op.fn, name));
        break;
      case 'zeroPad': {
        const [[t, bt], [l, r]] = op.pads;
        const pads = b.constant(`${name}/pads`, [0, 0, t, l, 0, 0, bt, r]);
        tensors.set(name, b.node('Pad', [tensorOf(node.inputs[0]!), pads], b.uniqueName(name), { mode: 'constant' }));
        break;
      }
      case 'maxPool': {
        const y = b.node('MaxPool', [tensorOf(node.inputs[0]!)], b.uniqueName(name), {
          kernel_shape: op.pool,
          strides: op.strides,
          pads: windowPads(op.padding, hwOf(node.inputs[0]!), hwOf(name), op.pool, op.strides, [1, 1]),
        });
        tensors.set(name, y);
        break;
      }
      case 'add':
        tensors.set(name, b.node('Add', [tensorOf(node.inputs[0]!), tensorOf(node.inputs[1]!)], b.uniqueName(name)));
        break;
      case 'prelu': {
        // Slopes are per channel; NCHW needs them as [C, 1, 1] to broadcast over H and W.
        const alpha = weight(node, 'alpha');
        const c = alpha.data.length;
        const dims = shapes.get(node.inputs[0]!)!.length === 3 ? [c, 1, 1] : [c];
        const slope = b.constant(`${name}/alpha`, alpha.data, dims);
        tensors.set(name, b.node('PRelu', [tensorOf(node.inputs[0]!), slope], b.uniqueName(name)));
        break;
      }
      case 'globalAvgPool': {
        const pooled = b.node('GlobalAveragePool', [tensorOf(node.inputs[0]!)], b.uniqueName(`${name}/pool`));
        tensors.set(name, b.node('Flatten', [pooled], b.uniqueName(name), { axis: 1 }));
        break;
      }
      case 'dense': {
        const kernel = weight(node, 'kernel');
        const inputs = [tensorOf(node.inputs[0]!), b.constant(`${name}/W`, kernel.data, kernel.shape)];
        if (op.useBias) inputs.push(b.constant(`${name}/B`, weight(node, 'bias').data, [op.units]));
        const y = b.node('Gemm', inputs, b.uniqueName(name), { transA: 0, transB: 0 });
        tensors.set(name, activation(y, op.activation, name));
        break;
      }
      case 'flipWidth': {
        // Slice backwards over W (NCHW axis 3): from the last column down past the first.
        const y = b.node(
          'Slice',
          [
            tensorOf(node.inputs[0]!),
            b.constant(`${name}/starts`, [-1]),
            b.constant(`${name}/ends`, BigInt64Array.of(-9223372036854775807n)),
            b.constant(`${name}/axes`, [3]),
            b.constant(`${name}/steps`, [-1]),
          ],
          b.uniqueName(name),
        );
        tensors.set(name, y);
        break;
      }
      case 'concatBatch':
        tensors.set(name, b.node('Concat', node.inputs.map(tensorOf), b.uniqueName(name), { axis: 0 }));
        break;
      case 'meanViews': {
        // [views*N, ...] -> [views, N, ...] -> mean over the views.
        const s = shapes.get(node.inputs[0]!)!;
        const perImage = s.length === 3 ? [s[2], s[0], s[1]] : [s[0]];
        const shape = b.constant(`${name}/shape`, [op.views, -1, ...perImage]);
        const views = b.node('Reshape', [tensorOf(node.inputs[0]!), shape], b.uniqueName(`${name}/views`));
        // ReduceMean takes its axes as an attribute up to opset 17, as an input from opset 18.
        const y =
          b.opset >= 18
            ? b.node('ReduceMean', [views, b.constant(`${name}/axes`, [0])], b.uniqueName(name), { keepdims: 0 })
            : b.node('ReduceMean', [views], b.uniqueName(name), { axes: [0], keepdims: 0 });
        tensors.set(name, y);
        break;
      }
      case 'mean':
        tensors.set(name, node.inputs.length === 1 ? tensorOf(node.inputs[0]!) : b.node('Mean', node.inputs.map(tensorOf), b.uniqueName(name)));
        break;
      default: {
        const unknown: never = op;
        throw new Error(`unsupported layer op ${JSON.stringify(unknown)}`);
      }
    }
  }
  return tensorOf(graph.output);
}

export interface TrunkModelOptions {
  /** Layout of a 4-D output; NHWC (default) is what tfjs consumes. */
  outputLayout?: 'NHWC' | 'NCHW';
  metadata?: Record<string, string>;
  foldBatchNorm?: boolean;
}

/**
 * A complete model: input `input` [N, C, H, W] float32 (normalised pixels, dynamic batch 'N'),
 * output `output` = the graph's output (transposed to NHWC when 4-D and so requested).
 */
export function buildTrunkModel(graph: LayerGraph, opts: TrunkModelOptions = {}): Uint8Array {
  const shapes = inferShapes(graph);
  const inShape = shapes.get(graph.input);
  if (!inShape || inShape.length !== 3) throw new Error(`graph input '${graph.input}' is not an image`);
  const [h, w, c] = inShape;
  const b = new OnnxGraphBuilder({ name: 'trunk' });
  b.input('input', ['N', c, h, w]);
  const y = emitLayerGraph(b, graph, 'input', { foldBatchNorm: opts.foldBatchNorm });
  const outShape = shapes.get(graph.output)!;
  let dims: Dim[];
  if (outShape.length === 3) {
    const [oh, ow, oc] = outShape;
    if ((opts.outputLayout ?? 'NHWC') === 'NHWC') {
      b.node('Transpose', [y], 'output', { perm: [0, 2, 3, 1] });
      dims = ['N', oh, ow, oc];
    } else {
      b.node('Identity', [y], 'output');
      dims = ['N', oc, oh, ow];
    }
  } else {
    b.node('Identity', [y], 'output');
    dims = ['N', outShape[0]];
  }
  b.output('output', dims);
  for (const [k, v] of Object.entries(opts.metadata ?? {})) b.metadata(k, v);
  return b.toBytes();
}
