/**
 * Hostile models and runs (issue 11, items 7-12): tampered bundles (weights.bin changed or cut
 * short, manifest.json cut short, NaN weights), a model whose output is NaN, out-of-range training
 * options, a training run that diverges, a class folder of undecodable files, `train --out` of an
 * existing run and `export` over an existing file, and JSON files that do not parse. Each case
 * asserts the exact outcome: the error (naming the file) or the exit status and message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatasetError } from '../src/data/dataset.js';
import { readCvReport } from '../src/eval/cv-report.js';
import { readSplitFile, RunFolder } from '../src/eval/run-folder.js';
import { Classifier, NonFiniteOutputError } from '../src/infer/classifier.js';
import { readEnsemble } from '../src/infer/ensemble.js';
import { shippedModelPath } from '../src/infer/load.js';
import { loadBundle, saveBundle } from '../src/model/bundle.js';
import { OptionError } from '../src/options/schema.js';
import { crossValidate } from '../src/train/cv.js';
import { TrainingDivergedError } from '../src/train/fit.js';
import { train } from '../src/train/train.js';
import { createServer } from '../src/serve/server.js';
import { runCli } from './helpers/cli.js';
import { withEnv } from './helpers/env.js';
import { makeBundle, useSharedMobilenet } from './helpers/infer-fixture.js';
import { DATA, IMAGES, NO_DATA } from './helpers/paths.js';

// MobileNetV2 models and runs load their backbone from ../shared (env.weightsDir), never a download.
useSharedMobilenet();

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A temp folder with its own cache (assembled graphs, trunk features), removed afterwards. */
async function inTemp(prefix: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), `phoneside-hostile-${prefix}-`));
  try {
    await withEnv({ cacheDir: join(dir, 'cache') }, () => fn(dir));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Rewrites a bundle's manifest.json through `edit` (keeping its layout: indent 1, trailing newline). */
async function editManifest(dir: string, edit: (m: Record<string, unknown>) => void): Promise<void> {
  const file = join(dir, 'manifest.json');
  const m = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  edit(m);
  await writeFile(file, JSON.stringify(m, null, 1) + '\n');
}

/** A small data folder: the first `n` photos of each class of the phones set. */
async function smallData(dir: string, n = 6): Promise<string> {
  for (const c of ['back', 'front', 'none']) {
    await mkdir(join(dir, c), { recursive: true });
    const names = (await readdir(join(DATA, c))).filter((f) => f.endsWith('.jpg')).sort().slice(0, n);
    for (const f of names) await copyFile(join(DATA, c, f), join(dir, c, f));
  }
  return dir;
}

/** The fast recipe of these runs (head only, a few epochs, no progress output). */
const FAST = ['--backbone', 'mobilenet_v2', '--epochs', '2', '--batch-size', '6', '--quiet'];

test('bundle integrity: saveBundle records the sha256 of weights.bin; a changed, short or non-finite weights.bin is refused, naming the file', { skip: NO_DATA }, () =>
  inTemp('integrity', async (dir) => {
    const good = await makeBundle(join(dir, 'good'));
    const manifest = JSON.parse(await readFile(join(good, 'manifest.json'), 'utf8')) as { weightsBinSha256?: string };
    const weights = await readFile(join(good, 'weights.bin'));
    assert.equal(manifest.weightsBinSha256, sha256(weights));
    assert.equal((await loadBundle(good)).manifest.weightsBinSha256, sha256(weights));

    // One byte changed (negating a weight flips its sign bit): every loader refuses it.
    const flipped = await makeBundle(join(dir, 'flipped'));
    const bytes = await readFile(join(flipped, 'weights.bin'));
    bytes[bytes.length - 1] ^= 0x80;
    await writeFile(join(flipped, 'weights.bin'), bytes);
    const mismatch = new RegExp(
      `^Error: ${join(flipped, 'weights.bin')} does not match its manifest\\.json: sha256 [0-9a-f]{12}…, the manifest says ${manifest.weightsBinSha256!.slice(0, 12)}… ` +
        `\\(${bytes.length} bytes\\); the file is damaged or was changed: copy or export the model again$`,
    );
    await assert.rejects(loadBundle(flipped), (err: unknown) => mismatch.test(String(err)));
    await assert.rejects(Classifier.load(flipped), (err: unknown) => mismatch.test(String(err)));
    const predicted = await runCli(['predict', '--model', flipped, '--format', 'jsonl', IMAGES[0]!]);
    assert.equal(predicted.code, 1);
    assert.equal(predicted.out, '');
    assert.match(predicted.err, /weights\.bin does not match its manifest\.json/);
    const exported = await runCli(['export', flipped, '--out', join(dir, 'flipped.onnx')]);
    assert.equal(exported.code, 1);
    assert.match(exported.err, /weights\.bin does not match its manifest\.json/);
    assert.equal(existsSync(join(dir, 'flipped.onnx')), false);
    const ensembled = await runCli(['ensemble', good, flipped, '--out', join(dir, 'ens')]);
    assert.equal(ensembled.code, 1);
    assert.match(ensembled.err, /flipped\/weights\.bin does not match its manifest\.json/);
    assert.equal(existsSync(join(dir, 'ens')), false, 'nothing copied');

    // Cut short: the digest says so; without a digest (an older bundle), the length does.
    const short = await makeBundle(join(dir, 'short'));
    await writeFile(join(short, 'weights.bin'), weights.subarray(0, weights.length - 6));
    await assert.rejects(loadBundle(short), /short\/weights\.bin does not match its manifest\.json/);
    await editManifest(short, (m) => delete m['weightsBinSha256']);
    await assert.rejects(loadBundle(short), new RegExp(`^Error: ${join(short, 'weights.bin')} is truncated or damaged: ${weights.length - 6} bytes is not a whole number of float32 values$`));
    await writeFile(join(short, 'weights.bin'), weights.subarray(0, weights.length - 8));
    await assert.rejects(loadBundle(short), /short\/weights\.bin is too short for head_logits\/bias \(truncated or damaged\)/);

    // An older bundle (no digest) with intact weights still loads and runs.
    const old = await makeBundle(join(dir, 'old'));
    await editManifest(old, (m) => delete m['weightsBinSha256']);
    assert.equal((await loadBundle(old)).manifest.weightsBinSha256, undefined);
    const clf = await Classifier.load(old);
    assert.equal((await clf.probabilities([IMAGES[0]!])).length, 1);
    await clf.dispose();

    // NaN weights with a matching digest (written by something else than saveBundle): refused on load.
    const nan = await makeBundle(join(dir, 'nan'));
    const nanBytes = new Uint8Array(await readFile(join(nan, 'weights.bin')));
    new DataView(nanBytes.buffer).setFloat32(0, NaN, true);
    await writeFile(join(nan, 'weights.bin'), nanBytes);
    await editManifest(nan, (m) => (m['weightsBinSha256'] = sha256(nanBytes)));
    const nanError = `${join(nan, 'weights.bin')}: weight head_fc1/kernel is NaN at element 0; the model is broken (diverged training or damaged file)`;
    await assert.rejects(loadBundle(nan), { message: nanError });
    await assert.rejects(Classifier.load(nan), { message: nanError });
    const nanExport = await runCli(['export', nan, '--out', join(dir, 'nan.onnx')]);
    assert.deepEqual([nanExport.code, nanExport.err], [1, `phoneside: ${nanError}\n`]);
    assert.equal(existsSync(join(dir, 'nan.onnx')), false);
    // ... and saveBundle never writes such a bundle.
    const loaded = await loadBundle(good);
    loaded.graph.nodes.find((n) => n.name === 'head_logits')!.weights['bias']!.data[1] = Infinity;
    await assert.rejects(saveBundle(join(dir, 'inf'), loaded), {
      message: `refusing to save a bundle to ${join(dir, 'inf')}: weight head_logits/bias is Infinity at element 1 (the model is broken)`,
    });
    assert.equal(existsSync(join(dir, 'inf')), false);

    // A truncated manifest.json is named.
    const cut = await makeBundle(join(dir, 'cut'));
    const text = await readFile(join(cut, 'manifest.json'), 'utf8');
    await writeFile(join(cut, 'manifest.json'), text.slice(0, 200));
    const truncated = `${join(cut, 'manifest.json')} is not valid JSON (`;
    await assert.rejects(loadBundle(cut), (err: unknown) => err instanceof Error && err.message.startsWith(truncated));
    await assert.rejects(Classifier.load(cut), (err: unknown) => err instanceof Error && err.message.startsWith(truncated));
    const cutPredict = await runCli(['predict', '--model', cut, IMAGES[0]!]);
    assert.equal(cutPredict.code, 1);
    assert.ok(cutPredict.err.startsWith(`phoneside: ${truncated}`), cutPredict.err);

    // A temperature of 0 in a manifest (what train --temperature 0 used to save) is refused.
    const cold = await makeBundle(join(dir, 'cold'));
    await editManifest(cold, (m) => (m['temperature'] = 0));
    await assert.rejects(loadBundle(cold), { message: `${join(cold, 'manifest.json')}: temperature must be a number > 0, got 0` });
  }),
);

test('the shipped bundles carry the sha256 of their weights.bin, and it matches', async () => {
  for (const name of ['mobilenet_v2', 'resnet50']) {
    const dir = shippedModelPath(name);
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { weightsBinSha256?: string };
    assert.equal(m.weightsBinSha256, sha256(await readFile(join(dir, 'weights.bin'))), name);
    assert.equal((await loadBundle(dir)).manifest.weightsBinSha256, m.weightsBinSha256);
  }
});

test('a model whose output is NaN: predict stops with a model error (no label), export writes nothing', { skip: NO_DATA }, () =>
  inTemp('nan-output', async (dir) => {
    // Finite weights, NaN output: a negative batch-norm variance (sqrt of a negative number).
    const model = await makeBundle(join(dir, 'model'));
    const bundle = await loadBundle(model);
    bundle.graph.nodes.find((n) => n.name === 'head_bn1')!.weights['moving_variance']!.data.fill(-5);
    await saveBundle(model, bundle);

    const clf = await Classifier.load(model);
    await assert.rejects(clf.probabilities(IMAGES), (err: unknown) => {
      assert.ok(err instanceof NonFiniteOutputError);
      assert.deepEqual([err.rows, err.images, Number.isNaN(err.value)], [[0, 1], 2, true]);
      return true;
    });
    await clf.dispose();

    const predicted = await runCli(['predict', '--model', model, '--format', 'jsonl', ...IMAGES]);
    assert.deepEqual(predicted, {
      code: 1,
      out: '',
      err: `phoneside: ${model}: the model's output is not finite (NaN) for 2 of 2 images; the model is broken (its weights or temperature), not the images\n`,
    });

    const out = join(dir, 'nan.onnx');
    const exported = await runCli(['export', model, '--out', out]);
    assert.deepEqual(exported, {
      code: 1,
      out: '',
      err: `phoneside: refusing to export ${model}: its output on a test image is NaN (not finite); the model is broken (its weights or temperature)\n`,
    });
    assert.equal(existsSync(out), false);

    // The service answers 500 for it, never a label made from NaN, and stays up.
    const app = await createServer({ model, deviceModel: false, workers: 1, threads: 1 });
    try {
      const res = await app.inject({ method: 'POST', url: '/v1/classify', payload: await readFile(IMAGES[0]!), headers: { 'content-type': 'image/jpeg' } });
      assert.equal(res.statusCode, 500);
      assert.equal((res.json() as { error: { code: string } }).error.code, 'model_output_not_finite');
      assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
    } finally {
      await app.close();
    }
  }),
);

test('train: out-of-range options are usage errors in flag words (exit 2), before any work', async () => {
  const cases: [string[], string][] = [
    [['--lr', '0'], "--lr must be a number > 0, got '0'"],
    [['--lr=-1'], "--lr must be a number > 0, got '-1'"],
    [['--temperature', '0'], "--temperature must be a number > 0, got '0'"],
    [['--temperature=-1'], "--temperature must be a number > 0, got '-1'"],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(['train', '/no/such/data', ...args]);
    assert.deepEqual(r, { code: 2, out: '', err: `phoneside: ${message}\nRun 'phoneside train --help' for usage.\n` }, args.join(' '));
    assert.doesNotMatch(r.err, /minLr|must be >= 0/);
  }
  // The library refuses the same values with the option's own name.
  await assert.rejects(train('/no/such/data', { lr: 0 }), (err: unknown) => err instanceof OptionError && err.message === 'option lr must be a number > 0, got 0');
  await assert.rejects(train('/no/such/data', { temperature: -1 }), (err: unknown) => err instanceof OptionError && err.option === 'temperature');
});

test('train: a diverging run fails at the first non-finite loss and saves no model', { skip: NO_DATA, timeout: 120_000 }, () =>
  inTemp('diverge', async (dir) => {
    const data = await smallData(join(dir, 'data'));
    const out = join(dir, 'run');
    const r = await runCli(['train', data, ...FAST, '--lr', '1e6', '--out', out]);
    assert.deepEqual([r.code, r.out], [1, '']);
    assert.equal(
      r.err,
      `phoneside: training diverged at epoch 1: validation loss NaN (training loss 6.57e+20) at learning rate 1000000; lower --lr; ` +
        `no model was saved (${join(out, 'metrics.jsonl')} has the epochs so far)\n`,
    );
    assert.deepEqual(await readdir(out), ['metrics.jsonl']);
    assert.equal((await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').length, 1);

    // Without a validation split it is the weights that go non-finite; the library throws the same error type.
    await assert.rejects(
      train(data, { backbone: 'mobilenet_v2', epochs: 2, batchSize: 6, verbose: false, lr: 1e6, valFraction: 0, out: join(dir, 'all') }),
      (err: unknown) => err instanceof TrainingDivergedError && err.epoch === 1 && /^training diverged at epoch 1: the weights are no longer finite at learning rate 1000000; lower --lr; no model was saved/.test(err.message),
    );
    assert.equal(existsSync(join(dir, 'all', 'model')), false);
  }),
);

test('train and cv: a class folder whose images all fail to decode is refused like an empty one', { skip: NO_DATA, timeout: 60_000 }, () =>
  inTemp('undecodable', async (dir) => {
    const data = await smallData(join(dir, 'data'), 3);
    const empty = join(dir, 'empty');
    await smallData(empty, 3);
    for (const f of await readdir(join(empty, 'back'))) await rm(join(empty, 'back', f));
    const emptied = await runCli(['train', empty, ...FAST, '--out', join(dir, 'run-empty')]);
    assert.equal(emptied.code, 1);
    assert.match(emptied.err, /^phoneside: class folder "back" contains no images \(looked for /);

    // back/ holds only files that do not decode: a cut-off JPEG and text named .png.
    const jpeg = await readFile(join(data, 'back', (await readdir(join(data, 'back')))[0]!));
    for (const f of await readdir(join(data, 'back'))) await rm(join(data, 'back', f));
    await writeFile(join(data, 'back', 'a-cut.jpg'), jpeg.subarray(0, 600));
    await writeFile(join(data, 'back', 'b-text.png'), 'hello');
    const r = await runCli(['train', data, ...FAST, '--out', join(dir, 'run')]);
    assert.equal(r.code, 1);
    const message = /^class folder "back" contains no images that decode \(2 files could not be decoded, e\.g\. back\/a-cut\.jpg: [a-z ]+\)$/;
    assert.match(r.err.split('\n').at(-2)!.replace(/^phoneside: /, ''), message);
    assert.equal(existsSync(join(dir, 'run')), false, 'no run folder');
    await assert.rejects(
      crossValidate(data, { backbone: 'mobilenet_v2', groups: 'prefix:_', out: null, verbose: false }),
      (err: unknown) => err instanceof DatasetError && message.test(err.message),
    );
  }),
);

test('train --out of an existing run: refused without --overwrite; with it the old run files are cleared', { skip: NO_DATA, timeout: 120_000 }, () =>
  inTemp('overwrite', async (dir) => {
    const data = await smallData(join(dir, 'data'));
    const out = join(dir, 'run');
    const first = await runCli(['train', data, ...FAST, '--out', out]);
    assert.equal(first.code, 0, first.err);
    assert.deepEqual(await readdir(out), ['config.json', 'data-report.json', 'evaluation.json', 'evaluation.txt', 'metrics.jsonl', 'model', 'report.html', 'split.json']);
    await writeFile(join(out, 'notes.txt'), 'mine');
    const evaluation = await readFile(join(out, 'evaluation.json'), 'utf8');

    const refused = await runCli(['train', data, ...FAST, '--out', out]);
    assert.deepEqual(refused, {
      code: 2,
      out: '',
      err: `phoneside: --out ${out} is not empty (config.json, data-report.json, evaluation.json, evaluation.txt, ...); give --overwrite to replace the run in it, or another --out\nRun 'phoneside train --help' for usage.\n`,
    });
    assert.equal(await readFile(join(out, 'evaluation.json'), 'utf8'), evaluation, 'the old run is untouched');

    // A run without a validation split writes no evaluation or report: the old ones must not stay.
    const second = await runCli(['train', data, ...FAST, '--val-fraction', '0', '--out', out, '--overwrite']);
    assert.equal(second.code, 0, second.err);
    assert.deepEqual(await readdir(out), ['config.json', 'data-report.json', 'metrics.jsonl', 'model', 'notes.txt', 'split.json']);
    assert.equal((await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').length, 2, 'metrics of this run only');
    assert.equal((await new RunFolder(out).readEvaluation()), null);
  }),
);

test('export: an existing target is refused unless --overwrite; the target must end in .onnx', { skip: NO_DATA }, () =>
  inTemp('export-over', async (dir) => {
    const model = await makeBundle(join(dir, 'model'));
    const photo = join(dir, 'photo.jpg');
    await writeFile(photo, 'a photo');
    const notOnnx = await runCli(['export', model, '--out', photo, '--overwrite']);
    assert.deepEqual(notOnnx, { code: 2, out: '', err: `phoneside: --out must be a file name ending in .onnx, got '${photo}'\nRun 'phoneside export --help' for usage.\n` });
    assert.equal(await readFile(photo, 'utf8'), 'a photo');

    const target = join(dir, 'model.onnx');
    await writeFile(target, 'older');
    const refused = await runCli(['export', model, '--out', target]);
    assert.deepEqual(refused, { code: 2, out: '', err: `phoneside: --out ${target} already exists; give --overwrite to replace it\nRun 'phoneside export --help' for usage.\n` });
    assert.equal(await readFile(target, 'utf8'), 'older');

    const folder = join(dir, 'folder.onnx');
    await mkdir(folder);
    const intoFolder = await runCli(['export', model, '--out', folder, '--overwrite']);
    assert.deepEqual([intoFolder.code, intoFolder.err.split('\n')[0]], [2, `phoneside: --out ${folder} is a folder; give the .onnx file to write`]);

    const replaced = await runCli(['export', model, '--out', target, '--overwrite']);
    assert.equal(replaced.code, 0, replaced.err);
    assert.ok((await readFile(target)).length > 100_000);
    const again = await Classifier.load(target);
    assert.equal(again.source.kind, 'onnx');
    await again.dispose();
  }),
);

test('JSON files of models, runs, ensembles and cv reports that do not parse are named in the error', () =>
  inTemp('json', async (dir) => {
    const broken = '{"format": "phoneside-';
    const why = /\(Unexpected end of JSON input|\(Unterminated string in JSON/;
    const ensemble = join(dir, 'ens');
    await mkdir(ensemble);
    await writeFile(join(ensemble, 'ensemble.json'), broken);
    await assert.rejects(readEnsemble(ensemble), (err: Error) => err.message.startsWith(`${join(ensemble, 'ensemble.json')} is not valid JSON (`) && why.test(err.message));
    await assert.rejects(Classifier.load(ensemble), (err: Error) => err.message.startsWith(`${join(ensemble, 'ensemble.json')} is not valid JSON (`));

    const run = join(dir, 'run');
    await mkdir(run);
    for (const f of ['config.json', 'split.json', 'evaluation.json']) await writeFile(join(run, f), broken);
    const folder = new RunFolder(run);
    await assert.rejects(folder.readConfig(), (err: Error) => err.message.startsWith(`${join(run, 'config.json')} is not valid JSON (`));
    await assert.rejects(folder.readSplit(), (err: Error) => err.message.startsWith(`${join(run, 'split.json')} is not valid JSON (`));
    await assert.rejects(readSplitFile(join(run, 'split.json')), (err: Error) => err.message.startsWith(`${join(run, 'split.json')} is not valid JSON (`));
    await assert.rejects(folder.readEvaluation(), (err: Error) => err.message.startsWith(`${join(run, 'evaluation.json')} is not valid JSON (`));
    await writeFile(join(run, 'split.json'), '{"version": 2}');
    await assert.rejects(readSplitFile(join(run, 'split.json')), { message: `${join(run, 'split.json')}: invalid split manifest: unsupported version 2` });

    const cv = join(dir, 'cv');
    await mkdir(cv);
    await writeFile(join(cv, 'cv.json'), broken);
    await assert.rejects(readCvReport(cv), (err: Error) => err.message.startsWith(`cannot read the cv report ${join(cv, 'cv.json')}: `) && why.test(`(${err.message.split(': ').pop()}`));

    // A model folder with a cut-off manifest, through the CLI verbs that only read manifests.
    const model = join(dir, 'model');
    await mkdir(model);
    await writeFile(join(model, 'manifest.json'), broken);
    await writeFile(join(model, 'weights.bin'), new Uint8Array(8));
    const r = await runCli(['export', model, '--out', join(dir, 'x.onnx'), '--weights', '/nowhere']);
    assert.equal(r.code, 1);
    assert.ok(r.err.startsWith(`phoneside: ${join(model, 'manifest.json')} is not valid JSON (`), r.err);
  }),
);
