/**
 * Test-time augmentation and ensembles as first-class models, each ONE ONNX graph: the IR ops
 * they need (flipWidth, concatBatch, meanViews, mean) in ONNX and tfjs; TTA = softmax of the mean
 * of the logits of the image and its mirror (checked against the plain classifier run on flipped
 * pixels); an ensemble = the mean of its members' own probabilities (ResNet50 + MobileNetV2, each
 * with its own normalisation, channel order and temperature); its thresholds, export, predict,
 * serve, the cache, and clear errors for bad ensembles.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as ort from 'onnxruntime-node';
import type { GraphNode, LayerGraph } from '../src/backbones/graph.js';
import { cmdCompare } from '../src/cli/compare.js';
import { cmdEnsemble } from '../src/cli/ensemble.js';
import { cmdExport } from '../src/cli/export.js';
import { cmdPredict } from '../src/cli/predict.js';
import { env } from '../src/env.js';
import type { ComparisonReport } from '../src/eval/compare.js';
import { evaluate } from '../src/eval/evaluate.js';
import { Classifier, type DecodedBatch } from '../src/infer/classifier.js';
import { createEnsemble, ENSEMBLE_FORMAT, readEnsemble, type EnsembleManifest } from '../src/infer/ensemble.js';
import { readOnnxMetadata } from '../src/infer/onnx-meta.js';
import type { PredictionRow } from '../src/infer/predict.js';
import { createGraphModule } from '../src/model/graph-tfjs.js';
import { buildTrunkModel } from '../src/onnx/from-graph.js';
import { loadModel } from '../src/serve/models.js';
import { sha256Hex } from '../src/util/hash.js';
import { createRng } from '../src/util/rng.js';
import { CLASSES, makeBundle, useSharedMobilenet } from './helpers/infer-fixture.js';
import { DATA, haveData, IMAGES, MOBILENET } from './helpers/paths.js';
import { fakeIO, runCli } from './helpers/cli.js';
import { withEnv } from './helpers/env.js';
import { SLOW } from './helpers/slow.js';

// MobileNetV2 bundles load their backbone from ../shared (env.weightsDir), never from a download.
useSharedMobilenet();


const close = (a: readonly (readonly number[])[], b: readonly (readonly number[])[], tol: number, what: string): void => {
  assert.equal(a.length, b.length, `${what}: row count`);
  a.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - b[i]![k]!) <= tol, `${what}: image ${i} class ${k}: ${v} vs ${b[i]![k]}`)));
};

const maxDiff = (a: readonly (readonly number[])[], b: readonly (readonly number[])[]): number =>
  Math.max(...a.flatMap((row, i) => row.map((v, k) => Math.abs(v - b[i]![k]!))));

/** softmax(mean_v log p_v): for p_v = softmax(z_v / T) this is softmax(mean_v(z_v) / T), the logit average. */
function logitMean(views: readonly (readonly number[])[][]): number[][] {
  return views[0]!.map((_, i) => {
    const z = views[0]![i]!.map((_, k) => views.reduce((s, v) => s + Math.log(v[i]![k]!), 0) / views.length);
    const m = Math.max(...z);
    const e = z.map((x) => Math.exp(x - m));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / sum);
  });
}

/** The decoded batch with every image mirrored left-right (NCHW: reverse each row of each channel). */
function flipBatch(batch: DecodedBatch, size: number): DecodedBatch {
  const x = new Float32Array(batch.input.length);
  for (let row = 0; row < x.length / size; row++) {
    for (let w = 0; w < size; w++) x[row * size + w] = batch.input[row * size + size - 1 - w]!;
  }
  return { ...batch, input: x };
}

/** Runs an emitted graph with ORT on an NHWC input given as NCHW. */
async function runOnnx(graph: LayerGraph, input: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(buildTrunkModel(graph, { outputLayout: 'NCHW' }));
  try {
    const out = (await session.run({ input: new ort.Tensor('float32', input, dims) }))['output']!;
    return { data: Float32Array.from(out.data as Float32Array), dims: out.dims };
  } finally {
    await session.release();
  }
}

