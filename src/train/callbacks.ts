/**
 * Stock training callbacks (Keras semantics where Keras has an equivalent): early stopping,
 * LR reduction on plateau, cosine annealing with warm-up, a JSONL epoch log and a progress bar.
 * Epoch numbers are 1-based, as in EpochLogs.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { BatchLogs, Callback, EpochLogs, TrainerControl } from './callback.js';
import { ProgressBar, formatDuration, type ProgressStream } from '../util/progress.js';

/** EpochLogs figures a callback can watch; loss is minimised, the others maximised. */
export type Monitor = 'valLoss' | 'valAccuracy' | 'valMacroF1';

export function monitorMode(monitor: Monitor): 'min' | 'max' {
  return monitor === 'valLoss' ? 'min' : 'max';
}

/** Tracks the best value of a monitored figure; `minDelta` is the smallest change that counts. */
class BestTracker {
  readonly mode: 'min' | 'max';
  best: number;

  constructor(
    readonly monitor: Monitor,
    private readonly minDelta: number,
  ) {
    if (!(minDelta >= 0)) throw new Error(`minDelta must be >= 0, got ${minDelta}`);
    this.mode = monitorMode(monitor);
    this.best = this.mode === 'min' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
  }

  reset(): void {
    this.best = this.mode === 'min' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
  }

  /** True (and records it) when `value` beats the best by more than minDelta. NaN never does. */
  improve(value: number): boolean {
    const better =
      this.mode === 'min' ? value < this.best - this.minDelta : value > this.best + this.minDelta;
    if (better) this.best = value;
    return better;
  }
}

