/**
 * A small typed builder for ONNX models over the `onnx-proto` protobuf classes.
 *
 * Names given to `input`, `output`, `initializer` and `node(..., outputs)` are used exactly and
 * must be unique; `uniqueName(hint)` derives a fresh name when the caller does not care.
 * Int64 values (attributes `ints`/`i`, int64 initializers) are plain JS numbers: protobufjs
 * writes them as two's-complement varints, so negative axes are encoded correctly.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type Onnx = typeof onnxProto.onnx;
type INodeProto = ReturnType<Onnx['NodeProto']['create']>;
type ITensorProto = ReturnType<Onnx['TensorProto']['create']>;
type IValueInfoProto = ReturnType<Onnx['ValueInfoProto']['create']>;
type IAttributeProto = ReturnType<Onnx['AttributeProto']['create']>;

/** A float attribute (a bare number would be ambiguous with int). */
export interface FloatAttr {
  readonly float: number;
}
/** A list-of-floats attribute. */
export interface FloatsAttr {
  readonly floats: readonly number[];
}
/** number -> INT, number[] -> INTS, string -> STRING; wrap floats with `float()` / `floats()`. */
export type AttrValue = number | readonly number[] | string | FloatAttr | FloatsAttr;
export type Attrs = Record<string, AttrValue>;

export const float = (value: number): FloatAttr => ({ float: value });
export const floats = (values: readonly number[]): FloatsAttr => ({ floats: values });

export type ElemType = 'float' | 'int64';
/** A dimension: a fixed size or a symbolic name (e.g. 'N' for a dynamic batch). */
export type Dim = number | string;

/** Float32Array -> float tensor; number[] / BigInt64Array -> int64 tensor (shapes, axes, pads). */
export type InitializerData = Float32Array | BigInt64Array | readonly number[];

export interface OnnxGraphBuilderOptions {
  name: string;
  /** Default-domain opset; 17 unless told otherwise. */
  opset?: number;
  producerName?: string;
}

/** The IR version each opset was released with (ONNX versioning table). */
function irVersionFor(opset: number): number {
  if (opset <= 8) return 3;
  if (opset === 9) return 4;
  if (opset === 10) return 5;
  if (opset === 11) return 6;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

function elemTypeCode(t: ElemType): number {
  return t === 'float' ? onnx.TensorProto.DataType.FLOAT : onnx.TensorProto.DataType.INT64;
}

function valueInfo(name: string, shape: readonly Dim[] | undefined, elemType: ElemType): IValueInfoProto {
  const tensorType: { elemType: number; shape?: { dim: { dimValue?: number; dimParam?: string }[] } } = {
    elemType: elemTypeCode(elemType),
  };
  if (shape) tensorType.shape = { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return onnx.ValueInfoProto.create({ name, type: { tensorType } });
}

function attribute(name: string, value: AttrValue): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`attribute '${name}': ${value} is not an integer (use float())`);
    return onnx.AttributeProto.create({ name, type: T.INT, i: value });
  }
  if (typeof value === 'string') {
    return onnx.AttributeProto.create({ name, type: T.STRING, s: new TextEncoder().encode(value) });
  }
  if (Array.isArray(value)) {
    const ints = value as readonly number[];
    for (const v of ints) {
      if (!Number.isSafeInteger(v)) throw new Error(`attribute '${name}': ${v} is not an integer (use floats())`);
    }
    return onnx.AttributeProto.create({ name, type: T.INTS, ints: [...ints] });
  }
  if ('float' in value) return onnx.AttributeProto.create({ name, type: T.FLOAT, f: value.float });
  return onnx.AttributeProto.create({ name, type: T.FLOATS, floats: [...(value as FloatsAttr).floats] });
}

function tensorProto(name: string, data: InitializerData, dims: readonly number[]): ITensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new Error(`initializer '${name}': dims [${dims.join(',')}] need ${count} values, got ${data.length}`);
  }
  // raw_data is little-endian by spec; typed arrays are little-endian on every platform Node runs on.
  let raw: Uint8Array;
  let dataType: number;
  if (data instanceof Float32Array) {
    raw = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    dataType = onnx.TensorProto.DataType.FLOAT;
  } else {
    const ints = data instanceof BigInt64Array ? data : BigInt64Array.from(data, (v) => BigInt(v));
    raw = new Uint8Array(ints.buffer.slice(ints.byteOffset, ints.byteOffset + ints.byteLength));
    dataType = onnx.TensorProto.DataType.INT64;
  }
  return onnx.TensorProto.create({ name, dims: [...dims], dataType, rawData: raw });
}

