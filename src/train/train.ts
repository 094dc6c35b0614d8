/**
 * `train`: data folder -> run folder. Scans and checks the images, splits them (stratified, or
 * explicit train/ val/ folders, or a recorded split), caches trunk features per augmented view,
 * fits the top + head, and writes the model bundle, config, split, per-epoch metrics and the
 * final validation evaluation.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { cutLayer, getBackbone, type BackboneSpec } from '../backbones/registry.js';
import { loadBackbone, type LoadedBackbone } from '../backbones/load.js';
import { inferShapes } from '../backbones/graph.js';
import { DEFAULT_AUGMENT, type AugmentConfig } from '../data/augment.js';
import { checkDecodable, scanDataset, type DatasetItem, type DatasetScan, type SkippedFile } from '../data/dataset.js';
import { assignGroups, parseGroupSpec } from '../data/groups.js';
import { readCvReport } from '../eval/cv-report.js';
import { findNearDuplicates, perceptualHash } from '../data/phash.js';
import { applySplitManifest, parseSplitManifest, splitManifest, stratifiedSplit, type SplitManifest } from '../data/split.js';
import { env } from '../env.js';
import { classificationMetrics, type ClassificationMetrics } from '../eval/metrics.js';
import { formatClassificationReport, formatConfusionMatrix, metricsToJSON } from '../eval/report.js';
import { saveBundle, BUNDLE_FORMAT, BUNDLE_VERSION, type ModelBundle } from '../model/bundle.js';
import { ClassifierModel } from '../model/classifier-model.js';
import { Trunk } from '../model/trunk.js';
import { createRng, type Rng } from '../util/rng.js';
import { ProgressBar, type ProgressStream } from '../util/progress.js';
import { initTrainingBackend, type TrainingBackend } from './backend.js';
import type { Callback, EpochLogs } from './callback.js';
import { CosineAnnealing, EarlyStopping, JsonlLogger, ProgressCallback, ReduceLROnPlateau } from './callbacks.js';
import { FeatureStore } from './features.js';
import { evaluateFeatures, fit, predictLogits, type FitData } from './fit.js';
import { fitTemperature, softmaxWithTemperature } from '../eval/calibration.js';
import { buildEvaluationReport } from '../eval/evaluation-report.js';
import { writeEvaluationHtml } from '../eval/html-report.js';
import { RUN_FILES, type DataReport } from '../eval/run-artifacts.js';
import { argmax, expectedCalibrationError } from '../eval/metrics.js';
import type { LossConfig } from './loss.js';

/** Every option of `phoneside train`, with the same names in the CLI (kebab-case there). */
export interface TrainOptions {
  backbone: string;
  /** MobileNetV2 width multiplier (0.35 default). */
  alpha?: number;
  /** Override folder (or model.json) for the backbone's ImageNet weights. */
  weights?: string;
  /** Run folder (default runs/<backbone>-<date>). */
  out?: string;
  seed: number;
  valFraction: number;
  /** A split.json from an earlier run, to reproduce its split. */
  split?: string;
  /** Where each image's group (source) comes from: `FILE.csv:COLUMN`, `prefix:SEP` or `folder` (see data/groups.ts). */
  groups?: string;
  /** Hold out these whole groups as the validation split (needs `groups`). */
  valGroups?: string[];
  /**
   * A cv report (cv.json or its folder) of this recipe: train a final model on all images for its
   * median best epoch, and store its out-of-fold temperature and abstain thresholds.
   */
  fromCv?: string;
  /** Backbone blocks fine-tuned, counted from the top (default: the backbone's validated default). */
  topBlocks?: number;
  headUnits?: [number, number];
  dropout: number;
  epochs: number;
  batchSize: number;
  lr: number;
  /** Learning-rate multiplier for the fine-tuned backbone blocks. */
  topLrScale: number;
  optimizer: 'adam' | 'adamw';
  weightDecay: number;
  loss: 'focal' | 'ce';
  gamma: number;
  /** Per-class alpha for the loss, in class order. */
  classAlpha?: number[];
  /** Label smoothing eps in [0, 1): targets (1 - eps) one-hot + eps / classes, for focal and ce (0 = off). */
  labelSmoothing?: number;
  /** Mixup of the cached trunk features per batch, lambda ~ Beta(mixup, mixup) (0 = off). */
  mixup?: number;
  /** Draw each epoch's images with probability inversely proportional to class frequency (with replacement). */
  balancedSampling?: boolean;
  /** Decay in (0, 1) of an EMA of the trainable weights, used for validation and kept at the end (0 = off). */
  ema?: number;
  scheduler: 'plateau' | 'cosine' | 'none';
  lrPatience: number;
  lrFactor: number;
  /** Early stopping on validation loss. */
  patience: number;
  minDelta: number;
  /**
   * Trunk feature views cached per training image (view 0 un-augmented, the rest augmented with
   * `augment`). Default 1: on unseen sources, augmented views lowered accuracy (docs/validation.md).
   */
  views: number;
  augment: AugmentConfig;
  /**
   * Softmax temperature to store when there is no validation split to fit one on (e.g. the value
   * fitted by an earlier validated run of the same recipe). Ignored when validating.
   */
  temperature?: number;
  /** Use at most this many images per class (quick experiments, tests). */
  limitPerClass?: number;
  threads?: number;
  backend: TrainingBackend;
  /** Cache trunk features on disk under env.cacheDir. */
  featureCache: boolean;
  progress?: ProgressStream;
  /** Print progress and summaries (default true). */
  verbose: boolean;
}

