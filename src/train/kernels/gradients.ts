/**
 * Gradient definitions for the ops a fine-tuning step records.
 *
 * '@tensorflow/tfjs-core' registers no gradients by itself: the `@tensorflow/tfjs` umbrella package
 * does (it imports tfjs-core's ESM `register_all_gradients`), and that package is not installed here.
 * The ESM sources cannot be loaded next to the CommonJS bundle Node resolves, so the gradients the
 * trainer needs are restated here with public ops. Fused conv / matMul ops need none of their own:
 * tfjs-core gives them custom gradients, and while recording with a non-linear activation it runs
 * the unfused ops listed below instead.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, getGradient, registerGradient, type GradConfig, type NamedAttrMap } from '@tensorflow/tfjs-core';

type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding;

/** Undoes broadcasting: sums `g` over the axes along which `shape` was stretched. */
function reduceTo(g: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = backend_util.getReductionAxes(shape, g.shape);
  const summed = axes.length > 0 ? tf.sum(g, axes) : g;
  return tf.reshape(summed, shape);
}

function single(dy: tf.Tensor | tf.Tensor[]): tf.Tensor {
  if (Array.isArray(dy)) throw new Error('gradients: expected a single upstream gradient');
  return dy;
}

function saved(ts: tf.Tensor[], i: number): tf.Tensor {
  const t = ts[i];
  if (t === undefined) throw new Error(`gradients: saved tensor ${i} is missing`);
  return t;
}

/** Gradient configs of element-wise binary ops with broadcasting. */
function binary(
  kernelName: string,
  da: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
  db: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
): GradConfig {
  return {
    kernelName,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, s) => {
      const [g, a, b] = [single(dy), saved(s, 0), saved(s, 1)];
      return { a: () => reduceTo(da(g, a, b), a.shape), b: () => reduceTo(db(g, a, b), b.shape) };
    },
  };
}

/** Gradient configs of unary ops whose derivative needs x (or, with fromOutput, y). */
function unary(kernelName: string, dx: (dy: tf.Tensor, v: tf.Tensor, attrs: NamedAttrMap) => tf.Tensor, fromOutput = false): GradConfig {
  return {
    kernelName,
    ...(fromOutput ? { outputsToSave: [true] } : { inputsToSave: ['x'] }),
    gradFunc: (dy, s, attrs) => ({ x: () => dx(single(dy), saved(s, 0), attrs) }),
  };
}

/** Ops that are piecewise constant: zero gradient. */
function flat(kernelName: string): GradConfig {
  return { kernelName, gradFunc: (dy) => ({ x: () => tf.zerosLike(single(dy)) }) };
}

