/**
 * train(dataDir, { callbacks }): the caller's callbacks get the same events as the built-in ones
 * (after them) and can stop training. First on toy features through fitOnFeatures (fast, no data),
 * then through the whole train() on a few real photos.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getBackbone } from '../src/backbones/registry.js';
import { env } from '../src/env.js';
import type { Callback, EpochLogs, TrainerControl } from '../src/train/callback.js';
import { fitOnFeatures, train, trainOptions, type TrunkFeatures } from '../src/train/train.js';
import { createRng } from '../src/util/rng.js';
import { withEnv } from './helpers/env.js';
import { DATA, MOBILENET, NO_DATA } from './helpers/paths.js';

/** Records every event; sets stopTraining at the end of epoch `stopAt`. */
class Recorder implements Callback {
  events: string[] = [];
  logs: EpochLogs[] = [];
  lrAtBegin: number[] = [];
  constructor(private readonly stopAt: number) {}
  onTrainBegin(): void {
    this.events.push('trainBegin');
  }
  onEpochBegin(epoch: number, ctl: TrainerControl): void {
    this.events.push(`epochBegin ${epoch}`);
    this.lrAtBegin.push(ctl.lr);
  }
  onEpochEnd(logs: EpochLogs, ctl: TrainerControl): void {
    this.events.push(`epochEnd ${logs.epoch}`);
    this.logs.push(logs);
    if (logs.epoch === this.stopAt) ctl.stopTraining = true;
  }
  onTrainEnd(): void {
    this.events.push('trainEnd');
  }
}

const CLASSES = ['back', 'front', 'none'];
const DIM = 12;

test('fitOnFeatures: a user callback sees every epoch with its logs, after the LR schedule, and stops training', async () => {
  const rng = createRng(3);
  const centre = CLASSES.map(() => Array.from({ length: DIM }, () => rng.uniform(-1.5, 1.5)));
  const sample = (y: number): Float32Array => Float32Array.from(centre[y]!, (c) => c + rng.uniform(-1, 1));
  const trainLabels = CLASSES.flatMap((_, y) => Array<number>(12).fill(y));
  const valLabels = CLASSES.flatMap((_, y) => Array<number>(3).fill(y));
  // A pooled trunk (topBlocks 0): the model is the head alone, on DIM-wide features.
  const trunk = { backbone: { graph: { nodes: [], input: 'cut', output: 'cut' } }, cutShape: [1, 1, DIM], featureShape: [DIM] } as unknown as TrunkFeatures;
  const recorder = new Recorder(2);
  const opts = trainOptions({ backbone: 'mobilenet_v2', epochs: 6, batchSize: 8, lr: 1e-2, scheduler: 'cosine', callbacks: [recorder] });
  const fitted = await fitOnFeatures(
    {
      model: { spec: getBackbone('mobilenet_v2'), topBlocks: 0, cut: 'cut', headUnits: [16, 8] },
      trunk,
      classes: CLASSES,
      train: trainLabels.map((y) => [sample(y)]),
      trainLabels,
      val: valLabels.map(sample),
      valLabels,
      callbacks: [],
      rng: createRng(42),
    },
    opts,
  );
  try {
    assert.deepEqual(recorder.events, ['trainBegin', 'epochBegin 1', 'epochEnd 1', 'epochBegin 2', 'epochEnd 2', 'trainEnd']);
    assert.equal(fitted.epochsRun, 2, 'stopped after the epoch the callback asked');
    assert.deepEqual(recorder.logs, fitted.history, 'the logs the callback got are the history');
    for (const l of recorder.logs) {
      assert.ok(Number.isFinite(l.trainLoss) && Number.isFinite(l.valLoss) && l.valAccuracy >= 0 && l.valAccuracy <= 1);
    }
    // CosineAnnealing sets each epoch's lr in onEpochBegin; the user callback runs after it.
    assert.deepEqual(recorder.lrAtBegin, recorder.logs.map((l) => l.lr));
    assert.equal(recorder.lrAtBegin[0], 1e-2);
    assert.ok(recorder.lrAtBegin[1]! < 1e-2);
  } finally {
    fitted.classifier.dispose();
  }
});

test('train(): user callbacks get the events beside the built-in ones; a stop ends the run, which is written as usual', { skip: NO_DATA, timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-callbacks-'));
  try {
    const recorder = new Recorder(2);
    const out = join(dir, 'run');
    const r = await withEnv({ cacheDir: join(dir, 'cache'), weightsDir: { ...env.weightsDir, 'mobilenet_v2_0.35': MOBILENET } }, () =>
      train(DATA, { backbone: 'mobilenet_v2', out, limitPerClass: 5, topBlocks: 0, epochs: 8, patience: 8, batchSize: 4, verbose: false, callbacks: [recorder] }),
    );
    assert.deepEqual(recorder.events, ['trainBegin', 'epochBegin 1', 'epochEnd 1', 'epochBegin 2', 'epochEnd 2', 'trainEnd']);
    assert.equal(r.history.length, 2);
    assert.deepEqual(recorder.logs, r.history);
    // The built-in JsonlLogger saw the same epochs; config.json records options, not callbacks.
    const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    assert.deepEqual(lines.map((l) => (JSON.parse(l) as EpochLogs).epoch), [1, 2]);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config['callbacks'], undefined);
    assert.equal(config['epochs'], 8);
    assert.ok(r.evaluation && r.evaluation.total === 3, 'one validation image per class (5 images, 20%)');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