export const DEFAULT_TRAIN_OPTIONS: Omit<TrainOptions, 'backbone'> = {
  seed: 42,
  valFraction: 0.2,
  dropout: 0.5,
  epochs: 30,
  batchSize: 32,
  lr: 1e-3,
  topLrScale: 0.1,
  optimizer: 'adamw',
  weightDecay: 1e-4,
  loss: 'focal',
  gamma: 2,
  labelSmoothing: 0,
  mixup: 0,
  balancedSampling: false,
  ema: 0,
  scheduler: 'plateau',
  lrPatience: 2,
  lrFactor: 0.5,
  patience: 5,
  minDelta: 1e-3,
  views: 1,
  augment: { ...DEFAULT_AUGMENT },
  backend: 'wasm',
  featureCache: true,
  verbose: true,
};

export interface StageTimings {
  scanSeconds: number;
  checkSeconds: number;
  hashSeconds: number;
  backboneSeconds: number;
  decodeSeconds: number;
  trunkSeconds: number;
  featureViewsComputed: number;
  featureViewsCached: number;
  trainSeconds: number;
  epochs: number;
  secondsPerEpoch: number;
  totalSeconds: number;
}

export interface TrainResult {
  runDir: string;
  calibration: { temperature: number; eceBefore: number; eceAfter: number };
  bundle: ModelBundle;
  /** Validation metrics of the restored best weights; undefined when trained on all images. */
  evaluation: ClassificationMetrics | undefined;
  history: EpochLogs[];
  bestEpoch: number;
  timings: StageTimings;
  skipped: SkippedFile[];
  nearDuplicates: { train: string; val: string; distance: number }[];
  split: SplitManifest;
}

function limitItems(items: DatasetItem[], perClass: number | undefined, seed: number): DatasetItem[] {
  if (perClass === undefined) return items;
  const rng = createRng(seed).fork('limit');
  const byClass = new Map<string, DatasetItem[]>();
  for (const it of [...items].sort((a, b) => (a.sha256 < b.sha256 ? -1 : 1))) {
    const list = byClass.get(it.label) ?? [];
    list.push(it);
    byClass.set(it.label, list);
  }
  return [...byClass.values()].flatMap((list) => rng.shuffle(list).slice(0, perClass));
}

/** What every trainer (train, cv) logs and draws progress bars with. */
export interface TrainLog {
  log: (msg: string) => void;
  stream: ProgressStream;
}

export function trainLog(opts: Pick<TrainOptions, 'verbose' | 'progress'>): TrainLog {
  const stream: ProgressStream = opts.verbose ? (opts.progress ?? process.stderr) : { write: () => true };
  return { stream, log: (msg) => void stream.write(`${msg}\n`) };
}

export interface TrainingImages {
  scan: DatasetScan;
  /** The decodable images (after --limit-per-class). */
  items: DatasetItem[];
  skipped: SkippedFile[];
  classes: string[];
  scanSeconds: number;
  checkSeconds: number;
}

