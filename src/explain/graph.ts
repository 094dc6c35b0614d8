/**
 * Finds what Grad-CAM needs in a classifier's ONNX graph and cuts the graph into the two models it
 * runs: the whole classifier with its last feature maps and logits as extra outputs (the probe),
 * and, per member, the head alone (pooled features in, logits out) for the gradients.
 *
 * A phoneside classifier ends GlobalAveragePool -> head -> Softmax -> output; an ensemble ends
 * Mean(Softmax(member logits)...) -> output, each member with its own pooling and head. Anything
 * else (a head that reads the pixels, several poolings feeding one head, another ending) is
 * reported as unsupported, so the caller can fall back to occlusion. Pure protobuf work.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type IModelProto = onnxProto.onnx.IModelProto;
type INodeProto = onnxProto.onnx.INodeProto;

/** One classifier of the graph (one for a plain model, one per member for an ensemble). */
export interface CamMember {
  /** The last convolutional feature map, [views*N, C, h, w]: the input of the pooling. */
  featureMap: string;
  /** The pooled features, [views*N, C, 1, 1]: the head's only input. */
  pooled: string;
  /** The member's logits (temperature applied, views averaged), [N, classes]: the Softmax's input. */
  logits: string;
}

export type CamStructure = { ok: true; members: CamMember[] } | { ok: false; reason: string };

const decode = (bytes: Uint8Array): IModelProto => onnx.ModelProto.decode(bytes);
const encode = (model: IModelProto): Uint8Array => onnx.ModelProto.encode(model as onnxProto.onnx.ModelProto).finish();

/** tensor name -> the node producing it. */
function producers(nodes: readonly INodeProto[]): Map<string, INodeProto> {
  const m = new Map<string, INodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) m.set(o, n);
  return m;
}

/** Follows Identity nodes back from `tensor` to the tensor they copy. */
function throughIdentity(tensor: string, made: ReadonlyMap<string, INodeProto>): string {
  let t = tensor;
  for (let n = made.get(t); n?.opType === 'Identity'; n = made.get(t)) t = n.input![0]!;
  return t;
}

/**
 * The nodes computing `target` from `stops` (tensors treated as given) and initializers, in graph
 * order; a string saying why not when `target` depends on anything else (such as the graph input).
 */
function subgraph(target: string, stops: ReadonlySet<string>, g: onnxProto.onnx.IGraphProto): INodeProto[] | string {
  const made = producers(g.node ?? []);
  const constants = new Set((g.initializer ?? []).map((t) => t.name!));
  const needed = new Set<INodeProto>();
  const todo = [target];
  while (todo.length > 0) {
    const t = todo.pop()!;
    if (t === '' || stops.has(t) || constants.has(t)) continue;
    const n = made.get(t);
    if (n === undefined) return `'${target}' depends on '${t}', which is not computed from the pooled features`;
    if (needed.has(n)) continue;
    needed.add(n);
    todo.push(...(n.input ?? []));
  }
  return (g.node ?? []).filter((n) => needed.has(n));
}

/** The GlobalAveragePool nodes `logits` depends on (walking back until one is met on each path). */
function poolingsFeeding(logits: string, made: ReadonlyMap<string, INodeProto>): INodeProto[] {
  const found = new Set<INodeProto>();
  const seen = new Set<string>();
  const todo = [logits];
  while (todo.length > 0) {
    const t = todo.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    const n = made.get(t);
    if (n === undefined) continue;
    if (n.opType === 'GlobalAveragePool') found.add(n);
    else todo.push(...(n.input ?? []));
  }
  return [...found];
}

/** Where Grad-CAM can read a classifier graph (`output` = its probabilities), or why it cannot. */
export function camStructure(bytes: Uint8Array, output = 'output'): CamStructure {
  const g = decode(bytes).graph;
  if (!g) return { ok: false, reason: 'the ONNX file has no graph' };
  const nodes = g.node ?? [];
  const made = producers(nodes);
  const last = made.get(throughIdentity(output, made));
  if (last === undefined) return { ok: false, reason: `no node computes '${output}'` };
  const softmaxes = last.opType === 'Mean' ? (last.input ?? []).map((t) => made.get(throughIdentity(t, made))) : [last];
  const members: CamMember[] = [];
  for (const s of softmaxes) {
    if (s?.opType !== 'Softmax') return { ok: false, reason: `the output is not a softmax (or a mean of softmaxes) of logits` };
    const logits = s.input![0]!;
    const pools = poolingsFeeding(logits, made);
    if (pools.length !== 1) return { ok: false, reason: `the logits '${logits}' come from ${pools.length} global average poolings, not one` };
    const pool = pools[0]!;
    const head = subgraph(logits, new Set([pool.output![0]!]), g);
    if (typeof head === 'string') return { ok: false, reason: head };
    members.push({ featureMap: pool.input![0]!, pooled: pool.output![0]!, logits });
  }
  return { ok: true, members };
}

const floatOutput = (name: string): onnxProto.onnx.IValueInfoProto => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } });

/** The whole model with each member's feature map, pooled features and logits as extra outputs. */
export function probeModel(bytes: Uint8Array, members: readonly CamMember[]): Uint8Array {
  const model = decode(bytes);
  const g = model.graph!;
  const have = new Set((g.output ?? []).map((o) => o.name!));
  const extra = members.flatMap((m) => [m.featureMap, m.pooled, m.logits]).filter((t) => !have.has(t));
  g.output = [...(g.output ?? []), ...[...new Set(extra)].map(floatOutput)];
  return encode(model);
}

/** One member's head alone: input `member.pooled` [rows, C, 1, 1], output `member.logits`. */
export function headModel(bytes: Uint8Array, member: CamMember): Uint8Array {
  const model = decode(bytes);
  const g = model.graph!;
  const head = subgraph(member.logits, new Set([member.pooled]), g);
  if (typeof head === 'string') throw new Error(head);
  const used = new Set(head.flatMap((n) => n.input ?? []));
  const pooledInfo = onnx.ValueInfoProto.create({
    name: member.pooled,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'R' }, { dimParam: 'C' }, { dimValue: 1 }, { dimValue: 1 }] } } },
  });
  model.graph = onnx.GraphProto.create({
    name: `${g.name ?? 'model'}-head`,
    node: head,
    initializer: (g.initializer ?? []).filter((t) => used.has(t.name!)),
    input: [pooledInfo],
    output: [floatOutput(member.logits)],
  });
  model.metadataProps = [];
  return encode(model);
}
