/**
 * Static int8 quantization of an fp32 ONNX model in QDQ form (QuantizeLinear / DequantizeLinear
 * pairs around the float ops), the form ONNX Runtime's CPU EP (and onnxruntime-web) fuse into
 * integer kernels (QLinearConv, QLinearAdd, QGemm...).
 *
 *  - weights of Conv / Gemm / MatMul: int8, symmetric (zero point 0, range ±127), one scale per
 *    output channel; biases int32 with scale = input scale x weight scale (zero point 0);
 *  - activations: one scale / zero point per tensor (uint8 by default, asymmetric, the range
 *    always holding 0.0 so that zero padding is exact), from ranges measured on calibration data
 *    (see calibrationModel and onnx/calibrate.ts);
 *  - which nodes: `ops` (default Conv only, so a Gemm / MatMul head stays fp32) minus `exclude`
 *    (default: convolutions reading 3 channels, i.e. the stem conv and an ensemble's in-graph
 *    normalisation, which are the most sensitive to rounding).
 *
 * The tensors given Q/DQ pairs are: the activation input of each quantized node, its output (or
 * the output of the Relu / Clip right after it: ORT drops that Relu / Clip into the Q), and the
 * inputs and output of an Add whose two inputs are quantized anyway (residual connections), so
 * every quantized op sits between DQ and Q and fuses. A constant zero Pad feeding a Conv is
 * folded into the Conv's own pads first (exact), so the Conv reads a DQ directly.
 * Pure protobuf work: no ONNX Runtime here.
 */
import { createHash } from 'node:crypto';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type ModelProto = onnxProto.onnx.IModelProto;
type IGraphProto = onnxProto.onnx.IGraphProto;
type INodeProto = onnxProto.onnx.INodeProto;
type ITensorProto = onnxProto.onnx.ITensorProto;

export type ActivationType = 'uint8' | 'int8';

/** Scale and zero point of one quantized tensor (or one channel of it). */
export interface QuantParams {
  scale: number;
  zeroPoint: number;
}

/** Observed range of an activation tensor over the calibration data. */
export interface TensorRange {
  min: number;
  max: number;
}

const QRANGE: Record<ActivationType, [number, number]> = { uint8: [0, 255], int8: [-128, 127] };

/** Round half to even, as ONNX QuantizeLinear does. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Asymmetric per-tensor parameters for a range: the range is widened to hold 0 (so 0.0 is
 * exactly representable: zero padding, ReLU), scale = (max - min) / (qmax - qmin) in float32.
 */
export function activationParams(range: TensorRange, type: ActivationType = 'uint8'): QuantParams {
  const [qmin, qmax] = QRANGE[type];
  const lo = Math.min(0, range.min);
  const hi = Math.max(0, range.max);
  if (!(hi > lo) || !Number.isFinite(hi - lo)) return { scale: 1, zeroPoint: 0 };
  const scale = Math.fround((hi - lo) / (qmax - qmin));
  const zeroPoint = Math.min(qmax, Math.max(qmin, roundHalfEven(qmin - lo / scale)));
  return { scale, zeroPoint };
}

/** QuantizeLinear of one value: saturate(roundHalfEven(x / scale) + zeroPoint). */
export function quantizeValue(x: number, p: QuantParams, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, roundHalfEven(x / p.scale) + p.zeroPoint));
}

/** DequantizeLinear of one value. */
export function dequantizeValue(q: number, p: QuantParams): number {
  return (q - p.zeroPoint) * p.scale;
}

/**
 * Symmetric per-channel int8 weights: channel c along `axis` gets scale max|w_c| / 127 and values
 * round(w / scale) in [-127, 127] (zero point 0). An all-zero channel gets scale 1.
 */
export function quantizeWeightsPerChannel(w: Float32Array, dims: readonly number[], axis: number): { q: Int8Array; scales: Float32Array } {
  const channels = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const chan = (i: number): number => Math.floor(i / inner) % channels;
  const maxAbs = new Float64Array(channels);
  for (let i = 0; i < w.length; i++) maxAbs[chan(i)] = Math.max(maxAbs[chan(i)]!, Math.abs(w[i]!));
  const scales = Float32Array.from(maxAbs, (m) => (m > 0 ? m / 127 : 1));
  const q = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) q[i] = Math.min(127, Math.max(-127, roundHalfEven(w[i]! / scales[chan(i)]!)));
  return { q, scales };
}

