/**
 * fastai/Keras-style training callbacks: the trainer calls these hooks; schedulers, early stopping,
 * logging and progress are callbacks rather than flags threaded through the loop.
 */

/** Figures for one finished epoch. Losses are means over the epoch's samples. */
export interface EpochLogs {
  epoch: number; // 1-based
  trainLoss: number;
  trainAccuracy: number;
  valLoss: number;
  valAccuracy: number;
  valMacroF1: number;
  lr: number; // learning rate used during this epoch
  seconds: number;
}

export interface BatchLogs {
  batch: number; // 1-based within the epoch
  batches: number; // batches in this epoch
  loss: number;
}

/** What a callback may read and change on the running trainer. */
export interface TrainerControl {
  readonly epochs: number; // the maximum number of epochs
  /** Learning rate for the next optimiser step; callbacks may set it. */
  lr: number;
  /** Set to true to stop after the current epoch. */
  stopTraining: boolean;
  /** Remember the current trainable weights as the best so far. */
  snapshotWeights(): void;
  /** Put back the weights remembered by the last snapshotWeights(); no-op if none. */
  restoreSnapshot(): void;
}

export interface Callback {
  onTrainBegin?(ctl: TrainerControl): void | Promise<void>;
  onEpochBegin?(epoch: number, ctl: TrainerControl): void | Promise<void>;
  onBatchEnd?(logs: BatchLogs, ctl: TrainerControl): void | Promise<void>;
  onEpochEnd?(logs: EpochLogs, ctl: TrainerControl): void | Promise<void>;
  onTrainEnd?(ctl: TrainerControl): void | Promise<void>;
}
