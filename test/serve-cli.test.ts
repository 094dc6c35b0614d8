/** `phoneside serve` (src/cli/serve.ts): usage errors, --help, and a run stopped by SIGTERM. */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { cmdServe, parseServeArgs } from '../src/cli/serve.js';
import { exportClassifier } from '../src/infer/export.js';
import { fakeIO } from './helpers/cli.js';
import { withEnv } from './helpers/env.js';
import { envWithMobilenet, makeBundle } from './helpers/infer-fixture.js';
import { IMAGES, MOBILENET, NO_DATA as skip } from './helpers/paths.js';

describe('serve: the command', () => {
  test('usage errors exit 2; --help prints the options', async () => {
    for (const args of [['--port', 'abc'], ['--port', '70000'], ['--workers=-1'], ['--max-image-mb', '0'], ['photo.jpg'], ['--device-model', 'x', '--no-device-model'], ['--bogus']]) {
      const f = fakeIO();
      assert.equal(await cmdServe(args, f.io), 2, args.join(' '));
      assert.match(f.err(), /^phoneside: [\s\S]+\nRun 'phoneside serve --help' for usage\.\n$/);
    }
    const h = fakeIO();
    assert.equal(await cmdServe(['--help'], h.io), 0);
    for (const opt of ['--model', '--host', '--port', '--api-key', '--workers', '--threads', '--queue', '--timeout', '--max-files', '--max-pixels']) assert.ok(h.out().includes(opt), opt);
  });

  test('--no-thresholds: parsed, and documented with ?thresholds=false', async () => {
    assert.equal(parseServeArgs(['--no-thresholds']).options.thresholds, false);
    assert.equal('thresholds' in parseServeArgs([]).options, false, 'thresholds apply by default');
    const h = fakeIO();
    assert.equal(await cmdServe(['--help'], h.io), 0);
    assert.match(h.out(), /--no-thresholds /);
    assert.match(h.out(), /\?thresholds=false/);
  });

  test('serves until SIGTERM, then stops cleanly with status 0', { skip }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'phoneside-serve-cli-'));
    try {
      const model = await makeBundle(join(dir, 'cli-fixture'));
      const f = fakeIO();
      const done = cmdServe(['--model', model, '--weights', MOBILENET, '--no-device-model', '--port', '0', '--quiet', '--workers', '1', '--threads', '1'], f.io);
      let url: string | undefined;
      for (let i = 0; i < 600 && url === undefined; i++) {
        url = /phoneside serve: (http:\/\/\S+)/.exec(f.err())?.[1];
        if (url === undefined) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(url, f.err());
      assert.match(f.err(), /model {6}cli-fixture \d{8}-[0-9a-f]{12}/);
      assert.match(f.err(), /inference {2}1 worker thread x 1 ONNX Runtime thread;/);
      const res = await fetch(`${url}/v1/classify`, { method: 'POST', body: new Uint8Array(await readFile(IMAGES[0]!)) });
      assert.equal(res.status, 200);
      process.emit('SIGTERM', 'SIGTERM');
      assert.equal(await done, 0);
      assert.match(f.err(), /SIGTERM, finishing requests in flight[\s\S]*stopped/);
      await assert.rejects(fetch(`${url}/healthz`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("an on-device model without its weights: the server starts, and says so with serve's own flag (--device-weights)", { skip }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'phoneside-serve-cli-'));
    try {
      // The API's model: a self-contained .onnx file; the device model: the shipped mobilenet_v2, offline with no weights.
      const onnx = join(dir, 'api.onnx');
      await withEnv({ weightsDir: envWithMobilenet().weightsDir }, async () => exportClassifier({ model: await makeBundle(join(dir, 'cli-fixture')), out: onnx }));
      await withEnv({ weightsDir: {} }, async () => {
        const f = fakeIO();
        const done = cmdServe(['--model', onnx, '--offline', '--cache-dir', join(dir, 'cache'), '--port', '0', '--quiet', '--workers', '0'], f.io);
        let url: string | undefined;
        for (let i = 0; i < 600 && url === undefined; i++) {
          url = /phoneside serve: (http:\/\/\S+)/.exec(f.err())?.[1];
          if (url === undefined) await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(url, f.err());
        assert.match(f.err(), /on-device {2}unavailable: offline mode .*weights 'mobilenet_v2_0\.35_224' of backbone 'mobilenet_v2_0\.35' are not available/);
        assert.match(f.err(), /--device-weights mobilenet_v2_0\.35=<folder holding model\.json>/);
        assert.doesNotMatch(f.err(), /--weights mobilenet/, "the device model's flag, not --model's");
        process.emit('SIGTERM', 'SIGTERM');
        assert.equal(await done, 0);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
