/**
 * `phoneside predict`: path expansion (folders, globs), output formats, error rows for bad files,
 * exit statuses, confidence thresholds, the default model, and that inference never loads tfjs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { cmdPredict, csvField, summaryLine } from '../src/cli/predict.js';
import { Classifier } from '../src/infer/classifier.js';
import { expandInputs, segmentRegExp } from '../src/infer/inputs.js';
import { exportClassifier } from '../src/infer/export.js';
import { defaultModelPath, modelBackbones, NoDefaultModelError, resolveModelPath, shippedModelPath } from '../src/infer/load.js';
import { predictFiles, type PredictionRow } from '../src/infer/predict.js';
import { decide, UNCERTAIN } from '../src/infer/prediction.js';
import { CLASSES, makeBundle, useSharedMobilenet } from './helpers/infer-fixture.js';
import { haveData, IMAGES } from './helpers/paths.js';
import { fakeIO, runCli } from './helpers/cli.js';
import { withEnv } from './helpers/env.js';
import { displayPath, type FsPath } from '../src/util/list-dir.js';

// MobileNetV2 models load their backbone from ../shared (env.weightsDir), never from a download.
useSharedMobilenet();


/** Temp folder: front.jpg, back.jpg, corrupt.jpg (text), notes.txt, sub/deep/front2.jpg, .hidden/x.jpg. */
async function makeFolder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-predict-'));
  const imgs = join(dir, 'imgs');
  await mkdir(join(imgs, 'sub', 'deep'), { recursive: true });
  await mkdir(join(imgs, '.hidden'));
  await copyFile(IMAGES[0]!, join(imgs, 'front.jpg'));
  await copyFile(IMAGES[1]!, join(imgs, 'back.jpg'));
  await copyFile(IMAGES[0]!, join(imgs, 'sub', 'deep', 'front2.jpg'));
  await copyFile(IMAGES[0]!, join(imgs, '.hidden', 'x.jpg'));
  await writeFile(join(imgs, 'corrupt.jpg'), 'this is not a JPEG at all');
  await writeFile(join(imgs, 'notes.txt'), 'not an image');
  return dir;
}

