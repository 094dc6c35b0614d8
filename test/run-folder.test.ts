/** RunFolder: what train writes, the readers read back; a model/ folder finds its run. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classificationMetrics } from '../src/eval/metrics.js';
import { readRunArtifacts, RUN_FILES, RunFolder, type DataReport } from '../src/eval/run-folder.js';
import { splitManifest } from '../src/data/split.js';

test('RunFolder writes a run and reads it back; a folder without config.json is no run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-run-folder-'));
  try {
    const run = await RunFolder.create(join(dir, 'run'));
    assert.equal(await RunFolder.find(run.dir), undefined, 'no config.json yet');
    await run.writeConfig({ backbone: 'mobilenet_v2', epochs: 3 });
    const item = (relPath: string, label: string) => ({ sha256: relPath.padEnd(64, '0'), relPath, label, path: join(dir, relPath) });
    const manifest = splitManifest([item('a/1.jpg', 'a'), item('b/1.jpg', 'b')], [item('a/2.jpg', 'a')], { seed: 1, valFraction: 0.3 });
    await run.writeSplit(manifest);
    const metrics = classificationMetrics([0, 1, 1], [0, 1, 0], ['a', 'b']);
    const calibration = { temperature: 1.5, eceBefore: 0.2, eceAfter: 0.1 };
    await run.writeEvaluation(metrics, { bestEpoch: 2, calibration });
    const report: DataReport = { classes: ['a', 'b'], counts: { a: { train: 1, val: 1 }, b: { train: 1, val: 0 } }, skipped: [], duplicates: [], conflicts: [], nearDuplicatesAcrossSplit: [] };
    await run.writeDataReport(report, { totalSeconds: 1 });
    for (const epoch of [1, 2]) await appendFile(run.metricsFile, JSON.stringify({ epoch, trainLoss: 1 / epoch }) + '\n');

    const found = await RunFolder.find(join(run.dir, RUN_FILES.model));
    assert.equal(found?.dir, run.dir, 'the model/ folder inside a run finds the run');
    assert.deepEqual(await run.readConfig(), { backbone: 'mobilenet_v2', epochs: 3 });
    assert.deepEqual(await run.readSplit(), manifest);
    const ev = await run.readEvaluation();
    assert.equal(ev?.bestEpoch, 2);
    assert.deepEqual(ev?.calibration, calibration);
    assert.match(await readFile(run.path('evaluationText'), 'utf8'), /precision/);
    assert.deepEqual(await run.readDataReport(), { ...report, timings: { totalSeconds: 1 } });
    const artifacts = await readRunArtifacts(run.dir);
    assert.deepEqual(artifacts?.epochs.map((e) => e.epoch), [1, 2]);
    assert.equal(artifacts?.bestEpoch, 2);
    assert.equal(artifacts?.hasSplit, true);

    const bare = new RunFolder(join(dir, 'bare'));
    await mkdir(bare.dir);
    assert.equal(await readRunArtifacts(bare.dir), undefined);
    assert.deepEqual(await bare.readEpochs(), []);
    assert.equal(await bare.readSplit(), null);
    assert.equal(await bare.readDataReport(), null);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
