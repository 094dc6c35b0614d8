/**
 * Trained layers -> bundle on disk -> joined to the trunk as one ONNX graph: the ONNX classifier's
 * probabilities must match the training-time path (ONNX trunk + tfjs top and head).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { inferShapes } from '../src/backbones/graph.js';
import { loadBackbone } from '../src/backbones/load.js';
import { normalizeToCHW } from '../src/backbones/preprocess.js';
import { cutLayer, getBackbone } from '../src/backbones/registry.js';
import { loadForModel } from '../src/data/image.js';
import { Classifier } from '../src/infer/classifier.js';
import { assembleClassifierGraph } from '../src/model/assemble.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, loadBundle, saveBundle, type ModelBundle } from '../src/model/bundle.js';
import { ClassifierModel } from '../src/model/classifier-model.js';
import { Trunk } from '../src/model/trunk.js';
import { initTrainingBackend } from '../src/train/backend.js';
import { createRng } from '../src/util/rng.js';
import { envWithMobilenet, useSharedMobilenet } from './helpers/infer-fixture.js';
import { haveData, IMAGES } from './helpers/paths.js';

for (const topBlocks of [0, 2]) {
  test(`bundle round trip and ONNX parity (MobileNetV2, ${topBlocks} top blocks)`, { skip: !haveData && 'no shared data' }, async () => {
    await initTrainingBackend('wasm');
    const dir = await mkdtemp(join(tmpdir(), 'phoneside-bundle-'));
    try {
      const spec = getBackbone('mobilenet_v2');
      const backbone = await loadBackbone(spec, { env: envWithMobilenet() });
      const cut = cutLayer(spec, topBlocks);
      const cutShape = inferShapes(backbone.graph).get(cut) as [number, number, number];
      const trunk = await Trunk.create(backbone, { cut, pool: topBlocks === 0 });
      const model = new ClassifierModel({
        backboneGraph: backbone.graph, cut, featureLayer: spec.featureLayer, cutShape, featureShape: trunk.outputShape,
        head: { units: [16, 8], numClasses: 3, dropout: 0.5, bnMomentum: 0.5, bnEpsilon: 1e-3 }, rng: createRng(7),
      });
      // Move the head's running statistics away from their initial values with training-mode passes.
      tf.tidy(() => {
        for (let i = 0; i < 3; i++) model.forward(tf.randomUniform([4, ...trunk.outputShape], 0, 2, 'float32', i), true, i);
      });
      const pre = spec.preprocessing;
      const per = 3 * pre.size * pre.size;
      const x = new Float32Array(IMAGES.length * per);
      for (const [i, f] of IMAGES.entries()) normalizeToCHW((await loadForModel(f, pre.size, pre.resize)).data, pre, x, i * per);
      const feats = await trunk.run(x, IMAGES.length);
      await trunk.dispose();
      const expected = tf.tidy(() =>
        tf.softmax(tf.div(model.forward(tf.tensor(feats, [IMAGES.length, ...trunk.outputShape]), false), 1.7)).arraySync() as number[][],
      );

      const bundle: ModelBundle = {
        manifest: {
          format: BUNDLE_FORMAT, version: BUNDLE_VERSION, createdAt: new Date().toISOString(),
          backbone: { id: spec.id, family: spec.family, weightsSha256: backbone.weightsSha256, weightsSource: 'test', cut },
          preprocessing: pre, classes: ['back', 'front', 'none'], topBlocks, head: { units: [16, 8], dropout: 0.5 },
          temperature: 1.7, info: {},
        },
        graph: model.toGraph(),
      };
      model.dispose();
      await saveBundle(join(dir, 'model'), bundle);
      const loaded = await loadBundle(dir); // a run folder holding model/ is accepted too
      assert.deepEqual(loaded.manifest.classes, ['back', 'front', 'none']);
      assert.equal(loaded.graph.nodes.length, bundle.graph.nodes.length);

      // Stored as float16: half the bytes, weights within float16 rounding.
      await saveBundle(join(dir, 'f16'), { ...bundle, manifest: { ...bundle.manifest, weightsDtype: 'float16' } });
      const half = await loadBundle(join(dir, 'f16'));
      assert.equal((await stat(join(dir, 'f16', 'weights.bin'))).size * 2, (await stat(join(dir, 'model', 'weights.bin'))).size);
      half.graph.nodes.forEach((n, i) => {
        for (const [k, w] of Object.entries(n.weights)) {
          const ref = loaded.graph.nodes[i]!.weights[k]!.data;
          w.data.forEach((v, j) => assert.ok(Math.abs(v - ref[j]!) <= Math.abs(ref[j]!) * 2 ** -11 + 1e-7, `${n.name}/${k}[${j}]`));
        }
      });

      const restore = useSharedMobilenet();
      const clf = await Classifier.load(join(dir, 'model')).finally(restore);
      const got = await clf.probabilities(IMAGES);
      await clf.dispose();
      for (let i = 0; i < IMAGES.length; i++) {
        for (let k = 0; k < 3; k++) assert.ok(Math.abs(got[i]![k]! - expected[i]![k]!) < 1e-4, `image ${i} class ${k}: ${got[i]![k]} vs ${expected[i]![k]}`);
      }
      assert.ok(expected.some((p) => Math.max(...p) < 0.999), 'probabilities are not saturated (the comparison means something)');

      // A bundle for other backbone weights is refused rather than silently run.
      const wrong = { ...loaded, manifest: { ...loaded.manifest, backbone: { ...loaded.manifest.backbone, weightsSha256: 'f'.repeat(64) } } };
      assert.throws(() => assembleClassifierGraph(backbone, wrong), /expects mobilenet_v2_0.35 weights with digest ffff/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('loadBundle: clear errors for folders that are not bundles', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-bundle-bad-'));
  try {
    await assert.rejects(loadBundle(dir), /not a phoneside model: no manifest.json/);
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ format: 'something-else' }));
    await assert.rejects(loadBundle(dir), /not a phoneside bundle manifest/);
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ format: BUNDLE_FORMAT, version: 99, graph: { nodes: [] } }));
    await assert.rejects(loadBundle(dir), /version 99 is newer/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
