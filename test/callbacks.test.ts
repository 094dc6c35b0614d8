import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Callback, EpochLogs, TrainerControl } from '../src/train/callback.js';
import {
  CosineAnnealing,
  EarlyStopping,
  JsonlLogger,
  ProgressCallback,
  ReduceLROnPlateau,
  formatEpochSummary,
} from '../src/train/callbacks.js';

/** A trainer stand-in whose "weights" are the number of the epoch that produced them. */
class FakeControl implements TrainerControl {
  lr: number;
  stopTraining = false;
  weights = 0;
  snapshot: number | null = null;
  snapshots: number[] = [];
  restores = 0;
  constructor(
    readonly epochs: number,
    lr = 0.1,
  ) {
    this.lr = lr;
  }
  snapshotWeights(): void {
    this.snapshot = this.weights;
    this.snapshots.push(this.weights);
  }
  restoreSnapshot(): void {
    this.restores++;
    if (this.snapshot !== null) this.weights = this.snapshot;
  }
}

type Partial = Pick<EpochLogs, 'valLoss'> & Partial2;
type Partial2 = { valAccuracy?: number; valMacroF1?: number };

/**
 * Drives callbacks the way the trainer does: one epoch per entry of `seq` (or until stopped).
 * Returns the control and the lr used in each epoch that ran.
 */
async function run(
  callbacks: Callback[],
  seq: readonly Partial[],
  ctl = new FakeControl(seq.length),
): Promise<{ ctl: FakeControl; lrs: number[]; ran: number }> {
  const lrs: number[] = [];
  for (const cb of callbacks) await cb.onTrainBegin?.(ctl);
  let ran = 0;
  for (let epoch = 1; epoch <= Math.min(ctl.epochs, seq.length); epoch++) {
    for (const cb of callbacks) await cb.onEpochBegin?.(epoch, ctl);
    ctl.weights = epoch;
    lrs.push(ctl.lr);
    const s = seq[epoch - 1]!;
    const logs: EpochLogs = {
      epoch,
      trainLoss: s.valLoss,
      trainAccuracy: 0.5,
      valLoss: s.valLoss,
      valAccuracy: s.valAccuracy ?? 0,
      valMacroF1: s.valMacroF1 ?? 0,
      lr: ctl.lr,
      seconds: 1,
    };
    for (const cb of callbacks) await cb.onEpochEnd?.(logs, ctl);
    ran = epoch;
    if (ctl.stopTraining) break;
  }
  for (const cb of callbacks) await cb.onTrainEnd?.(ctl);
  return { ctl, lrs, ran };
}

const losses = (...v: number[]): Partial[] => v.map((valLoss) => ({ valLoss }));

test('EarlyStopping stops after `patience` epochs without improvement and restores the best', async () => {
  const es = new EarlyStopping({ patience: 2 });
  const { ctl, ran } = await run([es], losses(1.0, 0.8, 0.6, 0.7, 0.65, 0.5, 0.4));
  assert.equal(ran, 5); // epochs 4 and 5 did not beat 0.6
  assert.equal(es.stoppedEpoch, 5);
  assert.equal(es.bestEpoch, 3);
  assert.equal(es.bestValue, 0.6);
  assert.deepEqual(ctl.snapshots, [1, 2, 3]); // a snapshot at each improvement
  assert.equal(ctl.restores, 1);
  assert.equal(ctl.weights, 3); // the best epoch's weights are back
});

test('EarlyStopping respects minDelta', async () => {
  // 0.95 and 0.92 improve on 1.0 by less than 0.1: they do not count.
  const es = new EarlyStopping({ patience: 2, minDelta: 0.1 });
  const { ran } = await run([es], losses(1.0, 0.95, 0.92, 0.5));
  assert.equal(ran, 3);
  assert.equal(es.bestEpoch, 1);
  assert.equal(es.bestValue, 1.0);
  // Without minDelta the same sequence keeps improving.
  const es0 = new EarlyStopping({ patience: 2 });
  const r0 = await run([es0], losses(1.0, 0.95, 0.92, 0.5));
  assert.equal(r0.ran, 4);
  assert.equal(es0.stoppedEpoch, 0);
  assert.equal(es0.bestEpoch, 4);
  assert.equal(r0.ctl.restores, 0); // last epoch is the best: nothing to restore
});