// ---------------------------------------------------------------- model helpers

const DT = onnx.TensorProto.DataType;

function floatData(t: ITensorProto): Float32Array {
  if (t.dataType !== DT.FLOAT) throw new Error(`initializer '${t.name}' is not float`);
  if (t.rawData && t.rawData.length > 0) {
    const raw = t.rawData;
    return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  }
  return Float32Array.from(t.floatData ?? []);
}

function tensor(name: string, dims: readonly number[], dataType: number, data: ArrayBufferView): ITensorProto {
  const raw = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  return onnx.TensorProto.create({ name, dims: [...dims], dataType, rawData: raw });
}

const attrInt = (n: INodeProto, name: string, dflt: number): number => {
  const a = n.attribute?.find((x) => x.name === name);
  return a ? Number(a.i) : dflt;
};

const attrString = (n: INodeProto, name: string): string | undefined => {
  const a = n.attribute?.find((x) => x.name === name);
  return a ? new TextDecoder().decode(a.s!) : undefined;
};

const dimsOf = (t: ITensorProto): number[] => (t.dims ?? []).map(Number);

/** A graph's initializers by name, the readers of each tensor, and its output names. */
function indexGraph(g: IGraphProto): { inits: Map<string, ITensorProto>; readers: Map<string, INodeProto[]>; outputs: Set<string> } {
  const inits = new Map((g.initializer ?? []).map((t) => [t.name!, t]));
  const readers = new Map<string, INodeProto[]>();
  for (const n of g.node ?? []) {
    for (const i of n.input ?? []) {
      const r = readers.get(i);
      if (r) r.push(n);
      else readers.set(i, [n]);
    }
  }
  const outputs = new Set((g.output ?? []).map((o) => o.name!));
  return { inits, readers, outputs };
}

export interface QuantizeOptions {
  /** Op types quantized (default ['Conv']); supported: Conv, Gemm, MatMul. */
  ops?: readonly string[];
  /**
   * Nodes kept in fp32; default: convolutions whose weight reads 3 input channels (the stem conv,
   * an in-graph normalisation conv).
   */
  exclude?: (node: INodeProto, weightDims: readonly number[]) => boolean;
  /** Activations' integer type (default uint8, what ORT's x86 kernels prefer: u8 x s8). */
  activationType?: ActivationType;
}

/** The default `exclude`: convolutions reading 3 channels (the stem conv, an in-graph normalisation conv). */
export const defaultExclude = (node: INodeProto, dims: readonly number[]): boolean => node.opType === 'Conv' && dims[1] === 3;

interface Plan {
  model: ModelProto;
  /** Nodes to quantize, with their weight's per-channel axis. */
  nodes: Map<INodeProto, number>;
  /** Activation tensors given a Q/DQ pair, in a stable order. */
  tensors: string[];
}

/** A constant zero Pad (spatial only) whose only reader is a Conv's input X: folded into the Conv's pads. */
function foldPads(model: ModelProto): void {
  const g: IGraphProto = model.graph!;
  const { inits, readers, outputs } = indexGraph(g);
  const drop = new Set<INodeProto>();
  for (const n of g.node ?? []) {
    if (n.opType !== 'Pad') continue;
    const mode = attrString(n, 'mode');
    if (mode !== undefined && mode !== 'constant') continue;
    if ((n.input?.length ?? 0) > 2 && n.input![2] !== '') continue; // a constant value given: leave it
    const padsInit = inits.get(n.input?.[1] ?? '');
    if (!padsInit || padsInit.dataType !== DT.INT64 || !padsInit.rawData) continue;
    const raw = padsInit.rawData;
    const pads = Array.from(new BigInt64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)), Number);
    if (pads.length !== 8 || pads[0] || pads[1] || pads[4] || pads[5]) continue;
    const out = n.output![0]!;
    const r = readers.get(out) ?? [];
    if (r.length !== 1 || r[0]!.opType !== 'Conv' || r[0]!.input![0] !== out || outputs.has(out)) continue;
    const conv = r[0]!;
    const autoPad = attrString(conv, 'auto_pad');
    if (autoPad !== undefined && autoPad !== 'NOTSET') continue;
    const pa = conv.attribute?.find((a) => a.name === 'pads');
    const cur = pa ? pa.ints!.map(Number) : [0, 0, 0, 0];
    const next = [cur[0]! + pads[2]!, cur[1]! + pads[3]!, cur[2]! + pads[6]!, cur[3]! + pads[7]!];
    if (pa) pa.ints = next;
    else conv.attribute = [...(conv.attribute ?? []), onnx.AttributeProto.create({ name: 'pads', type: onnx.AttributeProto.AttributeType.INTS, ints: next })];
    conv.input![0] = n.input![0]!;
    drop.add(n);
  }
  g.node = (g.node ?? []).filter((n) => !drop.has(n));
}