test('IR: flipWidth, concatBatch, meanViews and mean in ONNX and tfjs', async () => {
  const rng = createRng(5);
  const [n, h, w, c] = [3, 4, 5, 2];
  const k = 0.5;
  const nodes: GraphNode[] = [
    { name: 'x', op: { kind: 'input', shape: [h, w, c] }, inputs: [], weights: {} },
    { name: 'flip', op: { kind: 'flipWidth' }, inputs: ['x'], weights: {} },
    { name: 'views', op: { kind: 'concatBatch' }, inputs: ['x', 'flip'], weights: {} },
    {
      name: 'conv', op: { kind: 'conv2d', filters: 3, kernel: [1, 2], strides: [1, 1], dilation: [1, 1], padding: 'same', useBias: true, activation: 'linear' }, inputs: ['views'],
      weights: { kernel: { shape: [1, 2, c, 3], data: Float32Array.from({ length: 2 * c * 3 }, () => rng.uniform(-k, k)) }, bias: { shape: [3], data: Float32Array.from([0.1, -0.2, 0.3]) } },
    },
    { name: 'avg', op: { kind: 'meanViews', views: 2 }, inputs: ['conv'], weights: {} },
    { name: 'flip2', op: { kind: 'flipWidth' }, inputs: ['avg'], weights: {} },
    { name: 'both', op: { kind: 'mean' }, inputs: ['avg', 'flip2'], weights: {} },
  ];
  const graph: LayerGraph = { nodes, input: 'x', output: 'both' };
  const nhwc = Float32Array.from({ length: n * h * w * c }, () => rng.uniform(-1, 1));
  const nchw = new Float32Array(nhwc.length);
  for (let b = 0; b < n; b++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) nchw[((b * c + ch) * h + y) * w + x] = nhwc[((b * h + y) * w + x) * c + ch]!;

  // By hand: conv on the image and on its mirror, averaged; then averaged with its own mirror.
  const kernel = nodes[3]!.weights['kernel']!.data;
  const bias = nodes[3]!.weights['bias']!.data;
  const at = (b: number, y: number, x: number, ch: number, flip: boolean): number => {
    const xx = flip ? w - 1 - x : x;
    return xx >= 0 && xx < w ? nhwc[((b * h + y) * w + xx) * c + ch]! : 0;
  };
  // 'same' padding with a 1x2 kernel: TF pads the odd column after, so output x reads x and x+1.
  const conv = (b: number, y: number, x: number, o: number, flip: boolean): number => {
    let s = bias[o]!;
    for (let kx = 0; kx < 2; kx++) for (let ch = 0; ch < c; ch++) s += (x + kx < w ? at(b, y, x + kx, ch, flip) : 0) * kernel[(kx * c + ch) * 3 + o]!;
    return s;
  };
  const avg = (b: number, y: number, x: number, o: number): number => (conv(b, y, x, o, false) + conv(b, y, x, o, true)) / 2;
  const expected = new Float32Array(n * 3 * h * w); // NCHW
  for (let b = 0; b < n; b++) for (let o = 0; o < 3; o++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) expected[((b * 3 + o) * h + y) * w + x] = (avg(b, y, x, o) + avg(b, y, w - 1 - x, o)) / 2;

  const onnx = await runOnnx(graph, nchw, [n, c, h, w]);
  assert.deepEqual(onnx.dims, [n, 3, h, w]);
  expected.forEach((v, i) => assert.ok(Math.abs(onnx.data[i]! - v) < 1e-5, `ONNX ${i}: ${onnx.data[i]} vs ${v}`));

  await tf.setBackend('cpu');
  const mod = createGraphModule(graph, { trainable: false });
  try {
    const y = mod.apply(tf.tensor4d(nhwc, [n, h, w, c]));
    assert.deepEqual(y.shape, [n, h, w, 3]);
    const got = y.dataSync();
    y.dispose();
    for (let b = 0; b < n; b++) for (let o = 0; o < 3; o++) for (let yy = 0; yy < h; yy++) for (let x = 0; x < w; x++) {
      const v = got[((b * h + yy) * w + x) * 3 + o]!;
      assert.ok(Math.abs(v - expected[((b * 3 + o) * h + yy) * w + x]!) < 1e-5, `tfjs ${b},${o},${yy},${x}`);
    }
  } finally {
    mod.dispose();
  }
});

