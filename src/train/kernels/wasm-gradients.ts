/**
 * Convolution gradient kernels for the tfjs 'wasm' backend.
 *
 * tfjs-backend-wasm 4.22 registers no Conv2DBackpropFilter and no depthwise backprop kernels, and its
 * Conv2DBackpropInput is a scalar loop (slow, and its unsigned-index arithmetic is suspect at stride > 1).
 * Each kernel here is composed from the backend's own XNNPACK-backed kernels (Conv2D, depthwise conv,
 * matmul) plus cheap layout kernels (pad, strided slice, transpose, concat), so the heavy arithmetic
 * runs in SIMD wasm and nothing is written in JS loops.
 *
 * Layout conventions (NHWC only, dilation 1):
 *   conv filter      [kh, kw, Ci, Co]       depthwise filter [kh, kw, Ci, M] (output channel = ci*M + m)
 *   x                [B, H, W, Ci]          dy               [B, Ho, Wo, Co]
 */
import {
  backend_util,
  getKernel,
  registerKernel,
  unregisterKernel,
  type DataId,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { registerTrainingGradients } from './gradients.js';

const BACKEND = 'wasm';

type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding;
type RoundingMode = 'floor' | 'round' | 'ceil';
type Shape4 = [number, number, number, number];

/** The only part of BackendWasm the kernels touch. */
interface DisposingBackend {
  disposeData(dataId: DataId, force?: boolean): boolean;
}

/** The wasm kernels this module composes; looked up lazily so import order does not matter. */
const USED_KERNELS = [
  'BatchMatMul',
  'Concat',
  'Conv2D',
  'DepthwiseConv2dNative',
  'Multiply',
  'PadV2',
  'Reshape',
  'Reverse',
  'Slice',
  'StridedSlice',
  'Sum',
  'Transpose',
] as const;
type UsedKernel = (typeof USED_KERNELS)[number];

function wasmKernel(name: UsedKernel): KernelFunc {
  const config = getKernel(name, BACKEND);
  if (config === undefined) {
    throw new Error(`wasm-gradients: kernel '${name}' is not registered for 'wasm'; import '@tensorflow/tfjs-backend-wasm' first`);
  }
  return config.kernelFunc;
}

/**
 * Runs wasm kernels and remembers every intermediate so one `dispose()` frees them all.
 * Results passed to `keep()` survive (the caller returns them to the engine).
 */
class Scope {
  private readonly temps: TensorInfo[] = [];

  constructor(private readonly backend: DisposingBackend) {}

  private run(name: UsedKernel, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
    const out = wasmKernel(name)({ inputs, backend: this.backend, attrs });
    if (Array.isArray(out)) throw new Error(`wasm-gradients: '${name}' returned several outputs`);
    this.temps.push(out);
    return out;
  }

  keep(info: TensorInfo): TensorInfo {
    const i = this.temps.lastIndexOf(info);
    if (i >= 0) this.temps.splice(i, 1);
    return info;
  }

  dispose(): void {
    // Reshape/identity results share a dataId with their source but hold their own reference,
    // so every TensorInfo we created is released exactly once.
    for (const t of this.temps) this.backend.disposeData(t.dataId);
    this.temps.length = 0;
  }

  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  transpose(x: TensorInfo, perm: number[]): TensorInfo {
    return this.run('Transpose', { x }, { perm });
  }

  reverse(x: TensorInfo, dims: number[]): TensorInfo {
    return this.run('Reverse', { x }, { dims });
  }

  concat(xs: TensorInfo[], axis: number): TensorInfo {
    if (xs.length === 1) return this.reshape(xs[0]!, xs[0]!.shape);
    return this.run('Concat', xs as unknown as NamedTensorInfoMap, { axis });
  }

  multiply(a: TensorInfo, b: TensorInfo): TensorInfo {
    return this.run('Multiply', { a, b });
  }

  sum(x: TensorInfo, axis: number[]): TensorInfo {
    return this.run('Sum', { x }, { axis, keepDims: false });
  }

  /** a [M, K] @ b [K, N]; untransposed batch-1 operands take XNNPACK's fast path (b is packed once). */
  matMul(a: TensorInfo, b: TensorInfo): TensorInfo {
    return this.run('BatchMatMul', { a, b }, { transposeA: false, transposeB: false });
  }

  conv2dValid(x: TensorInfo, filter: TensorInfo): TensorInfo {
    return this.run(
      'Conv2D',
      { x, filter },
      { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1], dimRoundingMode: 'floor' },
    );
  }

  depthwiseValid(x: TensorInfo, filter: TensorInfo): TensorInfo {
    return this.run('DepthwiseConv2dNative', { x, filter }, { strides: [1, 1], pad: 'valid', dilations: [1, 1] });
  }

  /** Strided window [begin, begin + (count-1)*stride] per axis. */
  stridedSlice(x: TensorInfo, begin: number[], counts: number[], strides: number[]): TensorInfo {
    const end = begin.map((b, i) => b + (counts[i]! - 1) * strides[i]! + 1);
    return this.run(
      'StridedSlice',
      { x },
      { begin, end, strides, beginMask: 0, endMask: 0, ellipsisMask: 0, newAxisMask: 0, shrinkAxisMask: 0 },
    );
  }

  /** Per-axis [before, after] growth; negative amounts crop instead of padding with zeros. */
  padOrCrop(x: TensorInfo, amounts: Array<[number, number]>): TensorInfo {
    let cur = x;
    if (amounts.some(([a, b]) => a < 0 || b < 0)) {
      const begin = amounts.map(([a]) => Math.max(-a, 0));
      const size = amounts.map(([a, b], i) => cur.shape[i]! + Math.min(a, 0) + Math.min(b, 0));
      if (size.some((s) => s <= 0)) throw new Error('wasm-gradients: padding crops away the whole tensor');
      cur = this.run('Slice', { x: cur }, { begin, size });
    }
    if (amounts.some(([a, b]) => a > 0 || b > 0)) {
      const paddings = amounts.map(([a, b]) => [Math.max(a, 0), Math.max(b, 0)]);
      cur = this.run('PadV2', { x: cur }, { paddings, constantValue: 0 });
    }
    return cur;
  }
}