test('EarlyStopping maximises accuracy and macro-F1 monitors', async () => {
  const seq = [0.5, 0.7, 0.9, 0.6, 0.8].map((v) => ({ valLoss: 1, valAccuracy: v, valMacroF1: v }));
  for (const monitor of ['valAccuracy', 'valMacroF1'] as const) {
    const es = new EarlyStopping({ monitor, patience: 2 });
    const { ctl, ran } = await run([es], seq);
    assert.equal(ran, 5, monitor);
    assert.equal(es.bestEpoch, 3, monitor);
    assert.equal(es.bestValue, 0.9, monitor);
    assert.equal(ctl.weights, 3, monitor);
  }
  // The same numbers as a loss would make epoch 1 the best.
  const esLoss = new EarlyStopping({ patience: 2 });
  await run([esLoss], losses(0.5, 0.7, 0.9, 0.6, 0.8));
  assert.equal(esLoss.bestEpoch, 1);
  assert.equal(esLoss.stoppedEpoch, 3);
});

test('EarlyStopping without restoreBestWeights never snapshots; NaN never improves', async () => {
  const es = new EarlyStopping({ patience: 1, restoreBestWeights: false });
  const { ctl, ran } = await run([es], losses(1.0, Number.NaN, 0.1));
  assert.equal(ran, 2);
  assert.deepEqual(ctl.snapshots, []);
  assert.equal(ctl.restores, 0);
  assert.equal(ctl.weights, 2);
  // State resets between runs.
  const second = await run([es], losses(3, 2, 1));
  assert.equal(second.ran, 3);
  assert.equal(es.bestEpoch, 3);
  assert.equal(es.stoppedEpoch, 0);
});

test('ReduceLROnPlateau halves the lr after `patience` flat epochs, down to minLr', async () => {
  const rl = new ReduceLROnPlateau({ patience: 2 });
  const ctl = new FakeControl(9, 0.1);
  // Improves to 0.5, then plateaus (changes smaller than minDelta = 1e-4 don't count).
  const { lrs } = await run([rl], losses(1.0, 0.7, 0.5, 0.5, 0.49995, 0.5, 0.5, 0.4, 0.6), ctl);
  // Epoch 5's 0.49995 is within minDelta: epochs 4 and 5 are flat -> reduce after 5;
  // epochs 6 and 7 flat again -> reduce after 7; epoch 8 improves; 9 is one flat epoch.
  assert.deepEqual(lrs, [0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025]);
  assert.deepEqual(rl.reductions, [
    { epoch: 5, from: 0.1, to: 0.05 },
    { epoch: 7, from: 0.05, to: 0.025 },
  ]);
  assert.equal(ctl.lr, 0.025);

  const floor = new ReduceLROnPlateau({ patience: 1, factor: 0.1, minLr: 0.004 });
  const r2 = await run([floor], losses(1, 1, 1, 1, 1), new FakeControl(5, 0.5));
  const wantFloor = [0.5, 0.5, 0.05, 0.005, 0.004];
  r2.lrs.forEach((lr, i) => assert.ok(Math.abs(lr - wantFloor[i]!) < 1e-12, `epoch ${i + 1}: ${lr}`));
  assert.equal(r2.ctl.lr, 0.004); // stays at minLr
  assert.equal(floor.reductions.length, 3);
});

test('ReduceLROnPlateau cooldown and maximised monitors', async () => {
  const rl = new ReduceLROnPlateau({ patience: 1, cooldown: 2 });
  const { lrs } = await run([rl], losses(1, 1, 1, 1, 1, 1), new FakeControl(6, 0.8));
  // Reduce after epoch 2; epochs 3 and 4 are cooldown; epoch 5 flat -> reduce again.
  assert.deepEqual(lrs, [0.8, 0.8, 0.4, 0.4, 0.4, 0.2]);

  const acc = new ReduceLROnPlateau({ monitor: 'valAccuracy', patience: 1 });
  const seq = [0.5, 0.6, 0.55, 0.7].map((v) => ({ valLoss: 9, valAccuracy: v }));
  const r = await run([acc], seq, new FakeControl(4, 1));
  // Rising accuracy is improvement; the dip at epoch 3 triggers a reduction.
  assert.deepEqual(r.lrs, [1, 1, 1, 0.5]);
  assert.throws(() => new ReduceLROnPlateau({ factor: 1 }), /factor must be in \(0, 1\)/);
});