/** Scan a data folder and keep the images that decode; the others are reported, never fatal. */
export async function loadTrainingImages(
  dataDir: string, opts: Pick<TrainOptions, 'limitPerClass' | 'seed'>, stream: ProgressStream, log: (msg: string) => void,
): Promise<TrainingImages> {
  let t = performance.now();
  const scan = await scanDataset(dataDir);
  const scanSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const candidates = limitItems(scan.items, opts.limitPerClass, opts.seed);
  const checkBar = new ProgressBar({ total: candidates.length, label: 'check images', stream, unit: 'img' });
  const checked = await checkDecodable(candidates, (d) => checkBar.update(d));
  checkBar.done();
  const checkSeconds = (performance.now() - t) / 1000;
  const skipped = [...scan.skipped, ...checked.skipped];
  for (const s of skipped) log(`warning: skipped ${s.path}: ${s.reason}`);
  for (const w of scan.warnings) log(`warning: ${w}`);
  return { scan, items: checked.ok, skipped, classes: scan.classes, scanSeconds, checkSeconds };
}

/**
 * Hamming distance (of 64 pHash bits) at or below which two images count as near-duplicates.
 * On the phones set, 4 caught the one real pair (recompressed copies); 6 mostly paired different
 * product shots with the same outline on white.
 */
const NEAR_DUPLICATE_DISTANCE = 4;

/** The backbone a run trains on, with its cut and head widths resolved from the options. */
export interface ResolvedModel {
  spec: BackboneSpec;
  topBlocks: number;
  cut: string;
  headUnits: [number, number];
}

export function resolveModel(opts: Pick<TrainOptions, 'backbone' | 'alpha' | 'topBlocks' | 'headUnits'>): ResolvedModel {
  const spec = getBackbone(opts.backbone, opts.alpha === undefined ? {} : { alpha: opts.alpha });
  const topBlocks = opts.topBlocks ?? spec.defaultTopBlocks;
  return { spec, topBlocks, cut: cutLayer(spec, topBlocks), headUnits: opts.headUnits ?? spec.defaultHeadUnits };
}

/** A loaded backbone cut for training, and the feature store that caches its trunk's views. */
export interface TrunkFeatures {
  backbone: LoadedBackbone;
  cutShape: [number, number, number];
  featureShape: number[];
  store: FeatureStore;
  /** Frees ONNX Runtime once every view needed is extracted. */
  dispose: () => Promise<void>;
  seconds: number;
}

export async function openTrunkFeatures(
  m: ResolvedModel, opts: Pick<TrainOptions, 'weights' | 'threads' | 'augment' | 'seed' | 'featureCache'>,
): Promise<TrunkFeatures> {
  const t = performance.now();
  const backbone = await loadBackbone(m.spec, opts.weights ? { path: opts.weights } : {});
  const cutShape = inferShapes(backbone.graph).get(m.cut) as [number, number, number];
  const pool = m.topBlocks === 0;
  const trunk = await Trunk.create(backbone, { cut: m.cut, pool, ...(opts.threads ? { threads: opts.threads } : {}) });
  const store = new FeatureStore({
    trunk,
    preprocessing: m.spec.preprocessing,
    augment: opts.augment,
    seed: opts.seed,
    trunkKey: `${m.spec.id}:${backbone.weightsSha256}:${m.cut}:${pool ? 'gap' : 'map'}`,
    ...(opts.featureCache ? { cacheDir: env.cacheDir } : {}),
  });
  return { backbone, cutShape, featureShape: trunk.outputShape, store, dispose: () => trunk.dispose(), seconds: (performance.now() - t) / 1000 };
}

export function lossConfig(opts: Pick<TrainOptions, 'loss' | 'gamma' | 'classAlpha' | 'labelSmoothing'>): LossConfig {
  return opts.loss === 'focal'
    ? { kind: 'focal', gamma: opts.gamma, ...(opts.classAlpha ? { alpha: opts.classAlpha } : {}), ...(opts.labelSmoothing ? { labelSmoothing: opts.labelSmoothing } : {}) }
    : { kind: 'crossEntropy', ...(opts.classAlpha ? { alpha: opts.classAlpha } : {}), ...(opts.labelSmoothing ? { labelSmoothing: opts.labelSmoothing } : {}) };
}

