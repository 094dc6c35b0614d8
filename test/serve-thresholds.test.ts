/**
 * The model's thresholds in the service: on by default, `?thresholds=false` per request,
 * `--no-thresholds` for the server, the same thresholds on the on-device page, and the OpenAPI
 * description of the parameter.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createServer, type ServeOptions } from '../src/serve/server.js';
import { webDir } from '../src/web/assets.js';
import { makeBundle, useSharedMobilenet } from './helpers/infer-fixture.js';
import { IMAGES, NO_DATA as skip } from './helpers/paths.js';
import { argmax, assertError, type ClassifyJson } from './helpers/serve.js';

describe("serve: the model's thresholds (--no-thresholds, ?thresholds=false)", { skip }, () => {
  // Every class at 0.999: the fixture's unsaturated probabilities are all below, so 'uncertain'.
  const THRESHOLDS = { back: 0.999, front: 0.999, none: 0.999 };
  let dir: string;
  let model: string;
  let jpeg: Buffer;
  let on: FastifyInstance | undefined;
  let off: FastifyInstance | undefined;
  const opts = (): ServeOptions => ({ model, deviceModel: model, workers: 0, threads: 1 });
  const classify = async (app: FastifyInstance, query = ''): Promise<ClassifyJson['results'][number]> => {
    const res = await app.inject({ method: 'POST', url: `/v1/classify${query}`, payload: jpeg, headers: { 'content-type': 'image/jpeg' } });
    assert.equal(res.statusCode, 200, res.body);
    return (res.json() as ClassifyJson).results[0]!;
  };
  interface DeviceModule {
    checkDeviceInfo(raw: unknown): { thresholds: Record<string, number>; classes: string[] };
    decide(classes: string[], probs: ArrayLike<number>, thresholds: Record<string, number>): { label: string; predicted: string };
  }
  /** The page's on-device label for these probabilities, from what device.json tells it. */
  const pageLabel = async (app: FastifyInstance, probabilities: Record<string, number>): Promise<{ label: string; thresholds: Record<string, number> }> => {
    const device = (await import(pathToFileURL(join(webDir(), 'device-mode.js')).href)) as DeviceModule;
    const j = await app.inject({ url: '/models/device.json' });
    assert.equal(j.statusCode, 200);
    const info = device.checkDeviceInfo(j.json());
    return { label: device.decide(info.classes, info.classes.map((c) => probabilities[c]!), info.thresholds).label, thresholds: info.thresholds };
  };

  let restoreEnv: (() => void) | undefined;
  before(async () => {
    restoreEnv = useSharedMobilenet();
    dir = await mkdtemp(join(tmpdir(), 'phoneside-serve-thr-'));
    model = await makeBundle(join(dir, 'fixture-thresholds'), { thresholds: THRESHOLDS });
    jpeg = await readFile(IMAGES[0]!);
    on = await createServer(opts());
    off = await createServer({ ...opts(), thresholds: false });
  });
  after(async () => {
    await on?.close();
    await off?.close();
    await rm(dir, { recursive: true, force: true });
    restoreEnv?.();
  });

  test("by default the model's thresholds apply; ?thresholds=false gives the raw label", async () => {
    const r = await classify(on!);
    assert.ok(r.confidence < 0.999, `fixture confidence ${r.confidence}`);
    assert.equal(r.label, 'uncertain');
    assert.equal(r.predicted, argmax(r.probabilities));
    const raw = await classify(on!, '?thresholds=false');
    assert.equal(raw.label, r.predicted);
    assert.deepEqual(raw.probabilities, r.probabilities);
    assert.equal((await classify(on!, '?thresholds=true')).label, 'uncertain');
    // minConfidence still applies without the model's thresholds.
    assert.equal((await classify(on!, `?thresholds=false&minConfidence=${Math.min(1, r.confidence + 0.001)}`)).label, 'uncertain');
    assertError(await on!.inject({ method: 'POST', url: '/v1/classify?thresholds=maybe', payload: jpeg }), 400, 'bad_request');
    const models = (await on!.inject({ url: '/v1/models' })).json() as { models: { role: string; thresholds: object; thresholdsApplied: boolean }[] };
    assert.deepEqual(models.models[0], { ...models.models[0], role: 'server', thresholds: THRESHOLDS, thresholdsApplied: true });
  });

  test('--no-thresholds: the raw label by default; ?thresholds=true turns them on', async () => {
    const r = await classify(off!);
    assert.equal(r.label, r.predicted);
    assert.equal((await classify(off!, '?thresholds=false')).label, r.predicted);
    assert.equal((await classify(off!, '?thresholds=true')).label, 'uncertain');
    const models = (await off!.inject({ url: '/v1/models' })).json() as { models: { role: string; thresholds: object; thresholdsApplied: boolean }[] };
    // /v1/models still shows the model's thresholds, and that they are off.
    assert.deepEqual(models.models[0], { ...models.models[0], role: 'server', thresholds: THRESHOLDS, thresholdsApplied: false });
  });

  test('the on-device page gets the thresholds from /models/device.json and applies them (none under --no-thresholds)', async () => {
    const { probabilities, predicted } = await classify(on!, '?thresholds=false');
    const page = await pageLabel(on!, probabilities);
    assert.deepEqual(page.thresholds, THRESHOLDS);
    assert.equal(page.label, 'uncertain');
    const pageOff = await pageLabel(off!, probabilities);
    assert.deepEqual(pageOff.thresholds, {});
    assert.equal(pageOff.label, predicted);
  });

  test('the OpenAPI description documents ?thresholds with the server\'s default', async () => {
    type Param = { name: string; in: string; schema: { type: string; default?: boolean }; description: string };
    const params = async (app: FastifyInstance): Promise<Param[]> =>
      ((await app.inject({ url: '/docs/openapi.json' })).json() as { paths: Record<string, { post: { parameters: Param[] } }> }).paths['/v1/classify']!.post.parameters;
    const p = (await params(on!)).find((x) => x.name === 'thresholds');
    assert.ok(p, 'thresholds parameter documented');
    assert.equal(p.in, 'query');
    assert.deepEqual(p.schema, { type: 'boolean', default: true });
    assert.match(p.description, /thresholds=false/);
    const q = (await params(off!)).find((x) => x.name === 'thresholds')!;
    assert.equal(q.schema.default, false);
    assert.match(q.description, /--no-thresholds/);
  });
});