export class OnnxGraphBuilder {
  readonly name: string;
  readonly opset: number;
  private readonly producerName: string;
  private readonly names = new Set<string>();
  private readonly counters = new Map<string, number>();
  private readonly inputs: IValueInfoProto[] = [];
  private readonly outputs: IValueInfoProto[] = [];
  private readonly initializers: ITensorProto[] = [];
  private readonly nodes: INodeProto[] = [];
  private readonly meta = new Map<string, string>();

  constructor(opts: OnnxGraphBuilderOptions) {
    this.name = opts.name;
    this.opset = opts.opset ?? 17;
    this.producerName = opts.producerName ?? 'phoneside';
  }

  /** A name not used yet, derived from `hint` (`hint`, `hint_1`, `hint_2`, ...). */
  uniqueName(hint: string): string {
    if (!this.names.has(hint)) return hint;
    let i = this.counters.get(hint) ?? 1;
    while (this.names.has(`${hint}_${i}`)) i++;
    this.counters.set(hint, i + 1);
    return `${hint}_${i}`;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX name '${name}' is already used`);
    this.names.add(name);
    return name;
  }

  /** Declares a graph input; returns its name. */
  input(name: string, shape: readonly Dim[], elemType: ElemType = 'float'): string {
    this.inputs.push(valueInfo(this.claim(name), shape, elemType));
    return name;
  }

  /** Marks an existing tensor (a node output) as a graph output. */
  output(name: string, shape?: readonly Dim[], elemType: ElemType = 'float'): string {
    if (!this.names.has(name)) throw new Error(`graph output '${name}' is not produced by any node`);
    this.outputs.push(valueInfo(name, shape, elemType));
    return name;
  }

  /** A constant tensor. `dims` defaults to 1-D; pass [] for a scalar. Returns its name. */
  initializer(name: string, data: InitializerData, dims: readonly number[] = [data.length]): string {
    this.initializers.push(tensorProto(this.claim(name), data, dims));
    return name;
  }

  /** Like `initializer` but under a fresh name derived from `hint`. */
  constant(hint: string, data: InitializerData, dims?: readonly number[]): string {
    return this.initializer(this.uniqueName(hint), data, dims);
  }

  /**
   * Appends a node. `outputs`: an exact output name, a list of them, or a count of outputs to
   * name automatically (default: one, named after the op type). Returns the output name(s).
   */
  node(opType: string, inputs: readonly string[], outputs?: string, attrs?: Attrs): string;
  node(opType: string, inputs: readonly string[], outputs: readonly string[] | number, attrs?: Attrs): string[];
  node(opType: string, inputs: readonly string[], outputs?: string | readonly string[] | number, attrs: Attrs = {}): string | string[] {
    for (const inp of inputs) {
      // '' marks an omitted optional input in ONNX.
      if (inp !== '' && !this.names.has(inp)) throw new Error(`${opType}: input '${inp}' does not exist`);
    }
    let outNames: string[];
    if (outputs === undefined) outNames = [this.claim(this.uniqueName(opType))];
    else if (typeof outputs === 'string') outNames = [this.claim(outputs)];
    else if (typeof outputs === 'number') {
      outNames = Array.from({ length: outputs }, () => this.claim(this.uniqueName(opType)));
    } else outNames = outputs.map((o) => this.claim(o));
    this.nodes.push(
      onnx.NodeProto.create({
        name: `${opType}_${this.nodes.length}`,
        opType,
        input: [...inputs],
        output: outNames,
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
      }),
    );
    return typeof outputs === 'string' || outputs === undefined ? outNames[0]! : outNames;
  }

  metadata(key: string, value: string): void {
    this.meta.set(key, value);
  }

  /** Serialises the model (ModelProto bytes, loadable by ONNX Runtime). */
  toBytes(): Uint8Array {
    if (this.outputs.length === 0) throw new Error('ONNX graph has no outputs');
    const model = onnx.ModelProto.create({
      irVersion: irVersionFor(this.opset),
      opsetImport: [{ domain: '', version: this.opset }],
      producerName: this.producerName,
      graph: {
        name: this.name,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      },
      metadataProps: [...this.meta].map(([key, value]) => ({ key, value })),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