/** Which nodes are quantized and which activation tensors get Q/DQ pairs. */
function plan(bytes: Uint8Array, opts: QuantizeOptions): Plan {
  const model = onnx.ModelProto.decode(bytes);
  const g: IGraphProto = model.graph!;
  const opset = model.opsetImport?.find((o) => !o.domain)?.version;
  if (opset !== undefined && Number(opset) < 13) throw new Error(`per-channel QDQ needs opset 13 or later; the model has ${opset}`);
  foldPads(model);
  const ops = new Set(opts.ops ?? ['Conv']);
  const exclude = opts.exclude ?? defaultExclude;
  const { inits, readers, outputs } = indexGraph(g);
  const chosen = new Map<INodeProto, number>();
  const tensors = new Set<string>();
  /** The tensor whose Q the node's output fuses with: after a lone Relu / Clip. */
  const fusedOutput = (out: string): string => {
    const r = readers.get(out) ?? [];
    if (r.length === 1 && !outputs.has(out) && (r[0]!.opType === 'Relu' || r[0]!.opType === 'Clip')) return r[0]!.output![0]!;
    return out;
  };
  for (const n of g.node ?? []) {
    if (!ops.has(n.opType!)) continue;
    const w = inits.get(n.input?.[1] ?? '');
    if (!w || w.dataType !== DT.FLOAT || inits.has(n.input![0]!)) continue;
    const dims = dimsOf(w);
    if (exclude(n, dims)) continue;
    let axis: number;
    if (n.opType === 'Conv') axis = 0;
    else if (n.opType === 'Gemm') {
      if (attrInt(n, 'transA', 0) !== 0 || dims.length !== 2) continue;
      const bias = n.input?.[2];
      if (bias && !inits.has(bias)) continue;
      axis = attrInt(n, 'transB', 0) ? 0 : 1;
    } else if (n.opType === 'MatMul') {
      if (dims.length !== 2) continue;
      axis = 1;
    } else continue;
    if (n.opType === 'Conv' && n.input?.[2] && !inits.has(n.input[2])) continue;
    chosen.set(n, axis);
    tensors.add(n.input![0]!);
    tensors.add(fusedOutput(n.output![0]!));
  }
  for (const n of g.node ?? []) {
    if (n.opType !== 'Add' || n.input?.length !== 2) continue;
    if (n.input.every((i) => tensors.has(i))) tensors.add(fusedOutput(n.output![0]!));
  }
  // Stable order: graph inputs, then node outputs in node order.
  const order = [...(g.input ?? []).map((i) => i.name!), ...(g.node ?? []).flatMap((n) => n.output ?? [])];
  return { model, nodes: chosen, tensors: order.filter((t) => tensors.has(t)) };
}

/** Names of the Conv nodes `quantizeModel` quantizes with the default options (unnamed ones are left out). */
export function quantizableConvs(bytes: Uint8Array): string[] {
  return [...plan(bytes, {}).nodes.keys()].filter((n) => n.opType === 'Conv' && n.name).map((n) => n.name!);
}

/** The activation tensors that `quantizeModel` needs ranges for (in a stable order). */
export function tensorsToCalibrate(bytes: Uint8Array, opts: QuantizeOptions = {}): string[] {
  return plan(bytes, opts).tensors;
}

/**
 * The model with two extra float outputs per tensor, `<i>:min` and `<i>:max` ([N]: the per-image
 * minimum and maximum of tensors[i]), for calibration; the original output is kept.
 */