test('expandInputs: folders, files, globs, missing paths', { skip: !haveData && 'no ../shared data' }, async () => {
  const dir = await makeFolder();
  try {
    const imgs = join(dir, 'imgs');
    const rel = (fs: readonly FsPath[]): string[] => fs.map((f) => displayPath(f).slice(imgs.length + 1));
    // Folders: recursive, images only, hidden entries skipped, sorted.
    assert.deepEqual(rel((await expandInputs([imgs])).files), ['back.jpg', 'corrupt.jpg', 'front.jpg', 'sub/deep/front2.jpg']);
    assert.deepEqual(rel((await expandInputs([`${imgs}/*.jpg`])).files), ['back.jpg', 'corrupt.jpg', 'front.jpg']);
    assert.deepEqual(rel((await expandInputs([`${imgs}/**/front*.jpg`])).files), ['front.jpg', 'sub/deep/front2.jpg']);
    assert.deepEqual(rel((await expandInputs([`${imgs}/?ack.jpg`])).files), ['back.jpg']);
    assert.deepEqual(rel((await expandInputs([`${imgs}/s*`])).files), ['sub/deep/front2.jpg'], 'a matched folder is searched');
    assert.deepEqual(rel((await expandInputs([`${imgs}/*`])).files), ['back.jpg', 'corrupt.jpg', 'front.jpg', 'sub/deep/front2.jpg'], 'globs keep images only');
    // Duplicates across arguments are dropped; an explicitly named file is kept whatever its extension.
    const mixed = await expandInputs([join(imgs, 'front.jpg'), imgs, join(imgs, 'notes.txt'), join(imgs, 'nope.jpg'), `${imgs}/*.png`]);
    assert.deepEqual(rel(mixed.files), ['front.jpg', 'back.jpg', 'corrupt.jpg', 'sub/deep/front2.jpg', 'notes.txt']);
    assert.deepEqual(mixed.problems, [
      { path: join(imgs, 'nope.jpg'), error: 'file not found' },
      { path: `${imgs}/*.png`, error: 'no image files match' },
    ]);
    assert.ok(segmentRegExp('a.b*').test('a.bcd') && !segmentRegExp('a.b*').test('axbcd') && !segmentRegExp('*').test('a/b'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('decide: top class, global and per-class thresholds', () => {
  const c = ['a', 'b', 'c'];
  assert.deepEqual(decide(c, [0.2, 0.7, 0.1]), { label: 'b', predicted: 'b', confidence: 0.7, probabilities: { a: 0.2, b: 0.7, c: 0.1 } });
  assert.equal(decide(c, [0.2, 0.7, 0.1], 0.75).label, UNCERTAIN);
  assert.equal(decide(c, [0.2, 0.7, 0.1], 0.5, { b: 0.8 }).label, UNCERTAIN);
  assert.equal(decide(c, [0.2, 0.7, 0.1], 0.5, { a: 0.99 }).label, 'b');
  assert.equal(decide(c, [0.2, 0.7, 0.1], 0, { b: 0.7 }).label, 'b', 'the threshold is inclusive');
  assert.equal(decide(c, [0.2, 0.7, 0.1], 0.75).predicted, 'b');
});

test('Classifier.classify answers as predict does: the model\'s thresholds apply unless turned off', { skip: !haveData && 'no ../shared data' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-classify-'));
  try {
    const strict = await makeBundle(join(dir, 'strict'), { thresholds: { back: 0.999, front: 0.999, none: 0.999 } });
    const clf = await Classifier.load(strict, { cache: false });
    try {
      const p = await clf.classify(IMAGES[0]!);
      assert.ok(p.confidence < 0.999, `fixture confidence ${p.confidence}`);
      assert.equal(p.label, UNCERTAIN);
      assert.ok(CLASSES.includes(p.predicted));
      assert.equal(p.confidence, Math.max(...Object.values(p.probabilities)));
      const raw = await clf.classify(IMAGES[0]!, { thresholds: false });
      assert.equal(raw.label, p.predicted);
      assert.deepEqual(raw.probabilities, p.probabilities);
      assert.equal((await clf.classify(IMAGES[0]!, { thresholds: false, minConfidence: 0.9999 })).label, UNCERTAIN);
      const rows: PredictionRow[] = [];
      for await (const r of predictFiles(clf, [IMAGES[0]!])) rows.push(r);
      assert.equal(rows[0]!.label, p.label);
      assert.equal(rows[0]!.predicted, p.predicted);
      assert.equal(rows[0]!.confidence, p.confidence);
      assert.deepEqual(rows[0]!.probabilities, p.probabilities);
    } finally {
      await clf.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('Classifier.load: a shipped model by name, a bundle or run folder, an .onnx file; modelBackbones says what each needs', { skip: !haveData && 'no ../shared data', timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-load-'));
  try {
    // A shipped name: ResNet50's weights come with npm ci.
    const shipped = await Classifier.load('resnet50', { threads: 1 });
    try {
      assert.deepEqual(shipped.source.kind, 'bundle');
      assert.equal(shipped.source.path, shippedModelPath('resnet50'));
      assert.equal(shipped.info.backbone.id, 'resnet50');
      const p = await shipped.classify(IMAGES[0]!);
      assert.deepEqual(Object.keys(p), ['label', 'predicted', 'confidence', 'probabilities']);
    } finally {
      await shipped.dispose();
    }

    // A run folder (holding model/) and its bundle folder: the same model.
    const bundle = await makeBundle(join(dir, 'run', 'model'), { seed: 5 });
    const fromRun = await Classifier.load(join(dir, 'run'), { threads: 1 });
    const fromBundle = await Classifier.load(bundle, { threads: 1 });
    assert.equal(fromRun.source.path, bundle);
    assert.deepEqual(await fromRun.probabilities(IMAGES), await fromBundle.probabilities(IMAGES));
    const want = await fromBundle.probabilities(IMAGES);
    await fromRun.dispose();
    await fromBundle.dispose();

    // An exported .onnx file: self-contained.
    const onnx = join(dir, 'model.onnx');
    await exportClassifier({ model: bundle, out: onnx });
    const fromOnnx = await Classifier.load(onnx, { threads: 1 });
    assert.equal(fromOnnx.source.kind, 'onnx');
    const got = await fromOnnx.probabilities(IMAGES);
    await fromOnnx.dispose();
    got.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - want[i]![k]!) < 1e-5, `${v} vs ${want[i]![k]}`)));

    // Which backbones' weights each needs (env.weightsDir / --weights): manifests only.
    assert.deepEqual(await modelBackbones('resnet50'), ['resnet50']);
    assert.deepEqual(await modelBackbones('mobilenet_v2'), ['mobilenet_v2_0.35']);
    assert.deepEqual(await modelBackbones('ensemble'), ['resnet50', 'mobilenet_v2_0.35']);
    assert.deepEqual(await modelBackbones(), ['resnet50', 'mobilenet_v2_0.35'], 'the default model');
    assert.deepEqual(await modelBackbones(join(dir, 'run')), ['mobilenet_v2_0.35']);
    assert.deepEqual(await modelBackbones(onnx), []);

    // Neither a path nor a shipped name.
    await assert.rejects(Classifier.load(join(dir, 'nope')), /nope is not a phoneside model: no such file or folder, nor the name of a shipped model/);
    await assert.rejects(Classifier.load('no_such_model'), /no_such_model is not a phoneside model/);
    await assert.rejects(modelBackbones(join(dir, 'nope')), /nope is not a phoneside model/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('predict CLI: missing weights offline exit 1 with the library\'s message worded with --weights, the env variable and --offline', { skip: !haveData && 'no ../shared data' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-noweights-'));
  try {
    // No MobileNetV2 weights anywhere: none in env.weightsDir, an empty cache, and no network.
    await withEnv({ weightsDir: {} }, async () => {
      const r = await runCli(['predict', '--model', 'mobilenet_v2', '--offline', '--cache-dir', join(dir, 'cache'), '--quiet', IMAGES[0]!]);
      assert.equal(r.code, 1, r.err);
      assert.equal(r.out, '');
      const cache = join(dir, 'cache', 'weights', 'mobilenet_v2_0.35_224');
      // The library's message: what is missing and where it looked ...
      assert.match(r.err, /^phoneside: offline mode .*weights 'mobilenet_v2_0\.35_224' of backbone 'mobilenet_v2_0\.35' are not available\. Missing: model\.json/);
      assert.ok(r.err.includes(`looked in ${cache}`), r.err);
      // ... and the CLI's words for providing them.
      assert.match(r.err, /--weights mobilenet_v2_0\.35=<folder holding model\.json> \(or PHONESIDE_WEIGHTS_MOBILENET_V2_035=<folder>\)/);
      assert.match(r.err, /run once without --offline/);
      assert.match(r.err, /--model resnet50/);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('summary line and CSV quoting', () => {
  const ok = (label: string): PredictionRow => ({ path: 'x', label, predicted: 'a', confidence: 0.9, probabilities: { a: 0.9, b: 0.1 }, ms: 1 });
  const bad: PredictionRow = { path: 'y', label: null, predicted: null, confidence: null, probabilities: null, ms: 0, error: 'truncated or corrupt' };
  assert.equal(summaryLine([ok('a'), ok('a'), ok(UNCERTAIN), bad], ['a', 'b'], 2), '4 images in 2.00s (1.5 img/s): a 2, b 0, uncertain 1; 1 error');
  assert.equal(csvField('plain/path.jpg'), 'plain/path.jpg');
  assert.equal(csvField('a,"b".jpg'), '"a,""b"".jpg"');
});

test('predict CLI: rows, formats, errors, exit status', { skip: !haveData && 'no ../shared data' }, async () => {
  const dir = await makeFolder();
  try {
    const imgs = join(dir, 'imgs');
    const model = await makeBundle(join(dir, 'model'));
    const common = ['--model', model, '--cache-dir', join(dir, 'cache')];
    const ref = await Classifier.load(model);
    const expected = await ref.probabilities(IMAGES);
    await ref.dispose();
    assert.ok(expected.every((p) => Math.max(...p) < 0.99), 'reference probabilities are below 0.99');

    // JSON lines (the default when stdout is not a terminal), summary on stderr.
    const j = fakeIO();
    assert.equal(await cmdPredict([...common, imgs], j.io), 1, j.err());
    const rows = j.out().trim().split('\n').map((l) => JSON.parse(l) as PredictionRow);
    assert.deepEqual(rows.map((r) => r.path), ['back.jpg', 'corrupt.jpg', 'front.jpg', 'sub/deep/front2.jpg'].map((f) => join(imgs, f)));
    const [back, corrupt, front, front2] = rows as [PredictionRow, PredictionRow, PredictionRow, PredictionRow];
    assert.deepEqual(corrupt, { path: join(imgs, 'corrupt.jpg'), label: null, predicted: null, confidence: null, probabilities: null, ms: corrupt.ms, error: 'not an image (JPEG, PNG, WebP, GIF, AVIF or TIFF expected)' });
    // The fields of the library's Prediction (label, predicted, confidence, probabilities), as classify() and the HTTP API give them.
    assert.deepEqual(Object.keys(JSON.parse(j.out().split('\n')[0]!) as object), ['path', 'label', 'predicted', 'confidence', 'probabilities', 'ms']);
    for (const [r, p] of [[front, expected[0]!], [back, expected[1]!], [front2, expected[0]!]] as const) {
      assert.equal(r.error, undefined);
      CLASSES.forEach((c, k) => assert.ok(Math.abs(r.probabilities![c]! - p[k]!) < 2e-6, `${r.path} ${c}: ${r.probabilities![c]} vs ${p[k]}`));
      const best = CLASSES[p.indexOf(Math.max(...p))]!;
      assert.equal(r.predicted, best);
      assert.equal(r.label, best);
      assert.equal(r.confidence, r.probabilities![best]);
      assert.ok(r.ms > 0);
    }
    assert.match(j.err(), new RegExp(`^4 images in [0-9.]+s \\([0-9.]+ img/s\\): back ${rows.filter((r) => r.label === 'back').length}, front \\d, none \\d, uncertain 0; 1 error\\n$`));

    // CSV, batch size 1 (so several batches overlap), all good images -> exit 0.
    const c = fakeIO();
    assert.equal(await cmdPredict([...common, '--format', 'csv', '--batch-size', '1', '--quiet', join(imgs, 'front.jpg'), join(imgs, 'back.jpg')], c.io), 0, c.err());
    const lines = c.out().trim().split('\n');
    assert.equal(lines[0], 'path,label,predicted,confidence,prob_back,prob_front,prob_none,ms,error');
    assert.equal(lines.length, 3);
    const cells = lines[1]!.split(',');
    assert.equal(cells[0], join(imgs, 'front.jpg'));
    assert.equal(cells[1], front.label);
    assert.equal(Number(cells[4]), front.probabilities!['back']);
    assert.equal(cells[8], '');
    assert.equal(c.err(), '', '--quiet prints no summary');

    // CSV error row; a glob; a pattern matching nothing.
    const g = fakeIO();
    assert.equal(await cmdPredict([...common, '--format', 'csv', `${imgs}/c*.jpg`, `${imgs}/*.webp`], g.io), 1);
    const glines = g.out().trim().split('\n').slice(1);
    assert.equal(glines.length, 2);
    assert.equal(glines[0], `${imgs}/*.webp,,,,,,,0,no image files match`);
    assert.match(glines[1]!, new RegExp(`^${join(imgs, 'corrupt.jpg').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')},,,,,,,[0-9.]+,"not an image \\(JPEG, PNG, WebP, GIF, AVIF or TIFF expected\\)"$`));

    // --min-confidence above every top probability: all uncertain, the predicted class still reported.
    const u = fakeIO();
    assert.equal(await cmdPredict([...common, '--min-confidence', '0.99', join(imgs, 'front.jpg'), join(imgs, 'back.jpg')], u.io), 0);
    const urows = u.out().trim().split('\n').map((l) => JSON.parse(l) as PredictionRow);
    assert.deepEqual(urows.map((r) => [r.label, r.predicted]), [[UNCERTAIN, front.predicted], [UNCERTAIN, back.predicted]]);
    assert.match(u.err(), /uncertain 2; 0 errors/);

    // Table on a terminal: header, rows, error text, summary at the end of stdout.
    const t = fakeIO(true);
    assert.equal(await cmdPredict([...common, imgs], t.io), 1);
    const tl = t.out().split('\n');
    assert.match(tl[0]!, /^path\s+label\s+conf\s+back\s+front\s+none\s+ms$/);
    assert.match(t.out(), /corrupt\.jpg\s+error: not an image \(JPEG, PNG, WebP, GIF, AVIF or TIFF expected\)/);
    assert.match(t.out(), new RegExp(`front\\.jpg\\s+${front.label}\\s+${front.confidence!.toFixed(3)}\\s`));
    assert.match(t.out(), /\n\n4 images in .*; 1 error\n$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('predict CLI: usage errors and the default model', async () => {
  const u = fakeIO();
  assert.equal(await cmdPredict([], u.io), 2);
  assert.match(u.err(), /predict takes at least 1 PATH \(got none\)/);
  assert.equal(await cmdPredict(['--format', 'xml', 'x.jpg'], u.io), 2);
  assert.match(u.err(), /--format must be one of table, jsonl, csv, got 'xml'/);
  assert.equal(await cmdPredict(['--min-confidence', '2', 'x.jpg'], u.io), 2);
  assert.equal(await cmdPredict(['--batch-size', '0', 'x.jpg'], u.io), 2);
  assert.equal(await cmdPredict(['--bogus', 'x.jpg'], u.io), 2);
  const h = fakeIO();
  assert.equal(await cmdPredict(['--help'], h.io), 0);
  assert.match(h.out(), /phoneside predict \[--model MODEL\] PATH/);

  // The default model: models/ensemble/ in the package root; shipped models by name.
  const root = await mkdtemp(join(tmpdir(), 'phoneside-root-'));
  try {
    assert.throws(() => resolveModelPath(undefined, root), (e: unknown) => e instanceof NoDefaultModelError && e.message === 'no default model is shipped yet; give one with model');
    assert.equal(resolveModelPath('given', root), 'given');
    await mkdir(join(root, 'models', 'ensemble'), { recursive: true });
    assert.equal(resolveModelPath(undefined, root), join(root, 'models', 'ensemble'));
    assert.equal(resolveModelPath('mobilenet_v2', root), 'mobilenet_v2', 'a name with no shipped bundle stays a path');
    await mkdir(join(root, 'models', 'mobilenet_v2'), { recursive: true });
    await writeFile(join(root, 'models', 'mobilenet_v2', 'manifest.json'), '{}');
    assert.equal(resolveModelPath('mobilenet_v2', root), join(root, 'models', 'mobilenet_v2'));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  assert.equal(defaultModelPath(), resolve('models/ensemble'), 'the package root is found from the module location');
  if (!existsSync(defaultModelPath()) && haveData) {
    const d = fakeIO();
    assert.equal(await cmdPredict([IMAGES[0]!], d.io), 2);
    assert.match(d.err(), /no default model is shipped yet; give one with --model/);
  }
});

test('inference, serving and evaluation code never imports tfjs or the training code', () => {
  const roots = ['src/cli/predict.ts', 'src/cli/export.ts', 'src/cli/ensemble.ts', 'src/infer/ensemble.ts', 'src/cli/serve.ts', 'src/cli/compare.ts', 'src/serve/server.ts', 'src/infer/load.ts', 'src/infer/predict.ts', 'src/infer/export.ts', 'src/infer/inputs.ts', 'src/eval/evaluate.ts'];
  const seen = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(/(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const spec = (m[1] ?? m[2])!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else packages.add(spec);
    }
  };
  roots.forEach((r) => visit(resolve(r)));
  assert.ok(seen.has(resolve('src/infer/classifier.ts')) && seen.has(resolve('src/onnx/from-graph.ts')), 'the walk follows imports');
  assert.ok(seen.has(resolve('src/serve/queue.ts')) && seen.has(resolve('src/eval/html/svg.ts')), 'the walk reaches serving and reports');
  const train = [...seen].filter((f) => f.includes('/src/train/'));
  assert.deepEqual(train, []);
  assert.deepEqual([...packages].filter((p) => p.includes('tensorflow')), []);
  assert.ok(packages.has('onnxruntime-node'));
});