function withScope(backend: unknown, body: (s: Scope) => TensorInfo): TensorInfo {
  const scope = new Scope(backend as DisposingBackend);
  try {
    return scope.keep(body(scope));
  } finally {
    scope.dispose();
  }
}

function input(inputs: NamedTensorInfoMap, name: string, kernel: string): TensorInfo {
  const t = inputs[name];
  if (t === undefined) throw new Error(`${kernel}: missing input '${name}'`);
  if (t.dtype !== 'float32') throw new Error(`${kernel}: input '${name}' must be float32, got ${t.dtype}`);
  if (t.shape.length !== 4) throw new Error(`${kernel}: input '${name}' must be rank 4, got shape [${t.shape}]`);
  return t;
}

function checkNHWC(dataFormat: unknown, kernel: string): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new Error(`${kernel} (wasm-gradients): only dataFormat 'NHWC' is supported, got '${String(dataFormat)}'`);
  }
}

function checkNoDilation(dilations: unknown, kernel: string): void {
  const ok =
    dilations === undefined ||
    dilations === 1 ||
    (Array.isArray(dilations) && dilations.every((d) => d === 1));
  if (!ok) throw new Error(`${kernel} (wasm-gradients): dilations other than 1 are not supported, got ${String(dilations)}`);
}

interface Geometry {
  B: number;
  H: number;
  W: number;
  Ci: number;
  Ho: number;
  Wo: number;
  Co: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  top: number;
  left: number;
}

/** Shapes, strides and leading pads with tfjs's own conventions (same / valid / numeric / explicit). */
function geometry(
  xShape: Shape4,
  filterShape: Shape4,
  attrs: NamedAttrMap,
  depthwise: boolean,
): Geometry {
  const info = backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    attrs['strides'] as number | [number, number],
    1,
    attrs['pad'] as Pad,
    attrs['dimRoundingMode'] as RoundingMode | undefined,
    depthwise,
    'channelsLast',
  );
  return {
    B: info.batchSize,
    H: info.inHeight,
    W: info.inWidth,
    Ci: info.inChannels,
    Ho: info.outHeight,
    Wo: info.outWidth,
    Co: info.outChannels,
    kh: info.filterHeight,
    kw: info.filterWidth,
    sh: info.strideHeight,
    sw: info.strideWidth,
    top: info.padInfo.top,
    left: info.padInfo.left,
  };
}

