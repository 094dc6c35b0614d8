/**
 * Convolution gradient kernels for the tfjs 'wasm' backend.
 *
 * tfjs-backend-wasm 4.22 registers no Conv2DBackpropFilter and no depthwise backprop kernels, and its
 * Conv2DBackpropInput is a scalar loop (~7x slower than the version here on a 3x3 512->512 layer).
 * The heavy arithmetic goes to the backend's XNNPACK kernels: conv gradients become one plain
 * matmul each (im2col for dW, col2im for dx), the depthwise input gradient a depthwise conv.
 * Data movement uses the backend's pad/transpose kernels, or copies between views of the wasm heap
 * where its Slice/StridedSlice would copy element by element or the whole source first.
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
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { registerTrainingGradients } from './gradients.js';

const BACKEND = 'wasm';

type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding;
type RoundingMode = 'floor' | 'round' | 'ceil';
type Shape4 = [number, number, number, number];

/** The wasm kernels this module composes; looked up lazily so import order does not matter. */
const USED_KERNELS = [
  'AddN',
  'BatchMatMul',
  'DepthwiseConv2dNative',
  'PadV2',
  'Reshape',
  'Reverse',
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

  constructor(private readonly backend: BackendWasm) {}

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

  sum(x: TensorInfo, axis: number[]): TensorInfo {
    return this.run('Sum', { x }, { axis, keepDims: false });
  }

  /** a [M, K] @ b [K, N]; untransposed batch-1 operands take XNNPACK's fast path (b is packed once). */
  matMul(a: TensorInfo, b: TensorInfo): TensorInfo {
    return this.run('BatchMatMul', { a, b }, { transposeA: false, transposeB: false });
  }

  /** Stride-1 'valid' depthwise correlation (XNNPACK; any filter size, optional dilation). */
  depthwise(x: TensorInfo, filter: TensorInfo, dilations: [number, number] = [1, 1]): TensorInfo {
    return this.run('DepthwiseConv2dNative', { x, filter }, { strides: [1, 1], pad: 'valid', dilations });
  }

  addN(xs: TensorInfo[]): TensorInfo {
    return this.run('AddN', xs as unknown as NamedTensorInfoMap);
  }

  /** A new uninitialised float32 tensor, disposed with the scope unless kept. */
  allocate(shape: number[]): TensorInfo {
    const out = this.backend.makeOutput(shape, 'float32');
    this.temps.push(out);
    return out;
  }

  /** The tensor's float32 data in the wasm heap. Take views after allocating: heap growth detaches them. */
  view(x: TensorInfo): Float32Array {
    if (x.dtype !== 'float32') throw new Error(`wasm-gradients: expected float32, got ${x.dtype}`);
    return this.backend.typedArrayFromHeap(x) as Float32Array;
  }

  /**
   * Slice of a float32 tensor, copied straight between heap views one contiguous run at a time
   * (the backend's Slice first copies the whole source out of the heap, which dominated).
   */
  slice(x: TensorInfo, begin: number[], size: number[]): TensorInfo {
    const rank = x.shape.length;
    const strides = new Array<number>(rank).fill(1);
    for (let d = rank - 2; d >= 0; d--) strides[d] = strides[d + 1]! * x.shape[d + 1]!;
    // Trailing axes taken whole join the run; `cut` is the innermost axis that is not.
    let cut = rank - 1;
    while (cut > 0 && size[cut] === x.shape[cut]) cut--;
    const run = size[cut]! * strides[cut]!;
    const out = this.allocate(size);
    const src = this.view(x);
    const dst = this.view(out);
    const idx = new Array<number>(cut).fill(0);
    for (let o = 0; ; o += run) {
      let from = begin[cut]! * strides[cut]!;
      for (let d = 0; d < cut; d++) from += (begin[d]! + idx[d]!) * strides[d]!;
      dst.set(src.subarray(from, from + run), o);
      let d = cut - 1;
      while (d >= 0 && ++idx[d]! === size[d]!) idx[d--] = 0;
      if (d < 0) break;
    }
    return out;
  }

  /** Per-axis [before, after] growth; negative amounts crop instead of padding with zeros. */
  padOrCrop(x: TensorInfo, amounts: Array<[number, number]>): TensorInfo {
    let cur = x;
    if (amounts.some(([a, b]) => a < 0 || b < 0)) {
      const begin = amounts.map(([a]) => Math.max(-a, 0));
      const size = amounts.map(([a, b], i) => cur.shape[i]! + Math.min(a, 0) + Math.min(b, 0));
      if (size.some((s) => s <= 0)) throw new Error('wasm-gradients: padding crops away the whole tensor');
      cur = this.slice(cur, begin, size);
    }
    if (amounts.some(([a, b]) => a > 0 || b > 0)) {
      const paddings = amounts.map(([a, b]) => [Math.max(a, 0), Math.max(b, 0)]);
      cur = this.run('PadV2', { x: cur }, { paddings, constantValue: 0 });
    }
    return cur;
  }
}

