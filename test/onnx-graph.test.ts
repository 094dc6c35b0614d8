import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import {
  inferShapes,
  sliceGraph,
  truncateGraph,
  type ActivationFn,
  type GraphNode,
  type LayerGraph,
  type LayerOp,
  type Padding,
} from '../src/backbones/graph.js';
import { OnnxGraphBuilder, float } from '../src/onnx/builder.js';
import { buildTrunkModel } from '../src/onnx/from-graph.js';
import { createGraphModule } from '../src/model/graph-tfjs.js';
import { createRng, type Rng } from '../src/util/rng.js';
import { relErr } from './helpers/numeric.js';

const { onnx } = onnxProto;

/** Decoded protobuf fields are typed optional/nullable. */
function need<T>(v: T | null | undefined): T {
  assert.ok(v !== null && v !== undefined, 'missing protobuf field');
  return v;
}

/** Builds random IR graphs layer by layer (weights drawn from a seeded RNG). */
class RandomGraph {
  private readonly nodes: GraphNode[];
  private n = 0;
  constructor(
    private readonly rng: Rng,
    shape: [number, number, number],
  ) {
    this.nodes = [{ name: 'input', op: { kind: 'input', shape }, inputs: [], weights: {} }];
  }
  private channels(x: string): number {
    const s = inferShapes({ nodes: this.nodes, input: 'input', output: x }).get(x)!;
    return s[s.length - 1]!;
  }
  private tensor(shape: number[], lo: number, hi: number): { shape: number[]; data: Float32Array } {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = this.rng.uniform(lo, hi);
    return { shape, data };
  }
  private push(op: LayerOp, inputs: string[], weights: GraphNode['weights'] = {}): string {
    const name = `${op.kind}_${this.n++}`;
    this.nodes.push({ name, op, inputs, weights });
    return name;
  }
  conv(x: string, o: { filters: number; k: number; s: number; padding: Padding; bias?: boolean; act?: ActivationFn }): string {
    const ci = this.channels(x);
    const r = 1 / Math.sqrt(o.k * o.k * ci);
    const weights: GraphNode['weights'] = { kernel: this.tensor([o.k, o.k, ci, o.filters], -r, r) };
    if (o.bias) weights['bias'] = this.tensor([o.filters], -0.5, 0.5);
    return this.push(
      { kind: 'conv2d', filters: o.filters, kernel: [o.k, o.k], strides: [o.s, o.s], dilation: [1, 1], padding: o.padding, useBias: !!o.bias, activation: o.act ?? 'linear' },
      [x],
      weights,
    );
  }
  dw(x: string, o: { k: number; s: number; padding: Padding; mult?: number; bias?: boolean; act?: ActivationFn }): string {
    const c = this.channels(x);
    const m = o.mult ?? 1;
    const r = 1 / o.k;
    const weights: GraphNode['weights'] = { depthwise_kernel: this.tensor([o.k, o.k, c, m], -r, r) };
    if (o.bias) weights['bias'] = this.tensor([c * m], -0.5, 0.5);
    return this.push(
      { kind: 'depthwiseConv2d', kernel: [o.k, o.k], strides: [o.s, o.s], dilation: [1, 1], padding: o.padding, depthMultiplier: m, useBias: !!o.bias, activation: o.act ?? 'linear' },
      [x],
      weights,
    );
  }
  bn(x: string, withGammaBeta = true): string {
    const c = this.channels(x);
    const weights: GraphNode['weights'] = {
      moving_mean: this.tensor([c], -0.5, 0.5),
      moving_variance: this.tensor([c], 0.3, 2),
    };
    if (withGammaBeta) {
      weights['gamma'] = this.tensor([c], 0.5, 1.5);
      weights['beta'] = this.tensor([c], -0.5, 0.5);
    }
    return this.push({ kind: 'batchNorm', epsilon: 1e-3 }, [x], weights);
  }
  act(x: string, fn: ActivationFn): string {
    return this.push({ kind: 'activation', fn }, [x]);
  }
  prelu(x: string): string {
    return this.push({ kind: 'prelu' }, [x], { alpha: this.tensor([this.channels(x)], 0.05, 0.5) });
  }
  pad(x: string, pads: [[number, number], [number, number]]): string {
    return this.push({ kind: 'zeroPad', pads }, [x]);
  }
  pool(x: string, k: number, s: number, padding: Padding): string {
    return this.push({ kind: 'maxPool', pool: [k, k], strides: [s, s], padding }, [x]);
  }
  add(a: string, b: string): string {
    return this.push({ kind: 'add' }, [a, b]);
  }
  gap(x: string): string {
    return this.push({ kind: 'globalAvgPool' }, [x]);
  }
  dense(x: string, units: number, act: ActivationFn = 'linear', bias = true): string {
    const ci = this.channels(x);
    const r = 1 / Math.sqrt(ci);
    const weights: GraphNode['weights'] = { kernel: this.tensor([ci, units], -r, r) };
    if (bias) weights['bias'] = this.tensor([units], -0.5, 0.5);
    return this.push({ kind: 'dense', units, useBias: bias, activation: act }, [x], weights);
  }
  graph(output: string): LayerGraph {
    return { nodes: [...this.nodes], input: 'input', output };
  }
}

