/** The options of `train` and `cv`: the training recipe (shared, same words) and each verb's own. */
import { ENV_OPTIONS, JSON_OPTION, THREADS_OPTION } from './common.js';
import { defineVerb, type OptionsInput, type ResolvedOptions } from './schema.js';

/** What shapes a trained model: `train` and `cv` take exactly these, so cv validates what train makes. */
export const RECIPE_OPTIONS = {
  backbone: { kind: 'string', group: 'Model', placeholder: 'NAME', default: 'resnet50', help: 'ImageNet backbone: resnet50 or mobilenet_v2 (see phoneside backbones)' },
  alpha: { kind: 'number', group: 'Model', min: 0, exclusiveMin: true, max: 1.4, defaultText: '0.35', help: 'MobileNetV2 width: 0.35, 0.50, 0.75 or 1.00' },
  topBlocks: {
    kind: 'integer',
    group: 'Model',
    min: 0,
    defaultText: 'per backbone, 0',
    help: 'backbone blocks fine-tuned, counted from the top (0 = head only: on sources a model never saw, the head alone on frozen features did best; docs/validation.md)',
  },
  headUnits: { kind: 'numbers', group: 'Model', length: 2, integer: true, min: 1, defaultText: 'per backbone', help: "widths of the head's two FC-BN-PReLU-Dropout layers" },
  dropout: { kind: 'number', group: 'Model', min: 0, max: 1, exclusiveMax: true, default: 0.5, help: 'head dropout' },
  seed: { kind: 'integer', group: 'Data', min: 0, default: 42, help: 'split, augmentation and initialisation seed' },
  views: {
    kind: 'integer',
    group: 'Data',
    min: 1,
    default: 1,
    help: 'trunk feature views cached per training image: 1 clean + N-1 augmented with --augment (1: augmented views lowered accuracy on unseen sources)',
  },
  augment: {
    kind: 'choice',
    group: 'Data',
    choices: ['default', 'strong', 'none'],
    placeholder: 'NAME',
    default: 'default',
    deprecated: [{ flag: 'no-augment', value: 'none' }],
    help: 'augmentation of the views after the first: default (rotation, flip, brightness/contrast, crop, hue/saturation), strong (adds perspective, grayscale, blur, JPEG re-encoding, cut-out, 90° turns) or none',
  },
  limitPerClass: { kind: 'integer', group: 'Data', min: 1, help: 'use at most N images per class (quick experiments)' },
  epochs: { kind: 'integer', group: 'Optimisation', min: 1, default: 30, help: 'maximum epochs' },
  batchSize: { kind: 'integer', group: 'Optimisation', min: 2, default: 32, help: 'images per step' },
  lr: { kind: 'number', group: 'Optimisation', min: 0, exclusiveMin: true, default: 1e-3, help: 'learning rate of the head' },
  topLrScale: { kind: 'number', group: 'Optimisation', min: 0, default: 0.1, help: 'learning-rate multiplier for fine-tuned backbone blocks' },
  optimizer: { kind: 'choice', group: 'Optimisation', choices: ['adam', 'adamw'], default: 'adamw', help: 'optimiser' },
  weightDecay: { kind: 'number', group: 'Optimisation', min: 0, default: 1e-4, help: 'decoupled weight decay (adamw)' },
  loss: { kind: 'choice', group: 'Optimisation', choices: ['focal', 'ce'], default: 'focal', help: 'loss: focal or cross-entropy' },
  gamma: { kind: 'number', group: 'Optimisation', min: 0, default: 2, help: 'focal loss gamma' },
  classAlpha: { kind: 'numbers', group: 'Optimisation', min: 0, placeholder: 'A,B,C', help: 'per-class loss weight, in class order' },
  labelSmoothing: { kind: 'number', group: 'Optimisation', min: 0, max: 1, exclusiveMax: true, default: 0, help: 'smoothed targets (1-X) one-hot + X/classes, for focal and ce (0 = off)' },
  mixup: { kind: 'number', group: 'Optimisation', min: 0, default: 0, help: 'mix trunk features and labels per batch, lambda ~ Beta(A, A) (0 = off)' },
  balancedSampling: { kind: 'boolean', group: 'Optimisation', default: false, help: "draw each epoch's images inversely to class frequency (with replacement)" },
  ema: { kind: 'number', group: 'Optimisation', min: 0, max: 1, exclusiveMax: true, default: 0, placeholder: 'D', help: 'EMA of the weights with decay D (e.g. 0.99) for validation and the model (0 = off)' },
  scheduler: { kind: 'choice', group: 'Optimisation', choices: ['plateau', 'cosine', 'none'], default: 'plateau', help: 'learning-rate schedule' },
  lrPatience: { kind: 'integer', group: 'Optimisation', min: 0, default: 2, help: 'plateau: epochs without improvement before the learning rate drops' },
  lrFactor: { kind: 'number', group: 'Optimisation', min: 0, max: 1, exclusiveMin: true, exclusiveMax: true, default: 0.5, help: 'plateau: factor the learning rate drops by' },
  patience: { kind: 'integer', group: 'Optimisation', min: 1, default: 5, help: 'early stopping patience on validation loss (epochs)' },
  minDelta: { kind: 'number', group: 'Optimisation', min: 0, default: 1e-3, help: 'smallest drop of validation loss that counts as improvement' },
  backend: { kind: 'choice', group: 'Optimisation', choices: ['wasm', 'cpu'], default: 'wasm', help: 'tfjs backend for the trainable layers' },
  workers: {
    kind: 'integer',
    group: 'Optimisation',
    min: 1,
    defaultText: 'all cores with --top-blocks >= 1 (fine-tuned blocks of >= 5 M multiply-adds per image), else 1',
    help: 'threads that train the fine-tuned blocks, each on a share of every batch (same model as 1 within float rounding; reproducible for a given count)',
  },
  featureCache: { kind: 'boolean', group: 'Optimisation', default: true, help: 'cache trunk features on disk under the cache folder (--no-feature-cache: compute them every run)' },
  ...THREADS_OPTION,
  verbose: { kind: 'boolean', flag: 'quiet', inverted: true, default: true, help: 'progress output and summaries (--quiet: none)' },
} as const;

