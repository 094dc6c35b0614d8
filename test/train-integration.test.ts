/**
 * Real-data integration test (slow: ~2-4 min on 2 cores): trains both backbones for a few epochs
 * on a small subset of ../shared/datasets/phones through the CLI, then evaluates the saved run
 * through the deployed path (whole classifier as one ONNX graph).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';
import { withEnv } from './helpers/env.js';
import { DATA, haveData, MOBILENET } from './helpers/paths.js';
import { SLOW } from './helpers/slow.js';

for (const backbone of ['mobilenet_v2', 'resnet50'] as const) {
  test(`train + evaluate ${backbone} on a subset of the real data (slow)`, { skip: (!haveData && 'no ../shared data') || SLOW, timeout: 600_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), `phoneside-it-${backbone}-`));
    try {
      // --cache-dir sets env.cacheDir for the whole process; withEnv puts it back.
      await withEnv({ cacheDir: join(dir, 'cache') }, async () => {
        const out = join(dir, 'run');
        const args = [
          'train', DATA, '--backbone', backbone, '--out', out, '--cache-dir', join(dir, 'cache'),
          '--limit-per-class', '30', '--views', '2', '--epochs', '6', '--batch-size', '16', '--quiet',
          ...(backbone === 'mobilenet_v2' ? ['--weights', MOBILENET] : []),
        ];
        const trained = await runCli(args);
        assert.equal(trained.code, 0, trained.err);
        for (const f of ['model/manifest.json', 'model/weights.bin', 'config.json', 'split.json', 'metrics.jsonl', 'evaluation.json', 'evaluation.txt', 'data-report.json', 'report.html']) {
          assert.ok(existsSync(join(out, f)), `run folder lacks ${f}`);
        }
        const epochs = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { trainLoss: number });
        assert.ok(epochs.length >= 2, 'at least two epochs logged');
        assert.ok(epochs[epochs.length - 1]!.trainLoss < epochs[0]!.trainLoss, 'training loss went down');

        const evaluated = await runCli(['evaluate', out, DATA, '--subset', 'val', '--json', '--html', join(dir, 'eval.html'), ...(backbone === 'mobilenet_v2' ? ['--weights', MOBILENET] : [])]);
        assert.equal(evaluated.code, 0, evaluated.err);
        const full = JSON.parse(evaluated.out) as { schema: string; metrics: { accuracy: number; total: number; macroAvg: { f1: number } }; training: { epochs: unknown[] } };
        assert.equal(full.schema, 'phoneside.evaluation-report/1');
        assert.equal(full.training.epochs.length, epochs.length, 'the report carries the run history');
        const report = full.metrics;
        const recorded = JSON.parse(await readFile(join(out, 'evaluation.json'), 'utf8')) as { accuracy: number; total: number };
        assert.equal(report.total, 18, '6 validation images per class');
        // Chance is 1/3; a model that learned anything from 24 images per class is far above it.
        assert.ok(report.accuracy >= 0.7, `accuracy ${report.accuracy} is not well above chance`);
        assert.ok(report.macroAvg.f1 >= 0.65, `macro F1 ${report.macroAvg.f1}`);
        // The exported ONNX classifier and the training-time evaluation agree.
        assert.equal(report.accuracy, recorded.accuracy);
        // Both HTML reports (train's and evaluate's) show the same confusion matrix.
        const cells = (html: string): string[] => [...html.matchAll(/data-count="(\d+)"/g)].map((m) => m[1]!);
        const trainHtml = await readFile(join(out, 'report.html'), 'utf8');
        const evalHtml = await readFile(join(dir, 'eval.html'), 'utf8');
        assert.equal(cells(trainHtml).length, 9);
        assert.deepEqual(cells(evalHtml), cells(trainHtml));
        assert.match(evalHtml, /<section id="training"><h2>Training curves<\/h2><div class="row"><svg/);
        // Each validation mistake in either gallery has its heat map, made by the model written.
        for (const html of [trainHtml, evalHtml]) {
          const shown = (html.match(/<figure class="mistake"/g) ?? []).length;
          assert.equal((html.match(/<img class="heatmap" src="data:image\/jpeg;base64,/g) ?? []).length, shown);
          if (shown > 0) assert.match(html, /heat map: evidence for \w+ \(grad-cam\)/);
        }
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