export interface FitOnFeaturesInput {
  model: ResolvedModel;
  trunk: TrunkFeatures;
  classes: string[];
  train: FitData['train'];
  trainLabels: number[];
  /** Empty: train on everything for opts.epochs epochs (no early stopping, no plateau schedule). */
  val: Float32Array[];
  valLabels: number[];
  /** Callbacks beside early stopping and the LR schedule (logging, progress). */
  callbacks: Callback[];
  /** Seeds initialisation, batch order and dropout. */
  rng: Rng;
}

/** The options that shape one fit (the recipe's optimisation part). */
export type FitRecipe = Pick<
  TrainOptions,
  'backend' | 'dropout' | 'loss' | 'gamma' | 'classAlpha' | 'patience' | 'minDelta' | 'scheduler' | 'lrFactor' | 'lrPatience' |
  'lr' | 'epochs' | 'batchSize' | 'optimizer' | 'weightDecay' | 'topLrScale' |
  'labelSmoothing' | 'mixup' | 'balancedSampling' | 'ema'
>;

/** Builds the trainable top + head and fits it on cached trunk features. */
export async function fitOnFeatures(input: FitOnFeaturesInput, opts: FitRecipe): Promise<{
  classifier: ClassifierModel; history: EpochLogs[]; epochsRun: number; bestEpoch: number; lossCfg: LossConfig;
}> {
  await initTrainingBackend(opts.backend);
  const { model: m, trunk, classes, rng } = input;
  const classifier = new ClassifierModel({
    backboneGraph: trunk.backbone.graph,
    cut: m.cut,
    featureLayer: m.spec.featureLayer,
    cutShape: trunk.cutShape,
    featureShape: trunk.featureShape,
    head: { units: m.headUnits, numClasses: classes.length, dropout: opts.dropout, bnMomentum: 0.9, bnEpsilon: 1e-3 },
    rng: rng.fork('init'),
  });
  const lossCfg = lossConfig(opts);
  const validating = input.val.length > 0;
  const early = new EarlyStopping({ monitor: 'valLoss', patience: opts.patience, minDelta: opts.minDelta, restoreBestWeights: true });
  const callbacks: Callback[] = [...(validating ? [early] : []), ...input.callbacks];
  if (opts.scheduler === 'plateau' && validating) {
    callbacks.push(new ReduceLROnPlateau({ monitor: 'valLoss', factor: opts.lrFactor, patience: opts.lrPatience, minLr: opts.lr * 1e-3 }));
  } else if (opts.scheduler === 'cosine') {
    callbacks.push(new CosineAnnealing({ baseLr: opts.lr, minLr: opts.lr * 1e-2 }));
  }
  const result = await fit(
    classifier,
    { train: input.train, trainLabels: input.trainLabels, val: input.val, valLabels: input.valLabels, classes },
    {
      epochs: opts.epochs,
      batchSize: opts.batchSize,
      loss: lossCfg,
      optimizer: { kind: opts.optimizer, lr: opts.lr, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: opts.weightDecay },
      topLrScale: opts.topLrScale,
      rng,
      callbacks,
      ...(opts.mixup ? { mixup: opts.mixup } : {}),
      ...(opts.balancedSampling ? { balancedSampling: true } : {}),
      ...(opts.ema ? { ema: opts.ema } : {}),
    },
  );
  const bestEpoch = !validating || early.bestEpoch === 0 ? result.epochsRun : early.bestEpoch;
  return { classifier, history: result.history, epochsRun: result.epochsRun, bestEpoch, lossCfg };
}

/** Merges options over the defaults (augmentation field by field). */
export function trainOptions(options: Partial<TrainOptions> & { backbone: string }): TrainOptions {
  return { ...DEFAULT_TRAIN_OPTIONS, ...options, augment: { ...DEFAULT_AUGMENT, ...options.augment } };
}