function checkShape(actual: readonly number[], expected: readonly number[], what: string, kernel: string): void {
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i])) {
    throw new Error(`${kernel}: ${what} has shape [${actual}], expected [${expected}]`);
  }
}

/**
 * x zero-padded (or cropped) to exactly the rows/cols the forward conv read:
 * [B, (Ho-1)*sh + kh, (Wo-1)*sw + kw, C], so tap (i, j) is the strided window starting at (i, j).
 */
function paddedInput(s: Scope, x: TensorInfo, g: Geometry): TensorInfo {
  const needH = (g.Ho - 1) * g.sh + g.kh;
  const needW = (g.Wo - 1) * g.sw + g.kw;
  return s.padOrCrop(x, [
    [0, 0],
    [g.top, needH - g.H - g.top],
    [g.left, needW - g.W - g.left],
    [0, 0],
  ]);
}

/** The input window under each kernel tap, tap-major: kh*kw tensors of [B*Ho*Wo, C]. */
function tapWindows(s: Scope, xp: TensorInfo, g: Geometry): TensorInfo[] {
  const C = xp.shape[3]!;
  const N = g.B * g.Ho * g.Wo;
  const taps: TensorInfo[] = [];
  for (let i = 0; i < g.kh; i++) {
    for (let j = 0; j < g.kw; j++) {
      const win = s.stridedSlice(xp, [0, i, j, 0], [g.B, g.Ho, g.Wo, C], [1, g.sh, g.sw, 1]);
      taps.push(s.reshape(win, [N, C]));
    }
  }
  return taps;
}

/**
 * dy spread back onto the input grid and padded so that a stride-1 'valid' correlation with the
 * spatially flipped filter yields dx: zeros are inserted between dy samples (stride > 1), then the
 * result is padded to [B, H + kh - 1, W + kw - 1, C].
 */
function spreadOutputGrad(s: Scope, dy: TensorInfo, g: Geometry): TensorInfo {
  const C = dy.shape[3]!;
  let d = dy;
  if (g.sh > 1 || g.sw > 1) {
    const r = s.reshape(dy, [g.B * g.Ho, 1, g.Wo, 1, C]);
    const z = s.padOrCrop(r, [
      [0, 0],
      [0, g.sh - 1],
      [0, 0],
      [0, g.sw - 1],
      [0, 0],
    ]);
    d = s.reshape(z, [g.B, g.Ho * g.sh, g.Wo * g.sw, C]);
  }
  const padTop = g.kh - 1 - g.top;
  const padLeft = g.kw - 1 - g.left;
  return s.padOrCrop(d, [
    [0, 0],
    [padTop, g.H + g.kh - 1 - padTop - d.shape[1]!],
    [padLeft, g.W + g.kw - 1 - padLeft - d.shape[2]!],
    [0, 0],
  ]);
}

const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs = {} }) => {
  const name = 'Conv2DBackpropFilter';
  const x = input(inputs, 'x', name);
  const dy = input(inputs, 'dy', name);
  checkNHWC(attrs['dataFormat'], name);
  const filterShape = attrs['filterShape'] as Shape4;
  const g = geometry(x.shape as Shape4, filterShape, attrs, false);
  checkShape(dy.shape, [g.B, g.Ho, g.Wo, g.Co], 'dy', name);
  return withScope(backend, (s) => {
    const N = g.B * g.Ho * g.Wo;
    const dy2 = s.reshape(dy, [N, g.Co]);
    // dW[(i,j,ci), co] = sum_n col[n, (i,j,ci)] * dy[n, co]  ->  colT [T*Ci, N] @ dy [N, Co]
    const col = s.concat(tapWindows(s, paddedInput(s, x, g), g), 1);
    const dw = s.matMul(s.transpose(col, [1, 0]), dy2);
    return s.reshape(dw, filterShape);
  });
};

