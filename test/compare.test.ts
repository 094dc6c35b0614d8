/**
 * `phoneside compare` and `evaluate --html` on real images with two small fixture bundles (real
 * MobileNetV2 trunk, random heads): JSON schema, HTML page, and the refusals.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cmdCompare } from '../src/cli/compare.js';
import type { ComparisonReport } from '../src/eval/compare.js';
import { fakeIO, runCli } from './helpers/cli.js';
import { withEnv } from './helpers/env.js';
import { CLASSES, makeBundle } from './helpers/infer-fixture.js';
import { DATA, haveData, MOBILENET } from './helpers/paths.js';

test('compare two models on the same images: JSON, table and HTML', { skip: !haveData && 'no ../shared data', timeout: 180_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'phoneside-compare-'));
  try {
    await withEnv({ cacheDir: join(root, 'cache') }, async () => {
      const data = join(root, 'data');
      for (const c of CLASSES) {
        await mkdir(join(data, c), { recursive: true });
        for (const f of readdirSync(join(DATA, c)).filter((f) => f.endsWith('.jpg')).slice(0, 3)) await copyFile(join(DATA, c, f), join(data, c, f));
      }
      const a = await makeBundle(join(root, 'a'), { seed: 1 });
      const b = await makeBundle(join(root, 'b'), { seed: 2, temperature: 0.5 });
      const html = join(root, 'compare.html');
      const cap = fakeIO();
      const code = await cmdCompare([a, b, '--data', data, '--json', '--html', html, '--weights', MOBILENET, '--latency-runs', '3', '--threads', '1'], cap.io);
      assert.equal(code, 0, cap.err());
      const r = JSON.parse(cap.out()) as ComparisonReport;
      assert.equal(r.schema, 'phoneside.comparison/1');
      assert.equal(r.data.images, 9);
      assert.deepEqual(r.classes, CLASSES);
      assert.equal(r.models.length, 2);
      assert.equal(r.reports, undefined, 'per-model reports stay out of --json');
      for (const m of r.models) {
        assert.ok(m.accuracy >= 0 && m.accuracy <= 1);
        assert.equal(Object.keys(m.perClassF1).length, 3);
        assert.ok(m.parameters.total! > m.parameters.trained!, 'the trunk adds parameters');
        assert.ok(m.parameters.total! > 300_000, `a MobileNetV2 trunk has hundreds of thousands of weights, got ${m.parameters.total}`);
        assert.ok(m.sizeBytes.onnx! > m.sizeBytes.bundle!);
        assert.ok(m.latency.singleImageMsP50 > 0 && m.latency.singleImageMsP90 >= m.latency.singleImageMsP50);
        assert.ok(m.latency.throughputImagesPerSecond > 0);
      }
      assert.equal(r.models[1]!.temperature, 0.5);
      const page = await readFile(html, 'utf8');
      assert.match(page, /id="comparison-table"/);
      assert.equal((page.match(/class="chart heatmap"/g) ?? []).length, 2);

      const table = fakeIO();
      assert.equal(await cmdCompare([a, b, '--data', data, '--weights', MOBILENET, '--latency-runs', '2'], table.io), 0);
      assert.match(table.out(), /^9 images of .* \(all images\); \* = best/);
      assert.match(table.out(), /\nmacro F1 +\d\.\d{4}/);

      // --subset val needs every model's split: bundles made outside a run have none.
      const refused = fakeIO();
      await assert.rejects(cmdCompare([a, '--data', data, '--subset', 'val', '--weights', MOBILENET], refused.io), /has no split\.json/);
      const usage = fakeIO();
      assert.equal(await cmdCompare([a], usage.io), 2);
      assert.match(usage.err(), /compare needs --data, the labelled images to compare on/);

      // evaluate --html on a bare bundle: the page says there is no training history.
      const out = join(root, 'eval.html');
      const ev = await runCli(['evaluate', a, data, '--html', out, '--weights', MOBILENET]);
      assert.equal(ev.code, 0, ev.err);
      assert.match(ev.out, /ECE \d\.\d{4} \(T = 1\.000/);
      assert.ok(existsSync(out));
      const evalPage = await readFile(out, 'utf8');
      assert.match(evalPage, /No training history/);
      // Each mistake shown in the gallery gets its heat map (a random head makes mistakes).
      const mistakes = (evalPage.match(/<figure class="mistake"/g) ?? []).length;
      assert.ok(mistakes > 0, 'the fixture model makes mistakes');
      assert.equal((evalPage.match(/<img class="heatmap" src="data:image\/jpeg;base64,/g) ?? []).length, mistakes);
      assert.match(evalPage, /heat map: evidence for \w+ \(grad-cam\)/);
      const plain = await runCli(['evaluate', a, data, '--html', out, '--no-heatmaps', '--weights', MOBILENET]);
      assert.equal(plain.code, 0, plain.err);
      assert.doesNotMatch(await readFile(out, 'utf8'), /class="heatmap"/);
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