export async function train(dataDir: string, options: Partial<TrainOptions> & { backbone: string }): Promise<TrainResult> {
  const cv = options.fromCv ? await readCvReport(options.fromCv) : undefined;
  if (cv) {
    if (options.valFraction !== undefined && options.valFraction !== 0) throw new Error('--from-cv trains the final model on all images: drop --val-fraction');
    if (options.split || options.valGroups) throw new Error('--from-cv trains the final model on all images: drop --split / --val-groups');
    if (options.temperature !== undefined) throw new Error('--from-cv takes the temperature from the cv report: drop --temperature');
    options = { ...options, valFraction: 0, epochs: options.epochs ?? cv.medianBestEpoch, temperature: cv.oofTemperature };
  }
  const opts = trainOptions(options);
  const { log, stream } = trainLog(opts);
  const tStart = performance.now();
  const resolved = resolveModel(opts);
  const { spec, topBlocks, cut, headUnits } = resolved;
  if (cv && (cv.backbone !== spec.id || cv.topBlocks !== topBlocks)) {
    throw new Error(`--from-cv: the cv report is of ${cv.backbone} with ${cv.topBlocks} top block(s), this run is ${spec.id} with ${topBlocks}: train the recipe that was cross-validated`);
  }
  const runDir = resolve(opts.out ?? join('runs', `${spec.id}-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  if (opts.valGroups && !opts.groups) throw new Error('--val-groups needs --groups (where each image\'s group comes from)');
  if (opts.valGroups && opts.split) throw new Error('--val-groups and --split are two different splits: give one');

  // 1. Files: scan, decode check, split.
  const { scan, items, skipped, classes, scanSeconds, checkSeconds } = await loadTrainingImages(dataDir, opts, stream, log);
  if (cv && cv.classes.join('\0') !== classes.join('\0')) throw new Error(`--from-cv: the cv report's classes (${cv.classes.join(', ')}) are not this data's (${classes.join(', ')})`);

  let trainItems: DatasetItem[];
  let valItems: DatasetItem[];
  let manifest: SplitManifest;
  if (opts.valGroups) {
    // Whole sources held out: what the model will meet in use (see data/groups.ts).
    const groups = await assignGroups(items, parseGroupSpec(opts.groups!), scan.root);
    const known = new Set(groups);
    const unknown = opts.valGroups.filter((g) => !known.has(g));
    if (unknown.length > 0) throw new Error(`--val-groups: no images in group(s) ${unknown.join(', ')} (groups: ${[...known].sort().join(', ')})`);
    const held = new Set(opts.valGroups);
    trainItems = items.filter((_, i) => !held.has(groups[i]!));
    valItems = items.filter((_, i) => held.has(groups[i]!));
    manifest = splitManifest(trainItems, valItems, { seed: null, valFraction: null });
  } else if (opts.split) {
    const recorded = parseSplitManifest(JSON.parse(await readFile(opts.split, 'utf8')));
    const applied = applySplitManifest(items, recorded);
    if (applied.missing.length > 0) log(`warning: ${applied.missing.length} files of the recorded split are gone`);
    [trainItems, valItems] = [applied.train, applied.val];
    manifest = splitManifest(trainItems, valItems, { seed: recorded.seed, valFraction: recorded.valFraction });
  } else if (scan.layout === 'train-val') {
    trainItems = items.filter((i) => i.split === 'train');
    valItems = items.filter((i) => i.split === 'val');
    manifest = splitManifest(trainItems, valItems, { seed: null, valFraction: null });
  } else {
    const s = stratifiedSplit(items, { valFraction: opts.valFraction, seed: opts.seed });
    [trainItems, valItems] = [s.train, s.val];
    manifest = splitManifest(trainItems, valItems, { seed: opts.seed, valFraction: opts.valFraction });
  }
  if (trainItems.length < 2) throw new Error(`not enough training images (${trainItems.length})`);
  // --val-fraction 0 trains on every image for a fixed number of epochs (a final model after the
  // recipe was validated); anything else without validation images is a mistake.
  const allData = valItems.length === 0 && opts.valFraction === 0 && !opts.split && !opts.valGroups && scan.layout === 'classes';
  if (valItems.length === 0 && !allData) throw new Error('no validation images: use --val-fraction > 0 or a val/ folder');
  if (allData) log(`no validation split: training on all ${trainItems.length} images for ${opts.epochs} epochs (no early stopping, no plateau schedule)`);

  // 2. Near-duplicates across the split inflate validation scores: find and report them.
  let t = performance.now();
  const hashes = new Map<string, string>();
  await Promise.all(items.map(async (it) => hashes.set(it.sha256, await perceptualHash(it.path))));
  const nearDuplicates = findNearDuplicates(
    trainItems.map((i) => ({ id: i.relPath, hash: hashes.get(i.sha256)! })),
    valItems.map((i) => ({ id: i.relPath, hash: hashes.get(i.sha256)! })),
    NEAR_DUPLICATE_DISTANCE,
  ).map((d) => ({ train: d.a, val: d.b, distance: d.distance }));
  const hashSeconds = (performance.now() - t) / 1000;
  if (nearDuplicates.length > 0) {
    log(`warning: ${nearDuplicates.length} near-duplicate pairs across train and validation (perceptual hash distance <= ${NEAR_DUPLICATE_DISTANCE}); see data-report.json`);
  }
  log(`data: ${classes.length} classes (${classes.join(', ')}), ${trainItems.length} train / ${valItems.length} validation images, ${skipped.length} skipped`);

  // 3. Backbone and trunk features.
  const trunk = await openTrunkFeatures(resolved, opts);
  const { backbone, store } = trunk;
  const backboneSeconds = trunk.seconds;
  const views = Math.max(1, opts.views);
  const featBar = new ProgressBar({ total: trainItems.length * views + valItems.length, label: 'trunk features', stream, unit: 'view' });
  const trainFeat = await store.extract(trainItems, views, (d) => featBar.update(d));
  const valFeat = await store.extract(valItems, 1, (d) => featBar.update(trainItems.length * views + d));
  featBar.done();
  await trunk.dispose();

  // 4. Fit.
  await mkdir(runDir, { recursive: true });
  const callbacks: Callback[] = [new JsonlLogger(join(runDir, RUN_FILES.metrics))];
  if (opts.verbose) callbacks.push(new ProgressCallback(stream));
  t = performance.now();
  const rng = createRng(opts.seed).fork('train');
  const fitted = await fitOnFeatures(
    {
      model: resolved,
      trunk,
      classes,
      train: trainFeat.features,
      trainLabels: trainItems.map((i) => classes.indexOf(i.label)),
      val: valFeat.features.map((v) => v[0]!),
      valLabels: valItems.map((i) => classes.indexOf(i.label)),
      callbacks,
      rng,
    },
    opts,
  );
  const { classifier: model, lossCfg } = fitted;
  const result = { history: fitted.history, epochsRun: fitted.epochsRun };
  const trainSeconds = (performance.now() - t) / 1000;

  // 5. Final validation (best weights restored by early stopping) and the run folder.
  const valLabels = valItems.map((i) => classes.indexOf(i.label));
  const valRows = valFeat.features.map((v) => v[0]!);
  let evaluation: ClassificationMetrics | undefined;
  let calibration: TrainResult['calibration'];
  let valLogits: number[][] = [];
  if (allData) {
    calibration = { temperature: opts.temperature ?? 1, eceBefore: NaN, eceAfter: NaN };
  } else {
    const final = evaluateFeatures(model, valRows, valLabels, classes, lossCfg);
    evaluation = classificationMetrics(valLabels, final.probs.map(argmax), classes);
    // Temperature scaling on the validation logits: calibrated confidences for --min-confidence.
    valLogits = predictLogits(model, valRows);
    const temperature = fitTemperature(valLogits, valLabels);
    calibration = {
      temperature,
      eceBefore: expectedCalibrationError(softmaxWithTemperature(valLogits, 1), valLabels),
      eceAfter: expectedCalibrationError(softmaxWithTemperature(valLogits, temperature), valLabels),
    };
    log(`calibration: temperature ${temperature.toFixed(3)}, ECE ${calibration.eceBefore.toFixed(4)} -> ${calibration.eceAfter.toFixed(4)}`);
  }
  const temperature = calibration.temperature;
  const bestEpoch = fitted.bestEpoch;
  const timings: StageTimings = {
    scanSeconds,
    checkSeconds,
    hashSeconds,
    backboneSeconds,
    decodeSeconds: trainFeat.stats.decodeSeconds + valFeat.stats.decodeSeconds,
    trunkSeconds: trainFeat.stats.trunkSeconds + valFeat.stats.trunkSeconds,
    featureViewsComputed: trainFeat.stats.computed + valFeat.stats.computed,
    featureViewsCached: trainFeat.stats.fromDisk + valFeat.stats.fromDisk,
    trainSeconds,
    epochs: result.epochsRun,
    secondsPerEpoch: result.history.reduce((a, h) => a + h.seconds, 0) / Math.max(1, result.epochsRun),
    totalSeconds: 0,
  };
  const bundle: ModelBundle = {
    manifest: {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      createdAt: new Date().toISOString(),
      backbone: {
        id: spec.id,
        family: spec.family,
        weightsSha256: backbone.weightsSha256,
        weightsSource: spec.weights.kind === 'npm' ? `npm:${spec.weights.packageName}@${spec.weights.version}/${spec.weights.dir}` : spec.weights.url,
        cut,
      },
      preprocessing: spec.preprocessing,
      classes,
      topBlocks,
      head: { units: headUnits, dropout: opts.dropout },
      temperature,
      ...(cv ? { thresholds: cv.thresholds } : {}),
      // Temperature and thresholds were fitted on flip-averaged logits: the model must average too.
      ...(cv?.tta ? { tta: 'hflip' as const } : {}),
      info: {
        validation: evaluation ? { accuracy: evaluation.accuracy, macroF1: evaluation.macroAvg.f1, images: valItems.length } : null,
        calibration,
        trainImages: trainItems.length,
        bestEpoch,
        loss: lossCfg,
        ...(cv ? { groupCv: { report: cv.path, ...cv.summary } } : {}),
      },
    },
    graph: model.toGraph(),
  };
  await saveBundle(join(runDir, RUN_FILES.model), bundle);
  model.dispose();
  const { progress: _p, ...config } = opts;
  await writeFile(join(runDir, RUN_FILES.config), JSON.stringify({ dataDir: resolve(dataDir), ...config, topBlocks, cut, headUnits }, null, 2) + '\n');
  await writeFile(join(runDir, RUN_FILES.split), JSON.stringify(manifest, null, 1) + '\n');
  if (evaluation) {
    const report = formatClassificationReport(evaluation, 4);
    const cm = formatConfusionMatrix(evaluation);
    await writeFile(join(runDir, RUN_FILES.evaluationText), `${cm}\n\n${report}\n`);
    await writeFile(join(runDir, RUN_FILES.evaluation), JSON.stringify({ split: 'val', bestEpoch, ...metricsToJSON(evaluation), calibration }, null, 2) + '\n');
  }
  timings.totalSeconds = (performance.now() - tStart) / 1000;
  const dataReport: DataReport = {
    classes,
    counts: Object.fromEntries(classes.map((c) => [c, { train: trainItems.filter((i) => i.label === c).length, val: valItems.filter((i) => i.label === c).length }])),
    skipped,
    duplicates: scan.duplicates,
    conflicts: scan.conflicts,
    nearDuplicatesAcrossSplit: nearDuplicates,
  };
  await writeFile(join(runDir, RUN_FILES.dataReport), JSON.stringify({ ...dataReport, timings }, null, 2) + '\n');
  if (evaluation) {
    // The HTML report of the validation split, from the same logits the figures above came from.
    const probs = softmaxWithTemperature(valLogits, temperature);
    const report = buildEvaluationReport({
      classes,
      predictions: valItems.map((it, i) => ({ path: it.relPath, label: it.label, predicted: classes[argmax(probs[i]!)]!, probabilities: probs[i]! })),
      temperature,
      model: { path: runDir, backbone: spec.id },
      data: { dir: dataDir, subset: 'val', skipped },
      // What metrics.jsonl and data-report.json now hold, from memory rather than read back.
      run: { runDir, epochs: result.history, bestEpoch, dataReport, hasSplit: true },
    });
    await writeEvaluationHtml(join(runDir, RUN_FILES.report), report, { dataDir: scan.root });
  }
  return { runDir, calibration, bundle, evaluation, history: result.history, bestEpoch, timings, skipped, nearDuplicates, split: manifest };
}