test('CosineAnnealing sets the lr per epoch with optional warm-up', async () => {
  const cos = new CosineAnnealing({ baseLr: 1, minLr: 0 });
  const { lrs } = await run([cos], losses(1, 1, 1, 1), new FakeControl(4));
  // t / T = 0, 1/4, 2/4, 3/4 -> (1 + cos(pi t/T)) / 2 = 1, 0.8535534, 0.5, 0.1464466
  const want = [1, 0.8535534, 0.5, 0.1464466];
  lrs.forEach((lr, i) => assert.ok(Math.abs(lr - want[i]!) < 1e-7, `epoch ${i + 1}: ${lr}`));

  const warm = new CosineAnnealing({ baseLr: 0.4, minLr: 0.1, warmupEpochs: 2 });
  // Warm-up 0.2, 0.4; then T = 4: 0.1 + 0.3 * [1, 0.8535534, 0.5, 0.1464466]
  const wantWarm = [0.2, 0.4, 0.4, 0.3560660, 0.25, 0.1439340];
  wantWarm.forEach((v, i) => assert.ok(Math.abs(warm.lrAt(i + 1, 6) - v) < 1e-7, `warm epoch ${i + 1}`));
  const r = await run([warm], losses(1, 1, 1, 1, 1, 1), new FakeControl(6));
  assert.ok(r.lrs.every((lr, i) => Math.abs(lr - wantWarm[i]!) < 1e-7));
  // One epoch only: baseLr.
  assert.equal(new CosineAnnealing({ baseLr: 0.3 }).lrAt(1, 1), 0.3);
  assert.throws(() => new CosineAnnealing({ baseLr: 0.1, minLr: 0.2 }), /minLr must be in/);
});

test('JsonlLogger appends one JSON object per epoch with the EpochLogs fields', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-jsonl-'));
  try {
    const path = join(dir, 'sub', 'log.jsonl');
    await run([new JsonlLogger(path)], losses(0.9, Number.NaN));
    await run([new JsonlLogger(path)], losses(0.5)); // a second run appends
    const lines = (await readFile(path, 'utf8')).split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 3);
    assert.equal(
      lines[0],
      '{"epoch":1,"trainLoss":0.9,"trainAccuracy":0.5,"valLoss":0.9,"valAccuracy":0,"valMacroF1":0,"lr":0.1,"seconds":1}',
    );
    const second = JSON.parse(lines[1]!) as Record<string, unknown>;
    assert.equal(second.valLoss, null); // NaN is written as null
    assert.equal(second.epoch, 2);
    assert.equal((JSON.parse(lines[2]!) as { epoch: number }).epoch, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ProgressCallback: a bar over batches and a summary line per epoch', async () => {
  const chunks: string[] = [];
  const stream = { isTTY: false, write: (c: string) => void chunks.push(c) };
  let t = 0;
  const cb = new ProgressCallback(stream, { now: () => t });
  const ctl = new FakeControl(2, 0.001);
  for (let epoch = 1; epoch <= 2; epoch++) {
    cb.onEpochBegin(epoch);
    for (let batch = 1; batch <= 4; batch++) {
      t += 500;
      cb.onBatchEnd({ batch, batches: 4, loss: 1 / batch }, ctl);
    }
    const logs: EpochLogs = {
      epoch,
      trainLoss: 0.41234,
      trainAccuracy: 0.9,
      valLoss: 0.3,
      valAccuracy: 0.93333,
      valMacroF1: 0.9301,
      lr: 0.001,
      seconds: 65,
    };
    cb.onEpochEnd(logs, ctl);
  }
  const lines = chunks.join('').trimEnd().split('\n');
  assert.deepEqual(lines.slice(0, 5), [
    'epoch 1/2 1/4 (25%) 2.0 batch/s ETA 2s loss 1.0000',
    'epoch 1/2 2/4 (50%) 2.0 batch/s ETA 1s loss 0.5000',
    'epoch 1/2 3/4 (75%) 2.0 batch/s ETA 1s loss 0.3333',
    'epoch 1/2 4/4 (100%) 2.0 batch/s in 2s loss 0.2500',
    'epoch 1/2 loss 0.4123 acc 0.900 | val loss 0.3000 acc 0.933 f1 0.930 | lr 1.00e-3 | 1m05s',
  ]);
  assert.equal(lines.length, 10);
  assert.match(lines[5]!, /^epoch 2\/2 1\/4 \(25%\)/);
  assert.equal(lines[9], formatEpochSummary({ epoch: 2, trainLoss: 0.41234, trainAccuracy: 0.9, valLoss: 0.3, valAccuracy: 0.93333, valMacroF1: 0.9301, lr: 0.001, seconds: 65 }, 2));
});