function randomBatch(rng: Rng, shape: number[]): Float32Array {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform(-1, 1);
  return data;
}

/** [N, H, W, C] -> [N, C, H, W]. */
function nhwcToNchw(data: Float32Array, [n, h, w, c]: number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let b = 0; b < n!; b++)
    for (let y = 0; y < h!; y++)
      for (let x = 0; x < w!; x++)
        for (let k = 0; k < c!; k++) out[((b * c! + k) * h! + y) * w! + x] = data[((b * h! + y) * w! + x) * c! + k]!;
  return out;
}

async function runOnnx(model: Uint8Array, nchw: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const out = await session.run({ input: new ort.Tensor('float32', nchw, dims) });
    const t = out['output']!;
    return { data: t.data as Float32Array, dims: t.dims };
  } finally {
    await session.release();
  }
}

function runTfjs(graph: LayerGraph, nhwc: Float32Array, dims: number[]): { data: Float32Array; dims: number[] } {
  const module = createGraphModule(graph, { trainable: false });
  try {
    const y = module.apply(tf.tensor4d(nhwc, dims as [number, number, number, number]));
    const result = { data: y.dataSync() as Float32Array, dims: y.shape };
    y.dispose();
    return result;
  } finally {
    module.dispose();
  }
}

/** Runs `graph` through ONNX Runtime (folded and unfolded BN) and tfjs; asserts they agree. */
async function assertAgree(graph: LayerGraph, seed: number, batch = 2): Promise<void> {
  const [h, w, c] = inferShapes(graph).get(graph.input) as [number, number, number];
  const nhwcDims = [batch, h, w, c];
  const x = randomBatch(createRng(seed), nhwcDims);
  const ref = runTfjs(graph, x, nhwcDims);
  for (const foldBatchNorm of [true, false]) {
    const got = await runOnnx(buildTrunkModel(graph, { foldBatchNorm }), nhwcToNchw(x, nhwcDims), [batch, c, h, w]);
    assert.deepEqual([...got.dims], ref.dims, `output dims (fold=${foldBatchNorm})`);
    const err = relErr(got.data, ref.data, 1e-3);
    assert.ok(err <= 1e-4, `ORT vs tfjs relative error ${err.toExponential(2)} (fold=${foldBatchNorm})`);
  }
}

before(async () => {
  await tf.setBackend('cpu');
});

describe('OnnxGraphBuilder', () => {
  test('encodes int64 attributes/initializers (negative too), floats, metadata, IR 8 / opset 17', () => {
    const b = new OnnxGraphBuilder({ name: 'g' });
    b.input('x', ['N', 2, 3]);
    const axes = b.initializer('axes', [-1, 5_000_000_000], [2]);
    const y = b.node('Identity', ['x'], undefined, { ints: [-2, 0, 2 ** 40], i: -7, f: float(0.25), s: 'hi' });
    b.node('Identity', [y], 'out');
    b.output('out', ['N', 2, 3]);
    b.metadata('phoneside.layout', 'NHWC');
    const m = onnx.ModelProto.decode(b.toBytes());
    assert.equal(Number(m.irVersion), 8);
    assert.equal(Number(m.opsetImport[0]!.version), 17);
    assert.deepEqual(
      m.metadataProps.map((p) => [p.key, p.value]),
      [['phoneside.layout', 'NHWC']],
    );
    const graph = need(m.graph);
    const attrs = new Map(need(need(graph.node)[0]!.attribute).map((a) => [a.name, a]));
    assert.deepEqual(need(need(attrs.get('ints')).ints).map(Number), [-2, 0, 2 ** 40]);
    assert.equal(Number(need(attrs.get('i')).i), -7);
    assert.equal(need(attrs.get('f')).f, 0.25);
    assert.equal(new TextDecoder().decode(need(need(attrs.get('s')).s)), 'hi');
    const init = need(need(graph.initializer).find((t) => t.name === axes));
    assert.equal(init.dataType, onnx.TensorProto.DataType.INT64);
    const raw = new Uint8Array(need(init.rawData)); // a copy: decoded bytes may be a view into a pooled Buffer
    assert.deepEqual([...new BigInt64Array(raw.buffer)], [-1n, 5_000_000_000n]);
    const dims = need(need(need(need(graph.input)[0]!.type).tensorType).shape).dim;
    assert.deepEqual(need(dims).map((d) => d.dimParam || Number(d.dimValue)), ['N', 2, 3]);
  });

  test('names: exact names must be unique, inputs must exist, uniqueName derives fresh ones', () => {
    const b = new OnnxGraphBuilder({ name: 'g' });
    b.input('x', [1]);
    assert.throws(() => b.input('x', [1]), /already used/);
    assert.throws(() => b.node('Relu', ['nope']), /does not exist/);
    assert.equal(b.uniqueName('x'), 'x_1');
    const [r1, r2] = [b.node('Relu', ['x']), b.node('Relu', ['x'])];
    assert.notEqual(r1, r2);
    assert.throws(() => b.output('missing'), /not produced/);
    assert.throws(() => b.node('Foo', ['x'], undefined, { a: 0.5 }), /not an integer/);
  });

  test('a model with int64 initializer inputs runs in ONNX Runtime', async () => {
    const b = new OnnxGraphBuilder({ name: 'g' });
    b.input('input', ['N', 2, 3]);
    const shape = b.constant('shape', [0, -1]);
    const y = b.node('Reshape', ['input', shape]);
    const sum = b.node('ReduceSum', [y, b.constant('axes', [-1])], undefined, { keepdims: 0 });
    b.node('Mul', [sum, b.constant('half', new Float32Array([0.5]), [])], 'output');
    b.output('output', ['N']);
    const got = await runOnnx(b.toBytes(), Float32Array.from([1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, -2]), [2, 2, 3]);
    assert.deepEqual([...got.dims], [2]);
    assert.deepEqual([...got.data], [10.5, -1]);
  });
});