test('TTA: softmax of the mean of the logits of the image and its mirror, one ONNX graph', { skip: !haveData && 'no ../shared data', timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-tta-'));
  try {
    await withEnv({ cacheDir: join(dir, 'cache') }, async () => {
      const plainDir = await makeBundle(join(dir, 'plain'), { temperature: 1.7, seed: 21 });
      const plain = await Classifier.load(plainDir);
      assert.equal(plain.info.tta, undefined);
      const batch = await plain.decode(IMAGES);
      const p1 = await plain.run(batch);
      const p2 = await plain.run(flipBatch(batch, 224));
      await plain.dispose();
      const expected = logitMean([p1, p2]);
      const probMean = p1.map((row, i) => row.map((v, k) => (v + p2[i]![k]!) / 2));
      // The check can fail: the mirror changes the answer, and averaging probabilities instead of logits would show.
      assert.ok(maxDiff(p1, p2) > 1e-3, `the mirror image gets other probabilities (${maxDiff(p1, p2)})`);
      assert.ok(maxDiff(expected, probMean) > 3e-5, `logit and probability averaging differ here (${maxDiff(expected, probMean)})`);

      // --tta on a bundle that lacks it: an assembly variant with its own cache entry.
      const tta = await Classifier.load(plainDir, { tta: true });
      assert.equal(tta.info.tta, 'hflip');
      assert.equal(tta.source.cacheHit, false);
      const got = await tta.probabilities(IMAGES);
      await tta.dispose();
      close(got, expected, 1e-5, 'TTA graph vs mean of logits');
      assert.equal(readdirSync(join(dir, 'cache', 'models')).length, 2, 'plain and TTA graphs are cached apart');
      const again = await Classifier.load(plainDir, { tta: true });
      assert.equal(again.source.cacheHit, true);
      close(await again.probabilities(IMAGES), expected, 1e-5, 'TTA from the cache');
      await again.dispose();

      // A manifest with tta: 'hflip' uses it by default; tta: false turns it off.
      const ttaDir = join(dir, 'with-tta');
      await mkdir(ttaDir);
      await copyFile(join(plainDir, 'weights.bin'), join(ttaDir, 'weights.bin'));
      const manifest = JSON.parse(await readFile(join(plainDir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
      await writeFile(join(ttaDir, 'manifest.json'), JSON.stringify({ ...manifest, tta: 'hflip' }));
      const byManifest = await Classifier.load(ttaDir);
      assert.equal(byManifest.info.tta, 'hflip');
      close(await byManifest.probabilities(IMAGES), expected, 1e-5, 'manifest tta');
      await byManifest.dispose();
      const off = await Classifier.load(ttaDir, { tta: false });
      assert.equal(off.info.tta, undefined);
      close(await off.probabilities(IMAGES), p1, 1e-6, 'manifest tta turned off');
      await off.dispose();
      await writeFile(join(ttaDir, 'manifest.json'), JSON.stringify({ ...manifest, tta: 'vflip' }));
      await assert.rejects(Classifier.load(ttaDir, { cache: false }), /unknown tta "vflip" \(known: hflip\)/);

      // export --tta writes it into the graph and the metadata; predict reads it back.
      const out = join(dir, 'tta.onnx');
      const f = fakeIO();
      assert.equal(await cmdExport([plainDir, '--out', out, '--tta', '--weights', MOBILENET], f.io), 0, f.err());
      assert.match(f.out(), /mobilenet_v2_0\.35, tta hflip, classes back, front, none/);
      const meta = await readOnnxMetadata(out);
      assert.equal(meta['tta'], 'hflip');
      assert.equal(meta['phoneside.format_version'], '1');
      const fromOnnx = await Classifier.load(out);
      assert.equal(fromOnnx.info.tta, 'hflip');
      close(await fromOnnx.probabilities(IMAGES), expected, 1e-5, 'exported TTA');
      await fromOnnx.dispose();
      const g = fakeIO();
      assert.equal(await cmdPredict(['--model', out, '--tta', '--format', 'jsonl', '--quiet', ...IMAGES], g.io), 0, g.err());
      const rows = g.out().trim().split('\n').map((l) => JSON.parse(l) as PredictionRow);
      close(rows.map((r) => CLASSES.map((c) => r.probabilities![c]!)), expected, 2e-6, 'predict --model tta.onnx');
      // A file without TTA in its graph cannot have it added; a plain export has no tta key at all.
      const plainOut = join(dir, 'plain.onnx');
      assert.equal(await cmdExport([plainDir, '--out', plainOut, '--weights', MOBILENET], fakeIO().io), 0);
      assert.equal('tta' in (await readOnnxMetadata(plainOut)), false);
      await assert.rejects(cmdPredict(['--model', plainOut, '--tta', '--quiet', IMAGES[0]!], fakeIO().io), /plain\.onnx is an exported ONNX file with no TTA built in; export it again with TTA/);

      // predict --tta on the bundle.
      const h = fakeIO();
      assert.equal(await cmdPredict(['--model', plainDir, '--tta', '--weights', MOBILENET, '--format', 'jsonl', '--quiet', ...IMAGES], h.io), 0, h.err());
      close(h.out().trim().split('\n').map((l) => CLASSES.map((c) => (JSON.parse(l) as PredictionRow).probabilities![c]!)), expected, 2e-6, 'predict --tta');
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ensemble of ResNet50 and MobileNetV2: the mean of the members own probabilities', { skip: (!haveData && 'no ../shared data') || SLOW, timeout: 600_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-ensemble-'));
  try {
    await withEnv({ cacheDir: join(dir, 'cache'), weightsDir: { ...env.weightsDir, 'mobilenet_v2_0.35': MOBILENET } }, async () => {
      // Members with their own temperatures and thresholds (which the ensemble must not use).
      const resnet = await makeBundle(join(dir, 'runs', 'r50', 'model'), { backbone: 'resnet50', seed: 31, temperature: 0.8, thresholds: { back: 0.999, front: 0.999, none: 0.999 } });
      const mobile = await makeBundle(join(dir, 'mnet'), { seed: 32, temperature: 1.3 });
      const members: number[][][] = [];
      for (const m of [resnet, mobile]) {
        const clf = await Classifier.load(m);
        members.push(await clf.probabilities(IMAGES));
        await clf.dispose();
      }
      const expected = members[0]!.map((row, i) => row.map((v, k) => (v + members[1]![i]![k]!) / 2));
      assert.ok(maxDiff(members[0]!, members[1]!) > 1e-2, 'the members disagree, so the mean is a real check');

      // The CLI verb: a run folder (holding model/) and a bundle folder.
      const ens = join(dir, 'ens');
      const c = fakeIO();
      assert.equal(await cmdEnsemble([join(dir, 'runs', 'r50'), mobile, '--out', ens], c.io), 0, c.err());
      assert.match(c.out(), /ensemble\.json: r50 \+ mnet; classes back, front, none; tta none; thresholds none/);
      const manifest = JSON.parse(await readFile(join(ens, 'ensemble.json'), 'utf8')) as EnsembleManifest;
      assert.equal(manifest.format, ENSEMBLE_FORMAT);
      assert.deepEqual(manifest.members, ['r50', 'mnet']);
      assert.deepEqual(manifest.classes, CLASSES);
      // Member bundles are copied byte for byte.
      assert.deepEqual(await readFile(join(ens, 'r50', 'weights.bin')), await readFile(join(resnet, 'weights.bin')));
      assert.deepEqual(await readFile(join(ens, 'mnet', 'manifest.json')), await readFile(join(mobile, 'manifest.json')));

      const clf = await Classifier.load(ens);
      assert.equal(clf.source.kind, 'ensemble');
      assert.equal(clf.info.backbone.id, 'ensemble(resnet50+mobilenet_v2_0.35)');
      assert.match(clf.info.backbone.weightsSha256, /^[0-9a-f]{64}$/);
      assert.deepEqual(clf.preprocessing, { size: 224, channelOrder: 'RGB', mean: [0, 0, 0], std: [1, 1, 1], resize: 'squash' });
      assert.deepEqual(clf.thresholds, {}, "the members' thresholds are not the ensemble's");
      assert.equal(clf.info.temperature, 1);
      assert.deepEqual(clf.info.ensemble?.members.map((m) => [m.name, m.backbone.id, m.temperature]), [['r50', 'resnet50', 0.8], ['mnet', 'mobilenet_v2_0.35', 1.3]]);
      const got = await clf.probabilities(IMAGES);
      await clf.dispose();
      close(got, expected, 1e-5, 'ensemble vs mean of members');

      // Predict: the members' 0.999 thresholds do not apply (labels are the top classes).
      const p = fakeIO();
      assert.equal(await cmdPredict(['--model', ens, '--format', 'jsonl', '--quiet', ...IMAGES], p.io), 0, p.err());
      const rows = p.out().trim().split('\n').map((l) => JSON.parse(l) as PredictionRow);
      assert.deepEqual(rows.map((r) => r.label), rows.map((r) => r.predicted));

      // One bare --weights folder cannot serve two backbones: the CLI asks for ID=PATH.
      const bare = await runCli(['predict', '--model', ens, '--weights', MOBILENET, '--quiet', IMAGES[0]!]);
      assert.equal(bare.code, 2, bare.err);
      assert.match(bare.err, /2 backbones \(resnet50, mobilenet_v2_0\.35\).*--weights mobilenet_v2_0\.35=/);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ensemble: thresholds, TTA per member, export, predict, serve and the cache', { skip: (!haveData && 'no ../shared data') || SLOW, timeout: 600_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-ensemble-tta-'));
  try {
    await withEnv({ cacheDir: join(dir, 'cache') }, async () => {
      const a = await makeBundle(join(dir, 'a'), { seed: 41, temperature: 0.7 });
      const b = await makeBundle(join(dir, 'b'), { seed: 42, temperature: 1.6, thresholds: { back: 0.999, front: 0.999, none: 0.999 } });
      // Each member's own TTA classifier: the ensemble with TTA must average these.
      const own: number[][][] = [];
      for (const m of [a, b]) {
        const clf = await Classifier.load(m, { tta: true });
        own.push(await clf.probabilities(IMAGES));
        await clf.dispose();
      }
      const expected = own[0]!.map((row, i) => row.map((v, k) => (v + own[1]![i]![k]!) / 2));
      const top = expected.map((row) => CLASSES[row.indexOf(Math.max(...row))]!);
      const conf = expected.map((row) => Math.max(...row));

      // Thresholds: image 0's top class just above its confidence -> uncertain; image 1 just below -> answered.
      const thresholds: Record<string, number> = { [top[0]!]: Math.min(1, conf[0]! + 1e-3) };
      if (top[1] !== top[0]) thresholds[top[1]!] = conf[1]! - 1e-3;
      const ens = join(dir, 'ens');
      const th = Object.entries(thresholds).map(([k, v]) => `${k}=${v}`).join(',');
      const c = fakeIO();
      assert.equal(await cmdEnsemble([a, b, '--out', ens, '--tta', '--thresholds', th], c.io), 0, c.err());
      assert.match(c.out(), /tta hflip/);

      const clf = await Classifier.load(ens);
      assert.equal(clf.info.tta, 'hflip');
      assert.deepEqual(clf.thresholds, thresholds);
      close(await clf.probabilities(IMAGES), expected, 1e-5, 'TTA ensemble vs mean of members with TTA');
      await clf.dispose();

      const p = fakeIO();
      assert.equal(await cmdPredict(['--model', ens, '--weights', MOBILENET, '--format', 'jsonl', '--quiet', ...IMAGES], p.io), 0, p.err());
      const rows = p.out().trim().split('\n').map((l) => JSON.parse(l) as PredictionRow);
      const labels = top.map((t, i) => (conf[i]! < (thresholds[t] ?? 0) ? 'uncertain' : t));
      assert.equal(labels[0], 'uncertain');
      assert.deepEqual(rows.map((r) => r.label), labels, 'the ensemble thresholds apply');
      assert.deepEqual(rows.map((r) => r.predicted), top);
      close(rows.map((r) => CLASSES.map((k) => r.probabilities![k]!)), expected, 2e-6, 'predict on the ensemble');
      const q = fakeIO();
      assert.equal(await cmdPredict(['--model', ens, '--weights', MOBILENET, '--no-thresholds', '--format', 'jsonl', '--quiet', ...IMAGES], q.io), 0);
      assert.deepEqual(q.out().trim().split('\n').map((l) => (JSON.parse(l) as PredictionRow).label), top);

      // Export: one file that predict accepts, raw pixels in, the same answers and thresholds.
      const out = join(dir, 'ens.onnx');
      const e = fakeIO();
      assert.equal(await cmdExport([ens, '--out', out, '--weights', MOBILENET], e.io), 0, e.err());
      assert.match(e.out(), /ensemble\(mobilenet_v2_0\.35\+mobilenet_v2_0\.35\), tta hflip, .*\(raw RGB pixels 0\.\.255\)/);
      const meta = await readOnnxMetadata(out);
      assert.deepEqual(JSON.parse(meta['preprocessing']!).mean, [0, 0, 0]);
      assert.deepEqual((JSON.parse(meta['ensemble']!) as { members: { temperature: number }[] }).members.map((m) => m.temperature), [0.7, 1.6]);
      const ex = fakeIO();
      assert.equal(await cmdPredict(['--model', out, '--format', 'jsonl', '--quiet', ...IMAGES], ex.io), 0, ex.err());
      const exRows = ex.out().trim().split('\n').map((l) => JSON.parse(l) as PredictionRow);
      assert.deepEqual(exRows.map((r) => r.label), labels);
      close(exRows.map((r) => CLASSES.map((k) => r.probabilities![k]!)), expected, 1e-5, 'exported ensemble');

      // The cache: a second load is a hit; tta: false is another graph (the plain members' mean).
      const hit = await Classifier.load(ens);
      assert.equal(hit.source.cacheHit, true);
      await hit.dispose();
      const plain = await Classifier.load(ens, { tta: false });
      assert.equal(plain.source.cacheHit, false);
      assert.equal(plain.info.tta, undefined);
      const plainProbs = await plain.probabilities(IMAGES);
      await plain.dispose();
      assert.ok(maxDiff(plainProbs, expected) > 1e-4, 'without TTA the ensemble answers differently');

      // Evaluate and compare take an ensemble like any model; --tta turns TTA on per run.
      const data = join(dir, 'data');
      for (const k of CLASSES) {
        await mkdir(join(data, k), { recursive: true });
        for (const f of readdirSync(join(DATA, k)).filter((f) => f.endsWith('.jpg')).slice(0, 2)) await copyFile(join(DATA, k, f), join(data, k, f));
      }
      const ev = await evaluate(data, { model: ens, progress: fakeIO().io.stderr });
      assert.equal(ev.model.backbone, 'ensemble(mobilenet_v2_0.35+mobilenet_v2_0.35)');
      assert.equal(ev.model.tta, 'hflip');
      assert.equal(ev.predictions.length, 6);
      const cmp = fakeIO();
      assert.equal(await cmdCompare([a, ens, '--data', data, '--tta', '--json', '--weights', MOBILENET, '--latency-runs', '1', '--threads', '1'], cmp.io), 0, cmp.err());
      const report = JSON.parse(cmp.out()) as ComparisonReport;
      assert.deepEqual(report.models.map((r) => [r.backbone, r.tta]), [['mobilenet_v2_0.35', 'hflip'], ['ensemble(mobilenet_v2_0.35+mobilenet_v2_0.35)', 'hflip']]);
      assert.equal(report.models[1]!.parameters.trained, 2 * report.models[0]!.parameters.trained!, "an ensemble's trained layers are its members'");
      const evA = await evaluate(data, { model: a, tta: true, progress: fakeIO().io.stderr });
      assert.equal(report.models[0]!.accuracy, evA.metrics.accuracy, 'compare --tta evaluates with TTA');

      // Serve: an ensemble folder is a model like any; its version covers every member and the variant.
      const info = { validation: { accuracy: 0.95, macroF1: 0.94 } };
      const m = JSON.parse(await readFile(join(ens, 'ensemble.json'), 'utf8')) as EnsembleManifest;
      await writeFile(join(ens, 'ensemble.json'), JSON.stringify({ ...m, info }));
      const loaded = await loadModel(ens);
      assert.equal(loaded.id, 'ens');
      assert.match(loaded.version, new RegExp(`^${m.createdAt!.slice(0, 10).replace(/-/g, '')}-[0-9a-f]{12}$`));
      assert.deepEqual(loaded.metrics, { accuracy: 0.95, macroF1: 0.94 });
      assert.equal(loaded.info.tta, 'hflip');
      const off = await loadModel(ens, { tta: false });
      assert.notEqual(off.version, loaded.version, 'turning TTA off changes the version');
      // A member's weights.bin changed behind its manifest's sha256 is refused; with the digest
      // recomputed (weights legitimately replaced), the version changes.
      const flipped = (await readFile(join(ens, 'b', 'weights.bin'))).map((x, i) => (i === 0 ? x ^ 1 : x));
      await writeFile(join(ens, 'b', 'weights.bin'), flipped);
      await assert.rejects(loadModel(ens), /b\/weights\.bin does not match its manifest\.json/);
      const memberManifest = await readFile(join(ens, 'b', 'manifest.json'), 'utf8');
      const digest = sha256Hex(flipped);
      await writeFile(join(ens, 'b', 'manifest.json'), memberManifest.replace(/"weightsBinSha256": "[0-9a-f]{64}"/, `"weightsBinSha256": "${digest}"`));
      assert.notEqual((await loadModel(ens)).version, loaded.version, "a member's weights are part of the version");
      const { createServer } = await import('../src/serve/server.js');
      await writeFile(join(ens, 'b', 'weights.bin'), await readFile(join(b, 'weights.bin')));
      await writeFile(join(ens, 'b', 'manifest.json'), memberManifest);
      const app = await createServer({ model: ens, deviceModel: false, workers: 0 });
      try {
        const res = await app.inject({ method: 'POST', url: '/v1/classify?thresholds=false', payload: await readFile(IMAGES[0]!), headers: { 'content-type': 'image/jpeg' } });
        assert.equal(res.statusCode, 200, res.body);
        const r = (res.json() as { results: { probabilities: Record<string, number> }[] }).results[0]!;
        close([CLASSES.map((k) => r.probabilities[k]!)], [expected[0]!], 1e-5, 'serve');
        const models = (await app.inject({ url: '/v1/models' })).json() as { models: { backbone: string; tta: string | null; ensemble?: unknown }[] };
        assert.equal(models.models[0]!.backbone, 'ensemble(mobilenet_v2_0.35+mobilenet_v2_0.35)');
        assert.equal(models.models[0]!.tta, 'hflip');
        assert.ok(models.models[0]!.ensemble !== undefined);
      } finally {
        await app.close();
      }
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad ensembles: clear errors', { skip: !haveData && 'no ../shared data', timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-ensemble-bad-'));
  try {
    const a = await makeBundle(join(dir, 'a'), { seed: 51 });
    const write = async (name: string, m: Record<string, unknown>, members: Record<string, (manifest: Record<string, unknown>) => Record<string, unknown>> = {}): Promise<string> => {
      const e = join(dir, name);
      await mkdir(e, { recursive: true });
      for (const [member, edit] of Object.entries(members)) {
        await cp(a, join(e, member), { recursive: true });
        const mf = JSON.parse(await readFile(join(a, 'manifest.json'), 'utf8')) as Record<string, unknown>;
        await writeFile(join(e, member, 'manifest.json'), JSON.stringify(edit(mf)));
      }
      await writeFile(join(e, 'ensemble.json'), JSON.stringify(m));
      return e;
    };
    const good = { format: 'phoneside-ensemble', version: 1, members: ['x', 'y'], classes: CLASSES };
    const same = (m: Record<string, unknown>): Record<string, unknown> => m;
    const load = (e: string): Promise<unknown> => Classifier.load(e, { cache: false });

    await assert.rejects(load(await write('missing', good, { x: same })), /ensemble\.json: member 'y' is missing: .*y holds no manifest\.json/);
    await assert.rejects(
      load(await write('classes', good, { x: same, y: (m) => ({ ...m, classes: ['back', 'none', 'front'] }) })),
      /member 'y' has classes back, none, front but the ensemble's are back, front, none; members must have the same classes in the same order/,
    );
    await assert.rejects(
      load(await write('size', good, { x: same, y: (m) => ({ ...m, preprocessing: { ...(m['preprocessing'] as object), size: 192 } }) })),
      /member 'y' takes 192x192 images \(squash\) but 'x' takes 224x224 \(squash\); members must share one input size and resize policy/,
    );
    await assert.rejects(
      load(await write('resize', good, { x: same, y: (m) => ({ ...m, preprocessing: { ...(m['preprocessing'] as object), resize: 'pad' } }) })),
      /member 'y' takes 224x224 images \(pad\) but 'x' takes 224x224 \(squash\)/,
    );
    await assert.rejects(load(await write('format', { ...good, format: 'phoneside-bundle' }, { x: same, y: same })), /is not a phoneside ensemble: format is "phoneside-bundle", expected 'phoneside-ensemble'/);
    await assert.rejects(load(await write('version', { ...good, version: 2 }, { x: same, y: same })), /ensemble version 2 is newer than this phoneside supports \(1\)/);
    await assert.rejects(load(await write('noclasses', { ...good, classes: ['front', 'back', 'none'] }, { x: same, y: same })), /member 'x' has classes back, front, none but the ensemble's are front, back, none/);
    await assert.rejects(load(await write('threshold', { ...good, thresholds: { phone: 0.5 } }, { x: same, y: same })), /threshold for unknown class 'phone'/);
    await assert.rejects(load(await write('tta', { ...good, tta: 'rot90' }, { x: same, y: same })), /unknown tta "rot90"/);
    await assert.rejects(load(await write('empty', { ...good, members: [] })), /members must be a non-empty array/);
    const badJson = await write('badjson', good);
    await writeFile(join(badJson, 'ensemble.json'), '{ not json');
    await assert.rejects(load(badJson), /ensemble\.json is not valid JSON/);
    // readEnsemble says the same without loading anything.
    await assert.rejects(readEnsemble(join(dir, 'missing')), /member 'y' is missing/);

    // createEnsemble / the CLI verb.
    await assert.rejects(createEnsemble([a, join(dir, 'nope')], { out: join(dir, 'o1') }), /nope is not a phoneside model/);
    await assert.rejects(createEnsemble([a, IMAGES[0]!], { out: join(dir, 'o2') }), /is a file; ensemble members are bundle or run folders/);
    await assert.rejects(createEnsemble([a, join(dir, 'classes', 'y')], { out: join(dir, 'o3') }), /member 'y' has classes back, none, front/);
    await assert.rejects(createEnsemble([a, a], { out: join(dir, 'o4'), thresholds: { phone: 0.5 } }), /thresholds: unknown class 'phone'/);
    await assert.rejects(createEnsemble([a, join(dir, 'size')], { out: join(dir, 'o5') }), /is an ensemble; give its members instead/);
    await assert.rejects(createEnsemble([a], { out: join(dir, 'classes') }), /already exists and is not empty/);
    assert.equal(existsSync(join(dir, 'o1')), false, 'nothing is written for a refused ensemble');
    const twice = await createEnsemble([a, a], { out: join(dir, 'o6') });
    assert.deepEqual(twice.manifest.members, ['a', 'a_2'], 'member folder names are made unique');

    const u = fakeIO();
    assert.equal(await cmdEnsemble([a, a], u.io), 2);
    assert.match(u.err(), /an ensemble needs --out, the folder to write/);
    assert.equal(await cmdEnsemble([a, '--out', join(dir, 'o7'), '--thresholds', 'back=2'], u.io), 2);
    assert.match(u.err(), /--thresholds must be NAME=NUMBER pairs with numbers in \[0, 1\], got 'back=2'/);
    assert.equal(await cmdEnsemble(['--out', join(dir, 'o8')], u.io), 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('CLI options: --tta on serve, --weights ID=PATH per backbone', async () => {
  const { parseServeArgs } = await import('../src/cli/serve.js');
  const { applyWeightsOption, isUsageError } = await import('../src/cli/options.js');
  const s = parseServeArgs(['--tta', '--device-tta']).options;
  assert.deepEqual([s.tta, s.deviceTta], [true, true]);
  assert.equal('tta' in parseServeArgs([]).options, false, 'the model decides by default');

  // MOBILENET_V2_035 as read from PHONESIDE_WEIGHTS_MOBILENET_V2_035; applyWeightsOption writes env.weightsDir, withEnv puts it back.
  await withEnv({ weightsDir: { ...env.weightsDir, MOBILENET_V2_035: '/from/env' } }, () => {
    assert.equal(applyWeightsOption(['mobilenet_v2=/m', 'resnet50=/r', '/bare']), '/bare');
    assert.equal(env.weightsDir['mobilenet_v2_0.35'], '/m', 'aliases resolve to the backbone id');
    assert.equal(env.weightsDir['MOBILENET_V2_035'], undefined, 'the command line wins over the environment');
    assert.equal(env.weightsDir['resnet50'], '/r');
    assert.equal(applyWeightsOption(['./dir=with/equals']), './dir=with/equals', 'a path with = in it is a path');
    assert.throws(() => applyWeightsOption(['vgg16=/x']), (e: unknown) => isUsageError(e) && /unknown backbone 'vgg16'/.test((e as Error).message));
    assert.throws(() => applyWeightsOption(['/a', '/b']), /only one bare --weights PATH/);
    assert.throws(() => applyWeightsOption(['resnet50=']), /the path is missing/);
  });
});