export function calibrationModel(bytes: Uint8Array, tensors: readonly string[]): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const g: IGraphProto = model.graph!;
  const opset = Number(model.opsetImport?.find((o) => !o.domain)?.version ?? 17);
  const T = onnx.AttributeProto.AttributeType;
  const nodes = g.node ?? [];
  const outs = g.output ?? [];
  if (opset >= 18) g.initializer = [...(g.initializer ?? []), tensor('calib:axes', [1], DT.INT64, BigInt64Array.of(1n))];
  tensors.forEach((t, i) => {
    const flat = `calib:${i}:flat`;
    nodes.push(onnx.NodeProto.create({ opType: 'Flatten', name: flat, input: [t], output: [flat], attribute: [{ name: 'axis', type: T.INT, i: 1 }] }));
    for (const op of ['min', 'max'] as const) {
      const out = `calib:${i}:${op}`;
      const reduce = op === 'min' ? 'ReduceMin' : 'ReduceMax';
      nodes.push(
        opset >= 18
          ? onnx.NodeProto.create({ opType: reduce, name: out, input: [flat, 'calib:axes'], output: [out], attribute: [{ name: 'keepdims', type: T.INT, i: 0 }] })
          : onnx.NodeProto.create({ opType: reduce, name: out, input: [flat], output: [out], attribute: [{ name: 'axes', type: T.INTS, ints: [1] }, { name: 'keepdims', type: T.INT, i: 0 }] }),
      );
      outs.push(onnx.ValueInfoProto.create({ name: out, type: { tensorType: { elemType: DT.FLOAT } } }));
    }
  });
  g.node = nodes;
  g.output = outs;
  return onnx.ModelProto.encode(model as onnxProto.onnx.ModelProto).finish();
}

export interface QuantizeSummary {
  /** Nodes quantized, by op type. */
  quantized: Record<string, number>;
  /** Nodes of those op types left in fp32. */
  keptFloat: number;
  /** Activation tensors given Q/DQ pairs. */
  tensors: number;
}

/**
 * The QDQ int8 model of fp32 `bytes`, with `ranges` for every tensor of tensorsToCalibrate (same
 * options). Metadata and everything not quantized are kept as they were.
 */