function checkCount(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer, got ${v}`);
}

export interface EarlyStoppingOptions {
  monitor?: Monitor; // default 'valLoss'
  /** Epochs without improvement before stopping. Default 5. */
  patience?: number;
  /** Smallest change that counts as an improvement. Default 0. */
  minDelta?: number;
  /** Snapshot weights at each improvement and put the best back at train end. Default true. */
  restoreBestWeights?: boolean;
}

export class EarlyStopping implements Callback {
  readonly monitor: Monitor;
  readonly patience: number;
  readonly restoreBestWeights: boolean;
  /** Epoch of the best value so far; 0 before any. */
  bestEpoch = 0;
  /** Epoch at which training was told to stop; 0 if it never was. */
  stoppedEpoch = 0;
  private readonly tracker: BestTracker;
  private wait = 0;
  private lastEpoch = 0;

  constructor(opts: EarlyStoppingOptions = {}) {
    this.monitor = opts.monitor ?? 'valLoss';
    this.patience = opts.patience ?? 5;
    checkCount('patience', this.patience);
    this.restoreBestWeights = opts.restoreBestWeights ?? true;
    this.tracker = new BestTracker(this.monitor, opts.minDelta ?? 0);
  }

  /** Best monitored value so far (±Infinity before the first epoch). */
  get bestValue(): number {
    return this.tracker.best;
  }

  onTrainBegin(): void {
    this.tracker.reset();
    this.wait = 0;
    this.bestEpoch = 0;
    this.stoppedEpoch = 0;
    this.lastEpoch = 0;
  }

  onEpochEnd(logs: EpochLogs, ctl: TrainerControl): void {
    this.lastEpoch = logs.epoch;
    if (this.tracker.improve(logs[this.monitor])) {
      this.bestEpoch = logs.epoch;
      this.wait = 0;
      if (this.restoreBestWeights) ctl.snapshotWeights();
      return;
    }
    this.wait++;
    if (this.wait >= this.patience) {
      this.stoppedEpoch = logs.epoch;
      ctl.stopTraining = true;
    }
  }

  onTrainEnd(ctl: TrainerControl): void {
    // Only the trainer's single snapshot slot is used, so no other callback should snapshot.
    if (this.restoreBestWeights && this.bestEpoch > 0 && this.lastEpoch !== this.bestEpoch) {
      ctl.restoreSnapshot();
    }
  }
}

export interface ReduceLROnPlateauOptions {
  monitor?: Monitor; // default 'valLoss'
  /** New lr = lr * factor, in (0, 1). Default 0.5. */
  factor?: number;
  /** Epochs without improvement before reducing. Default 2. */
  patience?: number;
  minDelta?: number; // default 1e-4
  /** Epochs to wait after a reduction before counting again. Default 0. */
  cooldown?: number;
  minLr?: number; // default 1e-6
}

/** Multiplies ctl.lr by `factor` when the monitor stalls (Keras ReduceLROnPlateau logic). */
export class ReduceLROnPlateau implements Callback {
  readonly monitor: Monitor;
  readonly factor: number;
  readonly patience: number;
  readonly cooldown: number;
  readonly minLr: number;
  /** Every reduction made, for logs and tests. */
  readonly reductions: { epoch: number; from: number; to: number }[] = [];
  private readonly tracker: BestTracker;
  private wait = 0;
  private cooldownCounter = 0;

  constructor(opts: ReduceLROnPlateauOptions = {}) {
    this.monitor = opts.monitor ?? 'valLoss';
    this.factor = opts.factor ?? 0.5;
    if (!(this.factor > 0 && this.factor < 1)) throw new Error(`factor must be in (0, 1), got ${this.factor}`);
    this.patience = opts.patience ?? 2;
    checkCount('patience', this.patience);
    this.cooldown = opts.cooldown ?? 0;
    checkCount('cooldown', this.cooldown);
    this.minLr = opts.minLr ?? 1e-6;
    if (!(this.minLr >= 0)) throw new Error(`minLr must be >= 0, got ${this.minLr}`);
    this.tracker = new BestTracker(this.monitor, opts.minDelta ?? 1e-4);
  }

  onTrainBegin(): void {
    this.tracker.reset();
    this.wait = 0;
    this.cooldownCounter = 0;
    this.reductions.length = 0;
  }

  onEpochEnd(logs: EpochLogs, ctl: TrainerControl): void {
    const inCooldown = this.cooldownCounter > 0;
    if (inCooldown) {
      this.cooldownCounter--;
      this.wait = 0;
    }
    if (this.tracker.improve(logs[this.monitor])) {
      this.wait = 0;
      return;
    }
    if (inCooldown) return;
    this.wait++;
    if (this.wait >= this.patience && ctl.lr > this.minLr) {
      const to = Math.max(ctl.lr * this.factor, this.minLr);
      this.reductions.push({ epoch: logs.epoch, from: ctl.lr, to });
      ctl.lr = to;
      this.cooldownCounter = this.cooldown;
      this.wait = 0;
    }
  }
}

export interface CosineAnnealingOptions {
  baseLr: number;
  minLr?: number; // default 0
  /** Epochs of linear warm-up from baseLr / warmupEpochs up to baseLr. Default 0. */
  warmupEpochs?: number;
}

/**
 * Per-epoch cosine schedule: linear warm-up, then lr = minLr + (baseLr - minLr)(1 + cos(pi t/T))/2
 * with t = 0 at the first post-warm-up epoch and T the post-warm-up epoch count, so the first
 * gets baseLr and the last still trains (lr just above minLr). Don't combine with
 * ReduceLROnPlateau: both write ctl.lr.
 */
export class CosineAnnealing implements Callback {
  readonly baseLr: number;
  readonly minLr: number;
  readonly warmupEpochs: number;

  constructor(opts: CosineAnnealingOptions) {
    this.baseLr = opts.baseLr;
    this.minLr = opts.minLr ?? 0;
    this.warmupEpochs = opts.warmupEpochs ?? 0;
    if (!(this.baseLr > 0)) throw new Error(`baseLr must be > 0, got ${this.baseLr}`);
    if (!(this.minLr >= 0 && this.minLr <= this.baseLr)) {
      throw new Error(`minLr must be in [0, baseLr], got ${this.minLr}`);
    }
    checkCount('warmupEpochs', this.warmupEpochs);
  }

  /** Learning rate for 1-based `epoch` out of `epochs`. */
  lrAt(epoch: number, epochs: number): number {
    if (!Number.isInteger(epoch) || epoch < 1) throw new Error(`epoch must be a 1-based integer, got ${epoch}`);
    if (epoch <= this.warmupEpochs) return (this.baseLr * epoch) / this.warmupEpochs;
    const t = epoch - this.warmupEpochs - 1;
    const span = Math.max(1, epochs - this.warmupEpochs);
    const progress = Math.min(t / span, 1);
    return this.minLr + ((this.baseLr - this.minLr) * (1 + Math.cos(Math.PI * progress))) / 2;
  }

  onEpochBegin(epoch: number, ctl: TrainerControl): void {
    ctl.lr = this.lrAt(epoch, ctl.epochs);
  }
}

/** Key order of each JSONL record (the EpochLogs fields). Non-finite numbers become null. */
export const JSONL_FIELDS = [
  'epoch',
  'trainLoss',
  'trainAccuracy',
  'valLoss',
  'valAccuracy',
  'valMacroF1',
  'lr',
  'seconds',
] as const satisfies readonly (keyof EpochLogs)[];

/** Appends one JSON object per epoch to `path` (created with its directory if missing). */
export class JsonlLogger implements Callback {
  constructor(readonly path: string) {}

  async onTrainBegin(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
  }

  async onEpochEnd(logs: EpochLogs): Promise<void> {
    const record: Record<string, number> = {};
    for (const k of JSONL_FIELDS) record[k] = logs[k];
    await appendFile(this.path, JSON.stringify(record) + '\n', 'utf8');
  }
}

export interface ProgressCallbackOptions {
  /** Clock in milliseconds, for tests. */
  now?: () => number;
  /** Force TTY or plain output instead of asking the stream. */
  tty?: boolean;
}

const fmt = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

/** One-line summary of an epoch, e.g. "epoch 3/20 loss 0.4123 acc 0.912 | val loss ... | 12s". */
export function formatEpochSummary(logs: EpochLogs, epochs: number): string {
  return (
    `epoch ${logs.epoch}/${epochs} loss ${fmt(logs.trainLoss, 4)} acc ${fmt(logs.trainAccuracy, 3)}` +
    ` | val loss ${fmt(logs.valLoss, 4)} acc ${fmt(logs.valAccuracy, 3)} f1 ${fmt(logs.valMacroF1, 3)}` +
    ` | lr ${logs.lr.toExponential(2)} | ${formatDuration(logs.seconds)}`
  );
}

/** A progress bar over each epoch's batches, then a one-line epoch summary. */
export class ProgressCallback implements Callback {
  private bar: ProgressBar | null = null;
  private epoch = 0;
  private epochStart = 0;
  private readonly now: () => number;

  constructor(
    private readonly stream: ProgressStream = process.stderr,
    private readonly opts: ProgressCallbackOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  onEpochBegin(epoch: number): void {
    this.epoch = epoch;
    this.epochStart = this.now();
    this.bar = null; // created at the first batch, when the batch count is known
  }

  onBatchEnd(logs: BatchLogs, ctl: TrainerControl): void {
    if (!this.bar) {
      this.bar = new ProgressBar({
        total: logs.batches,
        label: `epoch ${this.epoch}/${ctl.epochs}`,
        stream: this.stream,
        unit: 'batch',
        now: this.now,
        startedAt: this.epochStart, // rate and ETA include the first batch
        ...(this.opts.tty !== undefined ? { tty: this.opts.tty } : {}),
      });
    }
    this.bar.update(logs.batch, `loss ${fmt(logs.loss, 4)}`);
  }

  onEpochEnd(logs: EpochLogs, ctl: TrainerControl): void {
    this.bar?.done();
    this.bar = null;
    this.stream.write(formatEpochSummary(logs, ctl.epochs) + '\n');
  }
}