describe('ONNX emitter vs tfjs GraphModule', () => {
  test("'same' padding puts the odd pixel bottom/right (TF rule), in both emitters", async () => {
    const nodes: GraphNode[] = [
      { name: 'in', op: { kind: 'input', shape: [4, 4, 1] }, inputs: [], weights: {} },
      {
        name: 'c',
        op: { kind: 'conv2d', filters: 1, kernel: [3, 3], strides: [2, 2], dilation: [1, 1], padding: 'same', useBias: false, activation: 'linear' },
        inputs: ['in'],
        weights: { kernel: { shape: [3, 3, 1, 1], data: new Float32Array(9).fill(1) } },
      },
    ];
    const graph: LayerGraph = { nodes, input: 'in', output: 'c' };
    const ones = new Float32Array(16).fill(1);
    // Windows at rows/cols 0..2 and 2..4 (4 = padding): 9, 6 / 6, 4. Padding on top would give 4, 6 / 6, 9.
    assert.deepEqual([...runTfjs(graph, ones, [1, 4, 4, 1]).data], [9, 6, 6, 4]);
    assert.deepEqual([...(await runOnnx(buildTrunkModel(graph), ones, [1, 1, 4, 4])).data], [9, 6, 6, 4]);
  });

  test('conv2d: 1x1 / 3x3 / 7x7, stride 1 / 2, same / valid, with and without bias, odd sizes', async () => {
    const sizes = [7, 9, 15];
    const acts: ActivationFn[] = ['linear', 'relu', 'relu6'];
    let i = 0;
    for (const k of [1, 3, 7])
      for (const s of [1, 2])
        for (const padding of ['same', 'valid'] as const)
          for (const bias of [true, false]) {
            const size = sizes[i % 3]!;
            const g = new RandomGraph(createRng(100 + i), [size, size, 3]);
            // A BN after a linear conv gets folded; after an activated one it must not be.
            const y = g.bn(g.conv('input', { filters: 5, k, s, padding, bias, act: acts[i % 3] }), i % 2 === 0);
            await assertAgree(g.graph(y), i);
            i++;
          }
  });

  test('depthwiseConv2d: stride 1 / 2, same / valid, multiplier 1 / 2, bias or not, then BN + relu6', async () => {
    let i = 0;
    for (const s of [1, 2])
      for (const padding of ['same', 'valid'] as const)
        for (const mult of [1, 2]) {
          const size = [7, 9, 15][i % 3]!;
          const g = new RandomGraph(createRng(200 + i), [size, size, 4]);
          const y = g.act(g.bn(g.dw('input', { k: 3, s, padding, mult, bias: i % 2 === 1 })), 'relu6');
          await assertAgree(g.graph(y), 50 + i);
          i++;
        }
  });

  test('ResNet-ish: asymmetric zeroPad, maxPool valid/same, residual add, globalAvgPool, dense + softmax', async () => {
    const g = new RandomGraph(createRng(7), [15, 15, 3]);
    let x = g.act(g.bn(g.conv('input', { filters: 8, k: 7, s: 2, padding: 'same', bias: true })), 'relu');
    x = g.pool(g.pad(x, [[0, 1], [0, 1]]), 3, 2, 'valid');
    const branch = g.bn(g.conv(g.act(g.bn(g.conv(x, { filters: 4, k: 1, s: 1, padding: 'valid' })), 'relu'), { filters: 8, k: 3, s: 1, padding: 'same' }));
    x = g.act(g.add(branch, x), 'relu');
    x = g.pool(x, 3, 2, 'same');
    const mid = x;
    x = g.dense(g.gap(x), 3, 'softmax');
    await assertAgree(g.graph(mid), 1);
    await assertAgree(g.graph(x), 2);
    await assertAgree(g.graph(x), 3, 1); // dynamic batch
  });

  test('MobileNet-ish inverted residual with relu6, PReLU, BN on [N, C], dense without bias', async () => {
    const g = new RandomGraph(createRng(8), [9, 9, 3]);
    let x = g.act(g.bn(g.conv('input', { filters: 6, k: 3, s: 2, padding: 'same' })), 'relu6');
    const expand = g.act(g.bn(g.conv(x, { filters: 12, k: 1, s: 1, padding: 'same' })), 'relu6');
    const dw = g.act(g.bn(g.dw(expand, { k: 3, s: 1, padding: 'same' })), 'relu6');
    x = g.add(x, g.bn(g.conv(dw, { filters: 6, k: 1, s: 1, padding: 'same' }), false));
    x = g.prelu(g.dw(g.pad(x, [[0, 1], [0, 1]]), { k: 3, s: 2, padding: 'valid', bias: true }));
    const mid = x;
    x = g.dense(g.prelu(g.bn(g.gap(x))), 4, 'linear', false);
    await assertAgree(g.graph(mid), 4);
    await assertAgree(g.graph(x), 5);
  });

  test('NCHW output layout', async () => {
    const g = new RandomGraph(createRng(9), [7, 7, 2]);
    const graph = g.graph(g.conv('input', { filters: 3, k: 3, s: 1, padding: 'valid', bias: true }));
    const x = randomBatch(createRng(10), [1, 7, 7, 2]);
    const ref = runTfjs(graph, x, [1, 7, 7, 2]);
    const got = await runOnnx(buildTrunkModel(graph, { outputLayout: 'NCHW' }), nhwcToNchw(x, [1, 7, 7, 2]), [1, 2, 7, 7]);
    assert.deepEqual([...got.dims], [1, 3, 5, 5]);
    assert.ok(relErr(got.data, nhwcToNchw(ref.data, [1, 5, 5, 3]), 1e-3) <= 1e-4);
  });

  test('a graph cut in the middle with sliceGraph: trunk (ONNX) then top (tfjs or ONNX) equals the whole', async () => {
    const g = new RandomGraph(createRng(11), [15, 15, 3]);
    let x = g.act(g.bn(g.conv('input', { filters: 6, k: 3, s: 2, padding: 'same' })), 'relu');
    const inBlock = g.act(g.bn(g.conv(x, { filters: 6, k: 3, s: 1, padding: 'same' })), 'relu');
    x = g.act(g.add(x, g.bn(g.conv(inBlock, { filters: 6, k: 3, s: 1, padding: 'same' }))), 'relu');
    const cut = x;
    x = g.act(g.bn(g.conv(x, { filters: 8, k: 3, s: 2, padding: 'same', bias: true })), 'relu6');
    x = g.dense(g.gap(x), 3, 'softmax');
    const whole = g.graph(x);
    const cutShape = inferShapes(whole).get(cut) as [number, number, number];
    assert.throws(() => sliceGraph(whole, inBlock, x, [8, 8, 6]), /cannot cut/);
    const trunk = truncateGraph(whole, cut);
    const top = sliceGraph(whole, cut, x, cutShape);

    const dims = [2, 15, 15, 3];
    const input = randomBatch(createRng(12), dims);
    const ref = runTfjs(whole, input, dims);
    const feat = await runOnnx(buildTrunkModel(trunk), nhwcToNchw(input, dims), [2, 3, 15, 15]);
    const featDims = [2, ...cutShape];
    assert.deepEqual([...feat.dims], featDims);
    assert.ok(relErr(runTfjs(top, feat.data, featDims).data, ref.data, 1e-3) <= 1e-4, 'ONNX trunk + tfjs top');
    const topOnnx = await runOnnx(buildTrunkModel(top), nhwcToNchw(feat.data, featDims), [2, cutShape[2], cutShape[0], cutShape[1]]);
    assert.ok(relErr(topOnnx.data, ref.data, 1e-3) <= 1e-4, 'ONNX trunk + ONNX top');
  });
});

after(() => {
  tf.disposeVariables();
});