export function quantizeModel(bytes: Uint8Array, ranges: ReadonlyMap<string, TensorRange>, opts: QuantizeOptions = {}): { bytes: Uint8Array; summary: QuantizeSummary } {
  const type = opts.activationType ?? 'uint8';
  const { model, nodes: chosen, tensors } = plan(bytes, opts);
  const g: IGraphProto = model.graph!;
  const inits = new Map((g.initializer ?? []).map((t) => [t.name!, t]));
  const newInits: ITensorProto[] = [];
  const used = new Set<string>([...(g.initializer ?? []).map((t) => t.name!), ...(g.input ?? []).map((i) => i.name!), ...(g.node ?? []).flatMap((n) => n.output ?? [])]);
  const fresh = (hint: string): string => {
    let name = hint;
    for (let i = 1; used.has(name); i++) name = `${hint}_${i}`;
    used.add(name);
    return name;
  };
  const T = onnx.AttributeProto.AttributeType;
  const actParams = new Map<string, QuantParams>();
  for (const t of tensors) {
    const r = ranges.get(t);
    if (!r) throw new Error(`no calibration range for tensor '${t}'`);
    actParams.set(t, activationParams(r, type));
  }
  const zpType = type === 'uint8' ? DT.UINT8 : DT.INT8;
  const zpArray = (v: number): ArrayBufferView => (type === 'uint8' ? Uint8Array.of(v) : Int8Array.of(v));

  // Q/DQ pair after each activation tensor; its readers read the DQ output.
  const after = new Map<string, INodeProto[]>();
  const renamed = new Map<string, string>();
  for (const t of tensors) {
    const p = actParams.get(t)!;
    const s = fresh(`${t}/scale`);
    const z = fresh(`${t}/zero_point`);
    newInits.push(tensor(s, [], DT.FLOAT, Float32Array.of(p.scale)), tensor(z, [], zpType, zpArray(p.zeroPoint)));
    const q = fresh(`${t}/quantized`);
    const dq = fresh(`${t}/dequantized`);
    after.set(t, [
      onnx.NodeProto.create({ opType: 'QuantizeLinear', name: fresh(`${t}/QuantizeLinear`), input: [t, s, z], output: [q] }),
      onnx.NodeProto.create({ opType: 'DequantizeLinear', name: fresh(`${t}/DequantizeLinear`), input: [q, s, z], output: [dq] }),
    ]);
    renamed.set(t, dq);
  }
  const summary: QuantizeSummary = { quantized: {}, keptFloat: 0, tensors: tensors.length };
  const ops = new Set(opts.ops ?? ['Conv']);
  const out: INodeProto[] = [];
  for (const t of (g.input ?? []).map((i) => i.name!)) out.push(...(after.get(t) ?? []));
  for (const n of g.node ?? []) {
    const x = n.input?.[0];
    n.input = (n.input ?? []).map((i) => renamed.get(i) ?? i);
    const axis = chosen.get(n);
    if (axis !== undefined) {
      summary.quantized[n.opType!] = (summary.quantized[n.opType!] ?? 0) + 1;
      const wInit = inits.get(n.input[1]!)!;
      const dims = dimsOf(wInit);
      const { q, scales } = quantizeWeightsPerChannel(floatData(wInit), dims, axis);
      const channels = dims[axis]!;
      const wq = fresh(`${wInit.name}/quantized`);
      const ws = fresh(`${wInit.name}/scale`);
      const wz = fresh(`${wInit.name}/zero_point`);
      newInits.push(tensor(wq, dims, DT.INT8, q), tensor(ws, [channels], DT.FLOAT, scales), tensor(wz, [channels], DT.INT8, new Int8Array(channels)));
      const wdq = fresh(`${wInit.name}/dequantized`);
      out.push(onnx.NodeProto.create({ opType: 'DequantizeLinear', name: fresh(`${wInit.name}/DequantizeLinear`), input: [wq, ws, wz], output: [wdq], attribute: [{ name: 'axis', type: T.INT, i: axis }] }));
      n.input[1] = wdq;
      const biasName = n.input[2];
      const xParams = actParams.get(x!)!; // plan gave every quantized node's input a Q/DQ pair
      if (biasName) {
        const bInit = inits.get(biasName)!;
        const b = floatData(bInit);
        if (b.length === channels) {
          const bs = Float32Array.from(scales, (s) => s * xParams.scale);
          const bq = Int32Array.from(b, (v, c) => Math.min(2 ** 31 - 1, Math.max(-(2 ** 31), roundHalfEven(v / bs[c]!))));
          const bqn = fresh(`${biasName}/quantized`);
          const bsn = fresh(`${biasName}/scale`);
          const bzn = fresh(`${biasName}/zero_point`);
          newInits.push(tensor(bqn, [channels], DT.INT32, bq), tensor(bsn, [channels], DT.FLOAT, bs), tensor(bzn, [channels], DT.INT32, new Int32Array(channels)));
          const bdq = fresh(`${biasName}/dequantized`);
          out.push(onnx.NodeProto.create({ opType: 'DequantizeLinear', name: fresh(`${biasName}/DequantizeLinear`), input: [bqn, bsn, bzn], output: [bdq], attribute: [{ name: 'axis', type: T.INT, i: 0 }] }));
          n.input[2] = bdq;
        }
      }
    } else if (ops.has(n.opType!)) summary.keptFloat++;
    out.push(n);
    for (const o of n.output ?? []) out.push(...(after.get(o) ?? []));
  }
  g.node = out;
  // Weights now held as int8 are dropped in their float form when nothing else reads them.
  const read = new Set(out.flatMap((n) => n.input ?? []));
  g.initializer = [...(g.initializer ?? []).filter((t) => read.has(t.name!)), ...newInits];
  return { bytes: onnx.ModelProto.encode(model as onnxProto.onnx.ModelProto).finish(), summary };
}

/** sha256 of a model's graph alone (nodes, weights, inputs, outputs): metadata such as created_at left out. */
export function graphSha256(bytes: Uint8Array): string {
  const graph = onnx.ModelProto.decode(bytes).graph!;
  return createHash('sha256').update(onnx.GraphProto.encode(graph as onnxProto.onnx.GraphProto).finish()).digest('hex');
}

/** `bytes` with `extra` added to (or replacing entries of) its metadata_props. */
export function withMetadata(bytes: Uint8Array, extra: Record<string, string>): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const props = (model.metadataProps ?? []).filter((p) => !(p.key! in extra));
  model.metadataProps = [...props, ...Object.entries(extra).map(([key, value]) => onnx.StringStringEntryProto.create({ key, value }))];
  return onnx.ModelProto.encode(model as onnxProto.onnx.ModelProto).finish();
}
