/**
 * The models a server holds (src/serve/models.ts): /v1/models, the device model the web page runs
 * (/models/device.json and .onnx, checked against the server's answers), a device model that
 * cannot load, and the real shipped models.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import * as ort from 'onnxruntime-node';
import { loadForModel } from '../src/data/image.js';
import { env } from '../src/env.js';
import { Classifier } from '../src/infer/classifier.js';
import { exportClassifier } from '../src/infer/export.js';
import { shippedModelPath } from '../src/infer/load.js';
import { createServer } from '../src/serve/server.js';
import { patchEnv, withEnv } from './helpers/env.js';
import { CLASSES } from './helpers/infer-fixture.js';
import { DATA, IMAGES, MOBILENET, NO_DATA as skip } from './helpers/paths.js';
import { SLOW } from './helpers/slow.js';
import { assertError, LIMITS, multipart, useServeFixture, type ClassifyJson } from './helpers/serve.js';

describe('serve: the fixture model and its device model', { skip }, () => {
  const s = useServeFixture({ app: true });

  test('GET /v1/models describes the loaded models', async () => {
    const res = await s.app.inject({ url: '/v1/models' });
    assert.equal(res.statusCode, 200);
    const body = res.json() as { models: { id: string; version: string; role: string; classes: string[]; preprocessing: { size: number } }[]; limits: { maxFiles: number } };
    assert.deepEqual(body.models.map((m) => m.role), ['server', 'device']);
    const m = body.models[0]!;
    assert.equal(m.id, 'fixture');
    assert.match(m.version, /^20240102-[0-9a-f]{12}$/); // the fixture's createdAt + content digest
    const digest = createHash('sha256').update(await readFile(join(s.fx.model, 'manifest.json'))).update('\0').update(await readFile(join(s.fx.model, 'weights.bin'))).digest('hex');
    assert.equal(m.version.slice(9), digest.slice(0, 12));
    assert.deepEqual(m.classes, CLASSES);
    assert.equal(m.preprocessing.size, 224);
    assert.equal(body.limits.maxFiles, LIMITS.maxFiles);
  });

  test('device model: /models/device.json describes /models/device.onnx, which gives the same probabilities', async () => {
    const j = await s.app.inject({ url: '/models/device.json' });
    assert.equal(j.statusCode, 200);
    const info = j.json() as { id: string; version: string; classes: string[]; preprocessing: { size: number; channelOrder: 'RGB' | 'BGR'; mean: number[]; std: number[]; resize: 'squash' }; thresholds: object; temperature: number; onnx: string; bytes: number; sha256: string };
    assert.equal(info.onnx, '/models/device.onnx');
    assert.deepEqual(info.classes, CLASSES);
    assert.equal(info.temperature, 1);
    assert.deepEqual(info.thresholds, {});
    assert.deepEqual(info.preprocessing, { size: 224, channelOrder: 'RGB', mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5], resize: 'squash' });
    const o = await s.app.inject({ url: info.onnx });
    assert.equal(o.statusCode, 200);
    assert.equal(o.headers['content-type'], 'application/octet-stream');
    assert.equal(o.rawPayload.length, info.bytes);
    assert.equal(createHash('sha256').update(o.rawPayload).digest('hex'), info.sha256);
    const etag = String(o.headers['etag']);
    assert.equal((await s.app.inject({ url: info.onnx, headers: { 'if-none-match': etag } })).statusCode, 304);

    // Run it the way the page does: decode, resize, (pixel - mean) / std in 0..255 units, NCHW.
    const p = info.preprocessing;
    const rgb = await loadForModel(IMAGES[1]!, p.size, p.resize);
    const n = p.size * p.size;
    const x = new Float32Array(3 * n);
    const order = p.channelOrder === 'RGB' ? [0, 1, 2] : [2, 1, 0];
    for (let c = 0; c < 3; c++) for (let i = 0; i < n; i++) x[c * n + i] = (rgb.data[i * 3 + order[c]!]! - p.mean[c]!) / p.std[c]!;
    const session = await ort.InferenceSession.create(new Uint8Array(o.rawPayload), { intraOpNumThreads: 1 });
    const out = await session.run({ input: new ort.Tensor('float32', x, [1, 3, p.size, p.size]) });
    await session.release();
    const probs = Array.from(out['output']!.data as Float32Array);
    const server = ((await s.app.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[1] })).json() as ClassifyJson).results[0]!;
    CLASSES.forEach((c, i) => assert.ok(Math.abs(probs[i]! - server.probabilities[c]!) < 1e-4, `${c}: ${probs[i]} vs ${server.probabilities[c]}`));
  });

  test('an on-device model that cannot load (offline, no weights) costs the page its device mode, not the API', async () => {
    // The API's model: the fixture as a self-contained .onnx file, which needs no backbone weights.
    const onnx = join(s.fx.dir, 'fixture.onnx');
    await exportClassifier({ model: s.fx.model, out: onnx });
    await withEnv({ offline: true, cacheDir: join(s.fx.dir, 'empty-cache'), weightsDir: {} }, async () => {
      const local = await createServer({ ...s.base(), model: onnx, deviceModel: shippedModelPath('mobilenet_v2'), workers: 0 });
      try {
        const e = assertError(await local.inject({ url: '/models/device.json' }), 503, 'device_model_unavailable');
        assert.match(e.message, /offline/);
        assert.match(e.message, /PHONESIDE_WEIGHTS_MOBILENET_V2_035/, 'the hint says how to provide them');
        assert.doesNotMatch(e.message, /(^|\s)--[a-z]/, 'the library names no command-line flag (serve words it)');
        assertError(await local.inject({ url: '/models/device.onnx' }), 503, 'device_model_unavailable');
        assert.match((await local.inject({ url: '/v1/models' })).json().deviceModelError, /offline/);
        const ok = await local.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0] });
        assert.equal(ok.statusCode, 200);
      } finally {
        await local.close();
      }
    });
  });
});

describe('serve: the shipped models', { skip: skip || SLOW }, () => {
  let app: FastifyInstance;
  let restoreEnv: (() => void) | undefined;
  before(async () => {
    // The default model is an ensemble with a MobileNetV2 member: its weights from ../shared.
    restoreEnv = patchEnv({ weightsDir: { ...env.weightsDir, 'mobilenet_v2_0.35': MOBILENET } });
    app = await createServer();
  });
  after(async () => {
    await app?.close();
    restoreEnv?.();
  });

  test('defaults: the ensemble answers /v1/classify, mobilenet_v2 is the device model, group-CV metrics from the manifests', async () => {
    const models = (await app.inject({ url: '/v1/models' })).json() as { models: { id: string; role: string; metrics: { accuracy: number; macroF1: number; worstGroup?: { group: string } } | null; card: string | null }[] };
    assert.deepEqual(models.models.map((m) => [m.role, m.id]), [['server', 'ensemble'], ['device', 'mobilenet_v2']]);
    for (const m of models.models) {
      const file = m.id === 'ensemble' ? 'ensemble.json' : 'manifest.json';
      const manifest = JSON.parse(await readFile(join(shippedModelPath(m.id), file), 'utf8')) as { info: { groupCv: { pooled: { accuracy: number; macroF1: number; worstGroup: { group: string } } } } };
      assert.equal(m.metrics?.accuracy, manifest.info.groupCv.pooled.accuracy);
      assert.equal(m.metrics?.macroF1, manifest.info.groupCv.pooled.macroF1);
      assert.equal(m.metrics?.worstGroup?.group, manifest.info.groupCv.pooled.worstGroup.group);
      assert.match(m.card ?? '', /model card/);
    }
    const device = (await app.inject({ url: '/models/device.json' })).json() as { id: string; preprocessing: { channelOrder: string } };
    assert.equal(device.id, 'mobilenet_v2');
    assert.equal(device.preprocessing.channelOrder, 'RGB');
  });

  test('real phone photos get their folder\'s label (these photos are in the shipped model\'s training set)', async () => {
    const files: { cls: string; name: string; data: Buffer }[] = [];
    for (const cls of CLASSES) {
      const names = (await readdir(join(DATA, cls))).filter((f) => f.endsWith('.jpg')).sort().slice(0, 4);
      for (const name of names) files.push({ cls, name, data: await readFile(join(DATA, cls, name)) });
    }
    const mp = multipart(files.map((f) => ({ filename: `${f.cls}-${basename(f.name)}`, type: 'image/jpeg', data: f.data })));
    const res = await app.inject({ method: 'POST', url: '/v1/classify', ...mp });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json() as ClassifyJson;
    assert.equal(body.model.id, 'ensemble');
    assert.match(body.model.version, /^\d{8}-[0-9a-f]{12}$/);
    assert.deepEqual(body.results.map((r) => r.filename), files.map((f) => `${f.cls}-${f.name}`));
    // The service answers exactly what the library does with the same model...
    const clf = await Classifier.load(shippedModelPath('ensemble'));
    try {
      for (const [i, f] of files.entries()) {
        const expected = await clf.classify(new Uint8Array(f.data));
        for (const c of CLASSES) assert.ok(Math.abs(expected.probabilities[c]! - body.results[i]!.probabilities[c]!) < 1e-4, `${f.name} ${c}`);
      }
    } finally {
      await clf.dispose();
    }
    // ...and that is far better than chance (1/3) on photos the model was trained on.
    const right = body.results.filter((r, i) => r.predicted === files[i]!.cls).length;
    assert.ok(right >= (2 * files.length) / 3, `${right} of ${files.length} right`);
  });
});