export const TRAIN = defineVerb({
  name: 'train',
  usage: 'DATA_DIR [options]',
  summary: 'train a classifier (folder per class, or train/ + val/)',
  description:
    'DATA_DIR holds one folder per class (front/, back/, none/ ...), or train/ and val/ folders that do. Writes a run folder: model/ (bundle), config.json, split.json, metrics.jsonl, evaluation.{txt,json}, data-report.json (skipped files, near-duplicates across the split, timings) and report.html (the evaluation report of the validation split).',
  positionals: { min: 1, max: 1, name: 'DATA_DIR' },
  options: {
    ...RECIPE_OPTIONS,
    out: { kind: 'string', group: 'Run', placeholder: 'DIR', defaultText: 'runs/<backbone>-<time>', help: 'run folder (refused if it exists and is not empty, unless --overwrite)' },
    overwrite: {
      kind: 'boolean',
      group: 'Run',
      default: false,
      help: "train into an existing --out folder: its run files (model/, config.json, evaluation.*, report.html ...) are removed first; other files are left",
    },
    heatmaps: {
      kind: 'boolean',
      group: 'Run',
      default: true,
      help: 'report.html shows a heat map (Grad-CAM) of the evidence for the predicted class next to each validation mistake',
    },
    valFraction: {
      kind: 'number',
      group: 'Run',
      min: 0,
      max: 1,
      exclusiveMax: true,
      default: 0.2,
      help: 'stratified validation fraction; 0 trains on every image for --epochs epochs (no early stopping): a final model once the recipe is validated',
    },
    temperature: { kind: 'number', group: 'Run', min: 0, exclusiveMin: true, defaultText: '1', help: 'softmax temperature to store when there is no validation split' },
    fromCv: {
      kind: 'string',
      group: 'Run',
      placeholder: 'CV',
      help: "the final model of a cross-validated recipe: trains on all images for the cv report's median best epoch (unless --epochs) and stores its out-of-fold temperature and abstain thresholds (CV: cv.json or its folder)",
    },
    split: { kind: 'string', group: 'Run', placeholder: 'FILE', help: 'reuse a split.json from an earlier run' },
    groups: {
      kind: 'string',
      group: 'Run',
      placeholder: 'SPEC',
      help: "where each image's group (source) comes from: FILE.csv:COLUMN (e.g. manifest.csv:source), prefix:SEP or folder (see phoneside help cv)",
    },
    valGroups: { kind: 'strings', group: 'Run', help: 'hold out these whole groups as the validation split (needs --groups): the honest check on sources a model never saw' },
    ...JSON_OPTION,
    ...ENV_OPTIONS,
  },
});

