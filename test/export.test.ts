/**
 * `phoneside export` and `Classifier.load` of an .onnx file: the exported file is a plain ONNX model that
 * ONNX Runtime runs on its own, its metadata describes it, and it computes the same probabilities
 * as the bundle; plus the on-disk cache of assembled graphs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { truncateGraph } from '../src/backbones/graph.js';
import { loadBackbone } from '../src/backbones/load.js';
import { normalizeToCHW } from '../src/backbones/preprocess.js';
import { getBackbone } from '../src/backbones/registry.js';
import { cmdExport } from '../src/cli/export.js';
import { cmdPredict } from '../src/cli/predict.js';
import { loadForModel } from '../src/data/image.js';
import { Classifier } from '../src/infer/classifier.js';
import { readOnnxMetadata } from '../src/infer/onnx-meta.js';
import { buildTrunkModel } from '../src/onnx/from-graph.js';
import { CLASSES, envWithMobilenet, makeBundle, useSharedMobilenet } from './helpers/infer-fixture.js';
import { haveData, IMAGES, MOBILENET } from './helpers/paths.js';
import { fakeIO } from './helpers/cli.js';
import { withEnv } from './helpers/env.js';

// MobileNetV2 bundles load their backbone from ../shared (env.weightsDir), never from a download.
useSharedMobilenet();


const close = (a: readonly number[][], b: readonly number[][], tol: number, what: string): void => {
  assert.equal(a.length, b.length);
  a.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - b[i]![k]!) <= tol, `${what}: image ${i} class ${k}: ${v} vs ${b[i]![k]}`)));
};

test('export: one ONNX file with metadata; ORT, Classifier.load of the file and the bundle agree', { skip: !haveData && 'no ../shared data' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-export-'));
  try {
    await withEnv({ cacheDir: join(dir, 'cache') }, async () => {
      const bundleDir = await makeBundle(join(dir, 'run', 'model'), { temperature: 1.7, thresholds: { front: 0.6 } });
      const out = join(dir, 'clf.onnx');
      const f = fakeIO();
      // A run folder (holding model/) is accepted as MODEL.
      assert.equal(await cmdExport([join(dir, 'run'), '--out', out, '--weights', MOBILENET], f.io), 0, f.err());
      assert.match(f.out(), /wrote .*clf\.onnx .*mobilenet_v2_0\.35, classes back, front, none; input 'input' \[N, 3, 224, 224\] float32, output 'output' \[N, 3\]/);

      // Metadata, read without parsing the graph, equals what a full protobuf decode finds.
      const meta = await readOnnxMetadata(out);
      const decoded = onnxProto.onnx.ModelProto.decode(await readFile(out));
      assert.deepEqual(meta, Object.fromEntries(decoded.metadataProps.map((p) => [p.key, p.value])));
      assert.equal(meta['phoneside.format_version'], '1');
      assert.deepEqual(JSON.parse(meta['classes']!), CLASSES);
      const pre = JSON.parse(meta['preprocessing']!) as Record<string, unknown>;
      assert.deepEqual(
        { size: pre['size'], channelOrder: pre['channelOrder'], mean: pre['mean'], std: pre['std'], resize: pre['resize'], layout: pre['layout'], dtype: pre['dtype'] },
        { size: 224, channelOrder: 'RGB', mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5], resize: 'squash', layout: 'NCHW', dtype: 'float32' },
      );
      assert.equal(meta['temperature'], '1.7');
      assert.deepEqual(JSON.parse(meta['thresholds']!), { front: 0.6 });
      const backbone = JSON.parse(meta['backbone']!) as { id: string; weightsSha256: string };
      assert.equal(backbone.id, 'mobilenet_v2_0.35');
      assert.equal(backbone.weightsSha256, (await loadBackbone(getBackbone('mobilenet_v2'), { env: envWithMobilenet() })).weightsSha256);
      assert.ok(Math.abs(Date.parse(meta['created_at']!) - Date.now()) < 600_000, `created_at ${meta['created_at']}`);

      // Plain ONNX Runtime, fed by hand with the preprocessing the metadata describes.
      const session = await ort.InferenceSession.create(out);
      assert.deepEqual([session.inputNames, session.outputNames], [['input'], ['output']]);
      const per = 3 * 224 * 224;
      const x = new Float32Array(IMAGES.length * per);
      for (const [i, img] of IMAGES.entries()) normalizeToCHW((await loadForModel(img, 224, 'squash')).data, getBackbone('mobilenet_v2').preprocessing, x, i * per);
      const res = await session.run({ input: new ort.Tensor('float32', x, [IMAGES.length, 3, 224, 224]) });
      await session.release();
      assert.deepEqual(res['output']!.dims, [IMAGES.length, 3]);
      const data = res['output']!.data as Float32Array;
      const raw = IMAGES.map((_, i) => Array.from(data.subarray(i * 3, i * 3 + 3)));

      const fromBundle = await Classifier.load(bundleDir);
      const bundleProbs = await fromBundle.probabilities(IMAGES);
      await fromBundle.dispose();
      const fromOnnx = await Classifier.load(out);
      assert.equal(fromOnnx.source.kind, 'onnx');
      assert.deepEqual(fromOnnx.classes, CLASSES);
      assert.deepEqual(fromOnnx.thresholds, { front: 0.6 });
      assert.equal(fromOnnx.info.temperature, 1.7);
      assert.deepEqual(fromOnnx.preprocessing, getBackbone('mobilenet_v2').preprocessing);
      const onnxProbs = await fromOnnx.probabilities(IMAGES);
      await fromOnnx.dispose();

      close(raw, bundleProbs, 1e-5, 'raw ORT vs bundle');
      close(onnxProbs, bundleProbs, 1e-5, '.onnx file vs bundle');
      for (const p of bundleProbs) assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-5, 'softmax output');
      assert.ok(bundleProbs.every((p) => Math.max(...p) < 0.95), `probabilities not saturated: ${JSON.stringify(bundleProbs)}`);
      assert.ok(Math.abs(bundleProbs[0]![0]! - bundleProbs[1]![0]!) > 1e-3, 'the two images get different probabilities');

      // Temperature is folded: softmax(z / T) = normalise(softmax(z) ^ (1 / T)).
      const plainDir = await makeBundle(join(dir, 'plain'), { temperature: 1 });
      const plain = await Classifier.load(plainDir);
      const p1 = await plain.probabilities(IMAGES);
      await plain.dispose();
      const sharpened = p1.map((p) => {
        const q = p.map((v) => v ** (1 / 1.7));
        const s = q.reduce((a, b) => a + b, 0);
        return q.map((v) => v / s);
      });
      close(bundleProbs, sharpened, 1e-5, 'temperature folded');

      // `predict --model file.onnx` reads the model from the file alone.
      const g = fakeIO();
      assert.equal(await cmdPredict(['--model', out, '--format', 'jsonl', '--quiet', ...IMAGES], g.io), 0, g.err());
      const rows = g.out().trim().split('\n').map((l) => JSON.parse(l) as { probabilities: Record<string, number> });
      close(rows.map((r) => CLASSES.map((c) => r.probabilities[c]!)), bundleProbs, 2e-6, 'predict --model .onnx');
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('Classifier.load caches the assembled ONNX graph by bundle content', { skip: !haveData && 'no ../shared data' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-cache-'));
  try {
    await withEnv({ cacheDir: join(dir, 'cache') }, async () => {
      const bundleDir = await makeBundle(join(dir, 'model'), { seed: 3 });
      const time = async (): Promise<{ clf: Classifier; ms: number }> => {
        const t0 = performance.now();
        const clf = await Classifier.load(bundleDir);
        return { clf, ms: performance.now() - t0 };
      };
      const first = await time();
      const second = await time();
      // The backbone is already loaded in this process, so the gap here understates a fresh process's.
      t.diagnostic(`load: ${first.ms.toFixed(0)} ms assembling, ${second.ms.toFixed(0)} ms from the cache`);
      assert.equal(first.clf.source.cacheHit, false);
      assert.equal(second.clf.source.cacheHit, true);
      const files = readdirSync(join(dir, 'cache', 'models'));
      assert.equal(files.length, 1);
      assert.match(files[0]!, /^[0-9a-f]{64}\.onnx$/);
      assert.equal(second.clf.source.cachedOnnx, join(dir, 'cache', 'models', files[0]!));
      assert.deepEqual(second.clf.classes, CLASSES);
      close(await second.clf.probabilities(IMAGES), await first.clf.probabilities(IMAGES), 0, 'cached vs assembled');
      await first.clf.dispose();
      await second.clf.dispose();

      // Different weights.bin -> different key -> a second entry, not a stale hit.
      const other = await makeBundle(join(dir, 'other'), { seed: 4 });
      const third = await Classifier.load(other);
      assert.equal(third.source.cacheHit, false);
      await third.dispose();
      assert.equal(readdirSync(join(dir, 'cache', 'models')).length, 2);

      // A damaged cache entry is rebuilt rather than failing the load.
      await writeFile(join(dir, 'cache', 'models', files[0]!), 'garbage');
      const fourth = await Classifier.load(bundleDir);
      assert.equal(fourth.source.cacheHit, false);
      await fourth.dispose();
      assert.ok((await readFile(join(dir, 'cache', 'models', files[0]!))).length > 1000);

      // cache: false neither reads nor writes it.
      const fifth = await Classifier.load(bundleDir, { cache: false });
      assert.equal(fifth.source.cachedOnnx, undefined);
      await fifth.dispose();
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('Classifier.load of an .onnx file and export: clear errors', { skip: !haveData && 'no ../shared data' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-export-bad-'));
  try {
    // An ONNX model without phoneside's metadata (a bare trunk).
    const backbone = await loadBackbone(getBackbone('mobilenet_v2'), { env: envWithMobilenet() });
    const bare = join(dir, 'bare.onnx');
    await writeFile(bare, buildTrunkModel(truncateGraph(backbone.graph, 'Conv1_relu')));
    await assert.rejects(Classifier.load(bare), /bare\.onnx is not a phoneside classifier \(no phoneside\.format_version metadata\)/);
    await assert.rejects(Classifier.load(IMAGES[0]!), /is not an ONNX model/);
    await assert.rejects(Classifier.load(join(dir, 'missing.onnx')), /missing\.onnx is not a phoneside model: no such file or folder/);

    const f = fakeIO();
    assert.equal(await cmdExport([dir], f.io), 2);
    assert.match(f.err(), /export needs --out, the \.onnx file to write/);
    assert.equal(await cmdExport([dir, '--model', dir, '--out', join(dir, 'x.onnx')], f.io), 2);
    assert.match(f.err(), /give the model once: --model MODEL or export MODEL/);
    assert.equal(await cmdExport([dir, '--out', join(dir, 'x.onnx'), '--bogus'], f.io), 2);
    await assert.rejects(cmdExport([dir, '--out', join(dir, 'x.onnx')], f.io), /not a phoneside model/);
    assert.equal(existsSync(join(dir, 'x.onnx')), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