const conv2DBackpropInput: KernelFunc = ({ inputs, backend, attrs = {} }) => {
  const name = 'Conv2DBackpropInput';
  const dy = input(inputs, 'dy', name);
  const filter = input(inputs, 'filter', name);
  checkNHWC(attrs['dataFormat'], name);
  const inputShape = attrs['inputShape'] as Shape4;
  const g = geometry(inputShape, filter.shape as Shape4, attrs, false);
  checkShape(dy.shape, [g.B, g.Ho, g.Wo, g.Co], 'dy', name);
  return withScope(backend, (s) => {
    // dx = valid correlation of the spread dy with the filter flipped in space, Ci <-> Co swapped.
    const flipped = s.transpose(s.reverse(filter, [0, 1]), [0, 1, 3, 2]);
    return s.conv2dValid(spreadOutputGrad(s, dy, g), flipped);
  });
};

const depthwiseBackpropFilter: KernelFunc = ({ inputs, backend, attrs = {} }) => {
  const name = 'DepthwiseConv2dNativeBackpropFilter';
  const x = input(inputs, 'x', name);
  const dy = input(inputs, 'dy', name);
  checkNoDilation(attrs['dilations'], name);
  const filterShape = attrs['filterShape'] as Shape4;
  const g = geometry(x.shape as Shape4, filterShape, attrs, true);
  const M = filterShape[3];
  checkShape(dy.shape, [g.B, g.Ho, g.Wo, g.Ci * M], 'dy', name);
  return withScope(backend, (s) => {
    const N = g.B * g.Ho * g.Wo;
    const T = g.kh * g.kw;
    // prod[n, t, ci, m] = x_t[n, ci] * dy[n, ci*M + m]; dW[t, ci, m] = sum_n prod.
    const col = s.reshape(s.concat(tapWindows(s, paddedInput(s, x, g), g), 1), [N, T, g.Ci, 1]);
    const prod = s.multiply(col, s.reshape(dy, [N, 1, g.Ci, M]));
    const dw = s.sum(s.reshape(prod, [N, T * g.Ci * M]), [0]);
    return s.reshape(dw, filterShape);
  });
};

const depthwiseBackpropInput: KernelFunc = ({ inputs, backend, attrs = {} }) => {
  const name = 'DepthwiseConv2dNativeBackpropInput';
  const dy = input(inputs, 'dy', name);
  const filter = input(inputs, 'filter', name);
  checkNoDilation(attrs['dilations'], name);
  const inputShape = attrs['inputShape'] as Shape4;
  const g = geometry(inputShape, filter.shape as Shape4, attrs, true);
  const M = filter.shape[3]!;
  checkShape(dy.shape, [g.B, g.Ho, g.Wo, g.Ci * M], 'dy', name);
  return withScope(backend, (s) => {
    // Each of the Ci*M output channels flows back through its own flipped 2-D kernel;
    // the M channels born from one input channel are then summed.
    const flipped = s.reshape(s.reverse(filter, [0, 1]), [g.kh, g.kw, g.Ci * M, 1]);
    const dx = s.depthwiseValid(spreadOutputGrad(s, dy, g), flipped);
    if (M === 1) return dx;
    return s.sum(s.reshape(dx, [g.B, g.H, g.W, g.Ci, M]), [4]);
  });
};

const CONFIGS: KernelConfig[] = [
  { kernelName: 'Conv2DBackpropFilter', backendName: BACKEND, kernelFunc: conv2DBackpropFilter },
  // Replaces the backend's scalar-loop kernel.
  { kernelName: 'Conv2DBackpropInput', backendName: BACKEND, kernelFunc: conv2DBackpropInput },
  { kernelName: 'DepthwiseConv2dNativeBackpropFilter', backendName: BACKEND, kernelFunc: depthwiseBackpropFilter },
  { kernelName: 'DepthwiseConv2dNativeBackpropInput', backendName: BACKEND, kernelFunc: depthwiseBackpropInput },
];

/**
 * Registers (or replaces) the conv gradient kernels for 'wasm', and the op gradients tfjs-core
 * lacks (see gradients.ts). Idempotent. Call after importing '@tensorflow/tfjs-backend-wasm' and
 * before the first training step.
 */
export function registerWasmGradientKernels(): void {
  for (const name of USED_KERNELS) wasmKernel(name); // fail early, not mid-training
  registerTrainingGradients();
  for (const config of CONFIGS) {
    const current = getKernel(config.kernelName, BACKEND);
    if (current?.kernelFunc === config.kernelFunc) continue;
    if (current !== undefined) unregisterKernel(config.kernelName, BACKEND);
    registerKernel(config);
  }
}