function withScope(backend: unknown, body: (s: Scope) => TensorInfo): TensorInfo {
  const scope = new Scope(backend as BackendWasm);
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
 * The geometry of the forward convolution a gradient kernel differentiates, after checking the
 * attributes it supports and that dy has the forward output's shape.
 */
function gradientGeometry(kernel: string, xShape: Shape4, filterShape: Shape4, dy: TensorInfo, attrs: NamedAttrMap, depthwise: boolean): Geometry {
  if (depthwise) checkNoDilation(attrs['dilations'], kernel);
  else checkNHWC(attrs['dataFormat'], kernel);
  const g = geometry(xShape, filterShape, attrs, depthwise);
  checkShape(dy.shape, [g.B, g.Ho, g.Wo, g.Co], 'dy', kernel);
  return g;
}

/** Rows and columns of the input the forward conv read (padding included, unread ones excluded). */
function paddedSize(g: Geometry): [number, number] {
  return [(g.Ho - 1) * g.sh + g.kh, (g.Wo - 1) * g.sw + g.kw];
}

/** x zero-padded (or cropped) to exactly the rows and columns the forward conv read. */
function paddedInput(s: Scope, x: TensorInfo, g: Geometry): TensorInfo {
  const [Hp, Wp] = paddedSize(g);
  return s.padOrCrop(x, [
    [0, 0],
    [g.top, Hp - g.H - g.top],
    [g.left, Wp - g.W - g.left],
    [0, 0],
  ]);
}

/**
 * im2col: row n = (b, ho, wo) holds the input window the forward conv read for that output,
 * tap-major: col[n, (i*kw + j)*C + c] = xpad[b, ho*sh + i, wo*sw + j, c]. Shape [B*Ho*Wo, kh*kw*C].
 * Built in one pass over the heap, C floats at a time.
 */
function im2col(s: Scope, x: TensorInfo, g: Geometry): TensorInfo {
  const C = x.shape[3]!;
  const [Hp, Wp] = paddedSize(g);
  const xp = paddedInput(s, x, g);
  const T = g.kh * g.kw;
  const col = s.allocate([g.B * g.Ho * g.Wo, T * C]);
  const src = s.view(xp);
  const dst = s.view(col);
  let o = 0;
  for (let b = 0; b < g.B; b++) {
    for (let ho = 0; ho < g.Ho; ho++) {
      for (let wo = 0; wo < g.Wo; wo++) {
        for (let i = 0; i < g.kh; i++) {
          const row = (b * Hp + ho * g.sh + i) * Wp;
          for (let j = 0; j < g.kw; j++) {
            const from = (row + wo * g.sw + j) * C;
            dst.set(src.subarray(from, from + C), o);
            o += C;
          }
        }
      }
    }
  }
  return col;
}

/**
 * Scatter-adds per-tap contributions back onto the input grid (col2im). `cols[t]` holds tap t's
 * contribution at every output position as [R, Ho, Wo] (R = any leading rows, e.g. channels*batch);
 * the result is [R, H, W]: sum over taps of cols[t] placed at (ho*sh + i - top, wo*sw + j - left).
 */
function col2im(s: Scope, cols: TensorInfo[], g: Geometry): TensorInfo {
  const R = cols[0]!.shape[0]!;
  const [Hp, Wp] = paddedSize(g);
  const placed = cols.map((col, t) => {
    const i = Math.floor(t / g.kw);
    const j = t % g.kw;
    let c = col;
    if (g.sh > 1 || g.sw > 1) {
      // Interleave zeros: [R*Ho, 1, Wo, 1] -> [R*Ho, sh, Wo, sw] -> [R, Ho*sh, Wo*sw].
      const r = s.reshape(col, [R * g.Ho, 1, g.Wo, 1]);
      c = s.reshape(s.padOrCrop(r, [[0, 0], [0, g.sh - 1], [0, 0], [0, g.sw - 1]]), [R, g.Ho * g.sh, g.Wo * g.sw]);
    }
    return s.padOrCrop(c, [
      [0, 0],
      [i, Hp - c.shape[1]! - i],
      [j, Wp - c.shape[2]! - j],
    ]);
  });
  const sum = placed.length === 1 ? placed[0]! : s.addN(placed);
  // Drop the padding; input rows the forward conv never read get zeros.
  return s.padOrCrop(sum, [
    [0, 0],
    [-g.top, g.H + g.top - Hp],
    [-g.left, g.W + g.left - Wp],
  ]);
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
  const filterShape = attrs['filterShape'] as Shape4;
  const g = gradientGeometry(name, x.shape as Shape4, filterShape, dy, attrs, false);
  return withScope(backend, (s) => {
    const N = g.B * g.Ho * g.Wo;
    const dy2 = s.reshape(dy, [N, g.Co]);
    // dW[(i,j,ci), co] = sum_n col[n, (i,j,ci)] * dy[n, co]  ->  colT [T*Ci, N] @ dy [N, Co]
    const col = im2col(s, x, g);
    const dw = s.matMul(s.transpose(col, [1, 0]), dy2);
    return s.reshape(dw, filterShape);
  });
};

const conv2DBackpropInput: KernelFunc = ({ inputs, backend, attrs = {} }) => {
  const name = 'Conv2DBackpropInput';
  const dy = input(inputs, 'dy', name);
  const filter = input(inputs, 'filter', name);
  const g = gradientGeometry(name, attrs['inputShape'] as Shape4, filter.shape as Shape4, dy, attrs, false);
  return withScope(backend, (s) => {
    // dcol[(i,j,ci), n] = sum_co W[i,j,ci,co] * dy[n,co], computed as W [T*Ci, Co] @ dyT [Co, N]:
    // the filter is the matmul's streamed operand (no flip, transpose or weight packing of it).
    const T = g.kh * g.kw;
    const N = g.B * g.Ho * g.Wo;
    const dyT = s.transpose(s.reshape(dy, [N, g.Co]), [1, 0]);
    const dcol = s.matMul(s.reshape(filter, [T * g.Ci, g.Co]), dyT);
    const cols: TensorInfo[] = [];
    for (let t = 0; t < T; t++) {
      const rows = T === 1 ? dcol : s.slice(dcol, [t * g.Ci, 0], [g.Ci, N]);
      cols.push(s.reshape(rows, [g.Ci * g.B, g.Ho, g.Wo]));
    }
    const dxT = s.reshape(col2im(s, cols, g), [g.Ci, g.B * g.H * g.W]);
    return s.reshape(s.transpose(dxT, [1, 0]), [g.B, g.H, g.W, g.Ci]);
  });
};

const depthwiseBackpropFilter: KernelFunc = ({ inputs, backend, attrs = {} }) => {
  const name = 'DepthwiseConv2dNativeBackpropFilter';
  const x = input(inputs, 'x', name);
  const dy = input(inputs, 'dy', name);
  const filterShape = attrs['filterShape'] as Shape4;
  const g = gradientGeometry(name, x.shape as Shape4, filterShape, dy, attrs, true);
  const M = filterShape[3];
  return withScope(backend, (s) => {
    // dW[i,j,c,m] = sum_{b,ho,wo} xpad[b, ho*sh+i, wo*sw+j, c] * dy[b,ho,wo,c*M+m] is itself a depthwise
    // correlation: of xpad (batch folded into channels) with dy as a [Ho, Wo] filter dilated by the
    // stride. It yields one [kh, kw] map per (b, c, m); the batch is summed afterwards.
    const [Hp, Wp] = paddedSize(g);
    const xp = paddedInput(s, x, g);
    const BC = g.B * g.Ci;
    const xT = s.reshape(s.transpose(xp, [1, 2, 0, 3]), [1, Hp, Wp, BC]);
    const dyT = s.reshape(s.transpose(dy, [1, 2, 0, 3]), [g.Ho, g.Wo, BC, M]);
    const perSample = s.depthwise(xT, dyT, [g.sh, g.sw]); // [1, kh, kw, B*Ci*M]
    const dw = s.sum(s.transpose(s.reshape(perSample, [g.kh * g.kw, g.B, g.Ci * M]), [0, 2, 1]), [2]);
    return s.reshape(dw, filterShape);
  });
};

const depthwiseBackpropInput: KernelFunc = ({ inputs, backend, attrs = {} }) => {
  const name = 'DepthwiseConv2dNativeBackpropInput';
  const dy = input(inputs, 'dy', name);
  const filter = input(inputs, 'filter', name);
  const g = gradientGeometry(name, attrs['inputShape'] as Shape4, filter.shape as Shape4, dy, attrs, true);
  const M = filter.shape[3]!;
  return withScope(backend, (s) => {
    // Each of the Ci*M output channels flows back through its own flipped 2-D kernel;
    // the M channels born from one input channel are then summed.
    const flipped = s.reshape(s.reverse(filter, [0, 1]), [g.kh, g.kw, g.Ci * M, 1]);
    const dx = s.depthwise(spreadOutputGrad(s, dy, g), flipped);
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
