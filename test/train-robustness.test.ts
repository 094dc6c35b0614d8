/** A training run over a folder with bad files: they are skipped, reported, and the run completes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { env } from '../src/env.js';
import { train } from '../src/train/train.js';
import { withEnv } from './helpers/env.js';
import { DATA, haveData, MOBILENET } from './helpers/paths.js';
import { SLOW } from './helpers/slow.js';

test('undecodable files are skipped and listed; the run still trains and saves', { skip: (!haveData && 'no shared data') || SLOW, timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-robust-'));
  try {
    const data = join(dir, 'data');
    for (const c of ['back', 'front', 'none']) {
      await mkdir(join(data, c), { recursive: true });
      const names = (await readdir(join(DATA, c))).filter((f) => f.endsWith('.jpg')).sort().slice(0, 6);
      for (const n of names) await copyFile(join(DATA, c, n), join(data, c, n));
    }
    const jpeg = await readFile(join(data, 'front', (await readdir(join(data, 'front')))[0]!));
    await writeFile(join(data, 'front', 'truncated.jpg'), jpeg.subarray(0, 600));
    await writeFile(join(data, 'back', 'not-an-image.png'), 'hello');
    await writeFile(join(data, 'none', 'notes.txt'), 'a note');
    const out = join(dir, 'run');
    // The backbone's weights come from env.weightsDir, as for every training run.
    const patch = { cacheDir: join(dir, 'cache'), weightsDir: { ...env.weightsDir, 'mobilenet_v2_0.35': MOBILENET } };
    const r = await withEnv(patch, () => train(data, {
      backbone: 'mobilenet_v2', out, topBlocks: 0, epochs: 2, views: 1, batchSize: 6, verbose: false,
    }));
    const skippedNames = r.skipped.map((s) => s.path.split('/').pop()).sort();
    assert.deepEqual(skippedNames, ['not-an-image.png', 'notes.txt', 'truncated.jpg']);
    const report = JSON.parse(await readFile(join(out, 'data-report.json'), 'utf8')) as { skipped: { path: string; reason: string }[] };
    assert.equal(report.skipped.length, 3);
    assert.ok(report.skipped.every((s) => s.reason.length > 0));
    assert.equal(r.evaluation?.total, 3 * 1, 'one validation image per class (6 images, 20%)');
    assert.ok(existsSync(join(out, 'model', 'manifest.json')));
    assert.ok(r.calibration.temperature > 0);

    // --val-fraction 0: every image trains, for exactly --epochs epochs, with the given temperature.
    const all = await withEnv(patch, () => train(data, {
      backbone: 'mobilenet_v2', out: join(dir, 'all'), topBlocks: 0, epochs: 3, views: 1, batchSize: 6,
      valFraction: 0, temperature: 0.8, verbose: false,
    }));
    assert.equal(all.evaluation, undefined);
    assert.equal(all.history.length, 3);
    assert.equal(all.split.entries.filter((e) => e.split === 'val').length, 0);
    assert.equal(all.split.entries.length, 18);
    assert.equal(all.bundle.manifest.temperature, 0.8);
    assert.ok(!existsSync(join(dir, 'all', 'evaluation.json')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