export const CV = defineVerb({
  name: 'cv',
  usage: 'DATA_DIR --groups SPEC [options]',
  summary: 'group cross-validation: accuracy on sources a model never saw',
  description:
    'Group cross-validation: every image is predicted by a model trained without any image of its group (its source: a shop, a website, a photographer). A random split puts photos of the same source on both sides and over-estimates accuracy on photos from a new source; this does not.\nPrints per-group and pooled accuracy, macro F1, ECE and the worst group; writes OUT/cv.json (every figure and the out-of-fold predictions; schema phoneside.cv-report/1) and OUT/report.html (the evaluation report of the out-of-fold predictions, with a per-group table). Takes every recipe option of phoneside train, with the same names.',
  positionals: { min: 1, max: 1, name: 'DATA_DIR' },
  options: {
    groups: {
      kind: 'string',
      group: 'Cross-validation',
      placeholder: 'SPEC',
      help: "where each image's group comes from (required): FILE.csv:COLUMN, e.g. manifest.csv:source (FILE in DATA_DIR or the working directory); prefix:SEP, the file name up to SEP; folder, the sub-folder inside each class folder",
    },
    folds: { kind: 'integer', group: 'Cross-validation', min: 2, defaultText: 'one per group (leave one group out)', help: 'group k-fold with K folds, groups balanced by size' },
    innerValFraction: {
      kind: 'number',
      group: 'Cross-validation',
      min: 0,
      max: 1,
      exclusiveMin: true,
      exclusiveMax: true,
      default: 0.15,
      help: "share of each fold's training images (stratified) used for early stopping and the temperature; the held-out group is never used",
    },
    maxErrorRate: {
      kind: 'number',
      group: 'Cross-validation',
      min: 0,
      max: 1,
      exclusiveMax: true,
      default: 0.02,
      help: 'abstention: one minimum confidence per class, fitted on the out-of-fold predictions so that at most X of the answered images are wrong (train --from-cv stores them)',
    },
    tta: { kind: 'boolean', group: 'Cross-validation', help: 'score each held-out photo by the mean logits of the photo and its mirror image' },
    rotationCheck: { kind: 'boolean', group: 'Cross-validation', default: true, help: 'also score the held-out photos turned 90° (--no-rotation-check skips it)' },
    out: { kind: 'string', group: 'Cross-validation', placeholder: 'DIR', defaultText: 'runs/cv-<backbone>-<time>', help: 'where to write cv.json and report.html' },
    ...RECIPE_OPTIONS,
    ...JSON_OPTION,
    ...ENV_OPTIONS,
  },
});

/** What `train()` takes (library names; every one optional). */
export type TrainInput = OptionsInput<typeof TRAIN.options>;
/** `train()`'s options after defaults and range checks. */
export type TrainSettings = ResolvedOptions<typeof TRAIN.options>;
export type CvInput = OptionsInput<typeof CV.options>;
export type CvSettings = ResolvedOptions<typeof CV.options>;