/** x's shape with the reduced axes kept as 1s: the shape a reduction's dy broadcasts from. */
function keptShape(shape: number[], axis: unknown): number[] {
  const axes = tf.util.parseAxisParam(axis as number | number[], shape);
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

const f32 = (t: tf.Tensor): tf.Tensor => tf.cast(t, 'float32');

function convAttrs(attrs: NamedAttrMap, kernel: string): { strides: number | [number, number]; pad: Pad; dimRoundingMode?: string } {
  const d = attrs['dilations'];
  const ones = d === undefined || d === 1 || (Array.isArray(d) && d.every((v) => v === 1));
  if (!ones) throw new Error(`gradient of ${kernel}: dilations other than 1 are not supported (got ${String(d)})`);
  const out: { strides: number | [number, number]; pad: Pad; dimRoundingMode?: string } = {
    strides: attrs['strides'] as number | [number, number],
    pad: attrs['pad'] as Pad,
  };
  if (attrs['dimRoundingMode'] != null) out.dimRoundingMode = attrs['dimRoundingMode'] as string;
  return out;
}

const run = (kernel: string, inputs: Record<string, tf.Tensor>, attrs: NamedAttrMap): tf.Tensor =>
  tf.engine().runKernel(kernel, inputs, attrs) as tf.Tensor;

const CONFIGS: GradConfig[] = [
  binary('Add', (g) => g, (g) => g),
  binary('Sub', (g) => g, (g) => tf.neg(g)),
  binary('Multiply', (g, _a, b) => tf.mul(g, f32(b)), (g, a) => tf.mul(g, f32(a))),
  binary('RealDiv', (g, _a, b) => tf.div(g, b), (g, a, b) => tf.neg(tf.div(tf.mul(g, a), tf.square(b)))),
  binary('SquaredDifference', (g, a, b) => tf.mul(g, tf.mul(2, tf.sub(a, b))), (g, a, b) => tf.mul(g, tf.mul(2, tf.sub(b, a)))),
  binary('Maximum', (g, a, b) => tf.mul(g, f32(tf.greaterEqual(a, b))), (g, a, b) => tf.mul(g, f32(tf.less(a, b)))),
  binary('Minimum', (g, a, b) => tf.mul(g, f32(tf.lessEqual(a, b))), (g, a, b) => tf.mul(g, f32(tf.greater(a, b)))),
  {
    kernelName: 'Pow',
    inputsToSave: ['a', 'b'],
    outputsToSave: [true],
    gradFunc: (dy, s) => {
      const [g, base, exp, y] = [single(dy), saved(s, 0), saved(s, 1), saved(s, 2)];
      return {
        a: () => reduceTo(tf.mul(g, tf.mul(f32(exp), tf.pow(base, tf.sub(f32(exp), 1)))), base.shape),
        // d/db a^b = a^b ln a, taken as 0 where a <= 0 (as tfjs does).
        b: () => {
          const logBase = tf.where(tf.greater(base, 0), tf.log(base), tf.zerosLike(base));
          return reduceTo(tf.mul(g, tf.mul(y, logBase)), exp.shape);
        },
      };
    },
  },
  {
    kernelName: 'AddN',
    saveAllInputs: true,
    gradFunc: (dy, s) => Object.fromEntries(s.map((_, i) => [String(i), () => tf.clone(single(dy))])),
  },
  { kernelName: 'Neg', gradFunc: (dy) => ({ x: () => tf.neg(single(dy)) }) },
  { kernelName: 'Identity', gradFunc: (dy) => ({ x: () => tf.clone(single(dy)) }) },
  { kernelName: 'Cast', gradFunc: (dy) => ({ x: () => tf.clone(single(dy)) }) },
  unary('Square', (g, x) => tf.mul(g, tf.mul(f32(x), 2))),
  unary('Sqrt', (g, x) => tf.div(g, tf.mul(tf.sqrt(f32(x)), 2))),
  unary('Rsqrt', (g, x) => tf.neg(tf.div(g, tf.mul(tf.pow(x, 1.5), 2)))),
  unary('Exp', (g, y) => tf.mul(g, y), true),
  unary('Log', (g, x) => tf.div(g, f32(x))),
  unary('Abs', (g, x) => tf.mul(g, tf.sign(f32(x)))),
  unary('Sigmoid', (g, y) => tf.mul(g, tf.mul(y, tf.sub(1, y))), true),
  unary('Tanh', (g, y) => tf.mul(g, tf.sub(1, tf.square(y))), true),
  // Masks are built from step() and arithmetic: the wasm backend's comparison and select kernels
  // take a slow generic path (about 3x the time of the whole relu6 gradient below).
  unary('Relu', (g, x) => tf.mul(g, tf.step(x))),
  // 1 on (0, 6], as tfjs's lessEqual-based mask.
  unary('Relu6', (g, x) => tf.mul(g, tf.sub(tf.step(x), tf.step(tf.sub(x, 6))))),
  unary('LeakyRelu', (g, x, a) => {
    const pos = tf.step(x);
    return tf.mul(g, tf.add(pos, tf.mul(tf.sub(1, pos), a['alpha'] as number)));
  }),
  // 1 on [min, max]: 1 - [x < min] - [x > max].
  unary('ClipByValue', (g, x, a) => {
    const below = tf.step(tf.sub(a['clipValueMin'] as number, x));
    const above = tf.step(tf.sub(x, a['clipValueMax'] as number));
    return tf.mul(g, tf.sub(tf.sub(1, below), above));
  }),
  flat('Floor'),
  flat('Ceil'),
  flat('Round'),
  flat('Sign'),
  flat('Step'),
  flat('ZerosLike'),
  flat('OnesLike'),
  {
    kernelName: 'Prelu',
    inputsToSave: ['x', 'alpha'],
    gradFunc: (dy, s) => {
      const [g, x, alpha] = [single(dy), saved(s, 0), saved(s, 1)];
      const pos = tf.step(x);
      return {
        x: () => tf.mul(g, tf.add(pos, tf.mul(tf.sub(1, pos), alpha))),
        // d/dalpha = x where x <= 0, i.e. min(x, 0) = x - relu(x).
        alpha: () => reduceTo(tf.mul(g, tf.sub(x, tf.relu(x))), alpha.shape),
      };
    },
  },
  {
    kernelName: 'Softmax',
    outputsToSave: [true],
    gradFunc: (dy, s, attrs) => {
      const [g, y] = [single(dy), saved(s, 0)];
      const gy = tf.mul(g, y);
      return { logits: () => tf.sub(gy, tf.mul(tf.sum(gy, [attrs['dim'] as number], true), y)) };
    },
  },
  {
    kernelName: 'Select',
    inputsToSave: ['condition'],
    gradFunc: (dy, s) => {
      const [g, cond] = [single(dy), saved(s, 0)];
      return {
        condition: () => f32(tf.zerosLike(cond)),
        t: () => tf.mul(g, f32(cond)),
        e: () => tf.mul(g, f32(tf.logicalNot(cond))),
      };
    },
  },
  // Shape ops.
  unary('Reshape', (g, x) => tf.reshape(g, x.shape)),
  {
    kernelName: 'ExpandDims',
    inputsToSave: ['input'],
    gradFunc: (dy, s) => ({ input: () => tf.reshape(single(dy), saved(s, 0).shape) }),
  },
  {
    kernelName: 'Transpose',
    gradFunc: (dy, _s, attrs) => {
      const perm = attrs['perm'] as number[];
      const inverse = perm.map((_, i) => perm.indexOf(i));
      return { x: () => tf.transpose(single(dy), inverse) };
    },
  },
  unary('Slice', (g, x, a) => {
    const [begin, size] = tf.slice_util.parseSliceParams(x, a['begin'] as number[], a['size'] as number[]);
    return tf.pad(g, begin.map((b, i): [number, number] => [b, x.shape[i]! - b - size[i]!]));
  }),
  unary('PadV2', (g, x, a) => {
    const before = (a['paddings'] as Array<[number, number]>).map((p) => p[0]);
    return tf.slice(g, before, x.shape);
  }),
  unary('Tile', (g, x, a) => {
    // dy viewed as [r0, s0, r1, s1, ...]: sum over every repetition axis.
    const reps = a['reps'] as number[];
    const split = x.shape.flatMap((d, i) => [reps[i]!, d]);
    return tf.reshape(tf.sum(tf.reshape(g, split), reps.map((_, i) => 2 * i)), x.shape);
  }),
  {
    kernelName: 'Concat',
    saveAllInputs: true,
    gradFunc: (dy, s, attrs) => {
      const axis = tf.util.parseAxisParam(attrs['axis'] as number, saved(s, 0).shape)[0]!;
      const parts = tf.split(single(dy), s.map((t) => t.shape[axis]!), axis);
      return Object.fromEntries(parts.map((p, i) => [String(i), () => p]));
    },
  },
  {
    kernelName: 'Pack',
    saveAllInputs: true,
    gradFunc: (dy, _s, attrs) => {
      const parts = tf.unstack(single(dy), attrs['axis'] as number);
      return Object.fromEntries(parts.map((p, i) => [String(i), () => p]));
    },
  },
  {
    kernelName: 'SplitV',
    gradFunc: (dy, _s, attrs) => ({ x: () => tf.concat(dy as tf.Tensor[], attrs['axis'] as number) }),
  },
  // Reductions.
  unary('Sum', (g, x, a) => tf.mul(tf.reshape(g, keptShape(x.shape, a['axis'])), tf.ones(x.shape))),
  unary('Mean', (g, x, a) => {
    const kept = keptShape(x.shape, a['axis']);
    const count = tf.util.sizeFromShape(x.shape) / tf.util.sizeFromShape(kept);
    return tf.div(tf.mul(tf.reshape(g, kept), tf.ones(x.shape)), count);
  }),
  {
    // Operands are transposed explicitly so every product is a plain matMul (XNNPACK's fast path on wasm).
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, s, attrs) => {
      const [g, a, b] = [single(dy), saved(s, 0), saved(s, 1)];
      const tA = attrs['transposeA'] === true;
      const tB = attrs['transposeB'] === true;
      const T = (t: tf.Tensor): tf.Tensor => {
        const r = t.rank;
        return tf.transpose(t, [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2]);
      };
      const mm = (x: tf.Tensor, y: tf.Tensor): tf.Tensor => tf.matMul(x, y);
      return {
        // With C = op(A) op(B): d op(A) = G op(B)^T and d op(B) = op(A)^T G.
        a: () => reduceTo(tA ? mm(tB ? T(b) : b, T(g)) : mm(g, tB ? b : T(b)), a.shape),
        b: () => reduceTo(tB ? mm(T(g), tA ? T(a) : a) : mm(tA ? a : T(a), g), b.shape),
      };
    },
  },
  {
    kernelName: 'FusedBatchNorm',
    inputsToSave: ['x', 'mean', 'variance', 'scale'],
    gradFunc: (dy, s, attrs) => {
      const [g, x, mean, variance] = [single(dy), saved(s, 0), saved(s, 1), saved(s, 2)];
      const scale = s[3] ?? tf.scalar(1);
      const inv = tf.rsqrt(tf.add(variance, attrs['varianceEpsilon'] as number));
      const gScaled = tf.mul(g, scale);
      const centered = tf.sub(x, mean);
      return {
        x: () => tf.mul(gScaled, inv),
        mean: () => reduceTo(tf.neg(tf.mul(gScaled, inv)), mean.shape),
        variance: () => reduceTo(tf.mul(tf.mul(gScaled, centered), tf.mul(tf.pow(inv, 3), -0.5)), variance.shape),
        scale: () => reduceTo(tf.mul(g, tf.mul(centered, inv)), mean.shape),
        offset: () => reduceTo(g, mean.shape),
      };
    },
  },
  // Convolutions: the backprop kernels come from wasm-gradients.ts on wasm, from tfjs on cpu.
  {
    kernelName: 'Conv2D',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, s, attrs) => {
      const [g, x, filter] = [single(dy), saved(s, 0), saved(s, 1)];
      const common = { ...convAttrs(attrs, 'Conv2D'), dataFormat: (attrs['dataFormat'] as string | undefined) ?? 'NHWC' };
      return {
        x: () => run('Conv2DBackpropInput', { dy: g, filter }, { ...common, inputShape: x.shape }),
        filter: () => run('Conv2DBackpropFilter', { x, dy: g }, { ...common, filterShape: filter.shape }),
      };
    },
  },
  {
    kernelName: 'DepthwiseConv2dNative',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, s, attrs) => {
      const [g, x, filter] = [single(dy), saved(s, 0), saved(s, 1)];
      const common = { ...convAttrs(attrs, 'DepthwiseConv2dNative'), dilations: [1, 1] };
      return {
        x: () => run('DepthwiseConv2dNativeBackpropInput', { dy: g, filter }, { ...common, inputShape: x.shape }),
        filter: () => run('DepthwiseConv2dNativeBackpropFilter', { x, dy: g }, { ...common, filterShape: filter.shape }),
      };
    },
  },
];

/** Kernel names this module can supply a gradient for. */
export const TRAINING_GRADIENT_KERNELS: readonly string[] = CONFIGS.map((c) => c.kernelName);

/**
 * Registers the gradients above for every kernel that has none yet (so the official ones win if
 * `@tensorflow/tfjs` is ever loaded). Idempotent; backend-independent.
 */
export function registerTrainingGradients(): void {
  for (const config of CONFIGS) {
    if (getGradient(config.kernelName) === undefined) registerGradient(config);
  }
}
