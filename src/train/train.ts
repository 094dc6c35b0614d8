/**
 * `train`: data folder -> run folder, as a pipeline of stages: prepare the data (scan, decode
 * check, split, near-duplicates across the split), extract trunk features (cached per augmented
 * view), fit the top + head, calibrate on the validation split, and write the run folder (model
 * bundle, config, split, per-epoch metrics, evaluation, data report, HTML report; see
 * eval/run-folder.ts). `cv.ts` reuses the stages it shares.
 */
import { join, resolve } from 'node:path';
import { heatmapsOfModel } from '../explain/report-heatmaps.js';
import { GALLERY_LIMIT } from '../eval/html-report.js';
import type { GalleryHeatmap } from '../eval/html/evaluation-page.js';
import { cutLayer, getBackbone, type BackboneSpec } from '../backbones/registry.js';
import { loadBackbone, type LoadedBackbone } from '../backbones/load.js';
import { inferShapes } from '../backbones/graph.js';
import { DEFAULT_AUGMENT, type AugmentConfig } from '../data/augment.js';
import { AUGMENT_PRESETS, type AugmentPreset } from '../data/augment-presets.js';
import { TRAIN, type CV, type TrainInput, type TrainSettings } from '../options/train.js';
import { OptionConflictError, resolveOptions, type OptionsInput, type ResolvedOptions } from '../options/schema.js';
import { checkDecodable, DatasetError, scanDataset, type DatasetItem, type DatasetScan, type SkippedFile } from '../data/dataset.js';
import { assignGroups, parseGroupSpec } from '../data/groups.js';
import { readCvReport, type CvCarryOver } from '../eval/cv-report.js';
import { findNearDuplicates, perceptualHash } from '../data/phash.js';
import { applySplitManifest, splitManifest, stratifiedSplit, type SplitManifest } from '../data/split.js';
import { env } from '../env.js';
import { classificationMetrics, expectedCalibrationError, type ClassificationMetrics } from '../eval/metrics.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, type ModelBundle } from '../model/bundle.js';
import { ClassifierModel } from '../model/classifier-model.js';
import { Trunk } from '../model/trunk.js';
import { argmax } from '../util/argmax.js';
import { createRng, type Rng } from '../util/rng.js';
import { ProgressBar, type ProgressStream } from '../util/progress.js';
import { initTrainingBackend } from './backend.js';
import { defaultTrainingWorkers } from './parallel.js';
import type { Callback, EpochLogs } from './callback.js';
import { CosineAnnealing, EarlyStopping, JsonlLogger, ProgressCallback, ReduceLROnPlateau } from './callbacks.js';
import { FeatureStore, type ExtractStats, type FeatureTable } from './features.js';
import { evaluateFeatures, fit, predictLogits, TrainingDivergedError, type FitData } from './fit.js';
import { fitTemperature, softmaxWithTemperature } from '../eval/calibration.js';
import { buildEvaluationReport } from '../eval/evaluation-report.js';
import { readSplitFile, RUN_FILES, RunFolder, timestampedRunDir, type DataReport, type RunCalibration } from '../eval/run-folder.js';
import type { LossConfig } from './loss.js';

/**
 * What `train()` takes: the options of its table in src/options/train.ts (the CLI's flags, in
 * camelCase; defaults and range checks come from there), plus what is not a flag: an augmentation
 * config of one's own instead of a preset, extra callbacks and the progress stream.
 */
export type TrainParams = Omit<TrainInput, 'augment'> & RecipeExtras;

/** The recipe's non-flag parts, shared by `train()` and `crossValidate()`. */
export interface RecipeExtras {
  /** A preset name (`default`, `strong`, `none`) or an augmentation config (fields over the defaults). */
  augment?: AugmentPreset | Partial<AugmentConfig>;
  /**
   * Extra training callbacks (fastai's `cbs`): they get the same events as the built-in ones
   * (early stopping, LR schedule, metrics log, progress), after them, and may stop training or set
   * the learning rate. Not recorded in config.json.
   */
  callbacks?: Callback[];
  /** Where progress and summaries go (default stderr; nothing when `verbose` is false). */
  progress?: ProgressStream;
}

/** The options after defaults and checks, as the stages use them. */
export type TrainOptions = Omit<TrainSettings, 'augment'> & ResolvedExtras;

export interface ResolvedExtras {
  augment: AugmentConfig;
  callbacks?: Callback[];
  progress?: ProgressStream;
}

/** The augmentation config of a preset, or of a given config over the defaults. */
function augmentConfig(preset: AugmentPreset, given: RecipeExtras['augment']): AugmentConfig {
  return typeof given === 'object' ? { ...DEFAULT_AUGMENT, ...given } : { ...AUGMENT_PRESETS[preset] };
}

/**
 * Checks `params` against `table` (OptionError / OptionConflictError name the option) and fills
 * in its defaults; the augmentation becomes a config. Shared by train (TRAIN) and cv (CV).
 */
export function resolveRecipe<T extends typeof TRAIN.options | typeof CV.options>(
  table: T,
  params: Omit<OptionsInput<T>, 'augment'> & RecipeExtras,
): Omit<ResolvedOptions<T>, 'augment'> & ResolvedExtras {
  const { augment, callbacks, progress, ...rest } = params;
  const settings = resolveOptions(table, { ...rest, ...(typeof augment === 'string' ? { augment } : {}) } as OptionsInput<T>) as ResolvedOptions<T> & {
    augment: AugmentPreset;
  };
  return {
    ...settings,
    augment: augmentConfig(settings.augment, augment),
    ...(callbacks !== undefined ? { callbacks } : {}),
    ...(progress !== undefined ? { progress } : {}),
  };
}

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
  refuseUndecodableClasses(scan, candidates, checked.ok, checked.skipped);
  return { scan, items: checked.ok, skipped, classes: scan.classes, scanSeconds, checkSeconds };
}

/**
 * A class whose images all failed to decode is refused like an empty class folder (scanDataset's
 * DatasetError), rather than trained as a class with no examples. In a train/ + val/ layout only
 * the training images count (scanDataset only warns about a class with no validation images).
 */
function refuseUndecodableClasses(
  scan: DatasetScan, checked: readonly DatasetItem[], ok: readonly DatasetItem[], undecodable: readonly SkippedFile[],
): void {
  const counts = new Map<string, number>();
  for (const it of ok) if (it.split !== 'val') counts.set(it.label, (counts.get(it.label) ?? 0) + 1);
  const reasons = new Map(undecodable.map((s) => [s.path, s.reason]));
  for (const c of scan.classes) {
    if (counts.get(c)) continue;
    const where = scan.layout === 'classes' ? `${scan.root}/${c}` : `${scan.root}/train/${c}`;
    const bad = checked.filter((it) => it.label === c && it.split !== 'val' && reasons.has(it.path));
    const first = bad[0];
    const why = `${bad.length} file${bad.length === 1 ? '' : 's'} could not be decoded` + (first ? `, e.g. ${first.relPath}: ${reasons.get(first.path)}` : '');
    throw new DatasetError(
      scan.layout === 'classes' ? `class folder "${c}" contains no images that decode (${why})` : `class "${c}" has no training images that decode in ${where} (${why})`,
    );
  }
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

/** Loads the backbone (its weights found as `env` says: env.weightsDir, the cache, or a download) and its trunk. */
export async function openTrunkFeatures(
  m: ResolvedModel, opts: Pick<TrainOptions, 'threads' | 'augment' | 'seed' | 'featureCache'>,
): Promise<TrunkFeatures> {
  const t = performance.now();
  const backbone = await loadBackbone(m.spec);
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

/** Trunk features of some images, and how they were got. */
export interface ExtractedViews {
  features: FeatureTable;
  stats: ExtractStats;
}

/** `views` views of every training image (view 0 un-augmented) and view 0 of every validation image, under one progress bar. */
export async function extractViews(
  store: FeatureStore, train: readonly DatasetItem[], val: readonly DatasetItem[], views: number, stream: ProgressStream,
): Promise<{ train: ExtractedViews; val: ExtractedViews }> {
  const bar = new ProgressBar({ total: train.length * views + val.length, label: 'trunk features', stream, unit: 'view' });
  const trainViews = await store.extract(train, views, (d) => bar.update(d));
  const valViews = await store.extract(val, 1, (d) => bar.update(train.length * views + d));
  bar.done();
  return { train: trainViews, val: valViews };
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

/** The options that shape one fit (the recipe's optimisation part), and the caller's callbacks. */
export type FitRecipe = Pick<
  TrainOptions,
  'backend' | 'dropout' | 'loss' | 'gamma' | 'classAlpha' | 'patience' | 'minDelta' | 'scheduler' | 'lrFactor' | 'lrPatience' |
  'lr' | 'epochs' | 'batchSize' | 'optimizer' | 'weightDecay' | 'topLrScale' |
  'labelSmoothing' | 'mixup' | 'balancedSampling' | 'ema' | 'workers' | 'callbacks'
>;

export interface FittedModel {
  classifier: ClassifierModel;
  history: EpochLogs[];
  epochsRun: number;
  bestEpoch: number;
  lossCfg: LossConfig;
}

/**
 * Builds the trainable top + head and fits it on cached trunk features. Callbacks run in this
 * order: early stopping (when validating), `input.callbacks`, the LR schedule, `opts.callbacks`.
 */
export async function fitOnFeatures(input: FitOnFeaturesInput, opts: FitRecipe): Promise<FittedModel> {
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
  callbacks.push(...(opts.callbacks ?? []));
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
      workers: opts.workers ?? defaultTrainingWorkers(classifier.top),
      backend: opts.backend,
    },
  ).catch((err: unknown) => {
    classifier.dispose(); // e.g. TrainingDivergedError: the model is thrown away
    throw err;
  });
  const bestEpoch = !validating || early.bestEpoch === 0 ? result.epochsRun : early.bestEpoch;
  return { classifier, history: result.history, epochsRun: result.epochsRun, bestEpoch, lossCfg };
}

/** `train()`'s options checked, with their defaults. */
export function trainOptions(params: TrainParams): TrainOptions {
  return resolveRecipe(TRAIN.options, params);
}

/** The options as recorded in config.json / cv.json: less the progress stream and the callbacks, which are not data. */
export function recordedOptions<T extends Pick<TrainOptions, 'progress' | 'callbacks'>>(opts: T): Omit<T, 'progress' | 'callbacks'> {
  const { progress: _p, callbacks: _c, ...rest } = opts;
  return rest;
}

// The stages of `train`, in order.

/**
 * fromCv: the final model of a cross-validated recipe, trained on all images for the cv's
 * median best epoch, with its out-of-fold temperature (and, in the bundle, its thresholds).
 */
async function applyFromCv(params: TrainParams): Promise<{ params: TrainParams; cv: CvCarryOver | undefined }> {
  if (!params.fromCv) return { params, cv: undefined };
  const cv = await readCvReport(params.fromCv);
  const conflict = (option: keyof TrainParams, why: string): OptionConflictError =>
    new OptionConflictError(['fromCv', option], ([f, o]) => `${f} trains the final model of the cross-validated recipe ${why}: drop ${o}`);
  if (params.valFraction !== undefined && params.valFraction !== 0) throw conflict('valFraction', 'on all images');
  if (params.split) throw conflict('split', 'on all images');
  if (params.valGroups) throw conflict('valGroups', 'on all images');
  if (params.temperature !== undefined) throw conflict('temperature', "with the cv report's temperature");
  return { params: { ...params, valFraction: 0, epochs: params.epochs ?? cv.medianBestEpoch, temperature: cv.oofTemperature }, cv };
}

function checkFromCvModel(cv: CvCarryOver | undefined, m: ResolvedModel): void {
  if (cv && (cv.backbone !== m.spec.id || cv.topBlocks !== m.topBlocks)) {
    throw new OptionConflictError(
      ['fromCv'],
      ([f]) => `${f}: the cv report is of ${cv.backbone} with ${cv.topBlocks} top block(s), this run is ${m.spec.id} with ${m.topBlocks}: train the recipe that was cross-validated`,
    );
  }
}

/** The images of a run, split, with what the data report says about them. */
export interface TrainingData {
  images: TrainingImages;
  train: DatasetItem[];
  val: DatasetItem[];
  manifest: SplitManifest;
  /** No validation split: every image trains, for opts.epochs epochs (a final model). */
  allData: boolean;
  nearDuplicates: TrainResult['nearDuplicates'];
  hashSeconds: number;
}

/** Held-out groups, a recorded split, train/ val/ folders, or a stratified split, in that order. */
async function splitImages(
  images: TrainingImages, opts: TrainOptions, log: (msg: string) => void,
): Promise<{ train: DatasetItem[]; val: DatasetItem[]; manifest: SplitManifest }> {
  const { scan, items } = images;
  if (opts.valGroups) {
    // Whole sources held out: what the model will meet in use (see data/groups.ts).
    const groups = await assignGroups(items, parseGroupSpec(opts.groups!), scan.root);
    const known = new Set(groups);
    const unknown = opts.valGroups.filter((g) => !known.has(g));
    if (unknown.length > 0) throw new OptionConflictError(['valGroups'], ([v]) => `${v}: no images in group(s) ${unknown.join(', ')} (groups: ${[...known].sort().join(', ')})`);
    const held = new Set(opts.valGroups);
    const train = items.filter((_, i) => !held.has(groups[i]!));
    const val = items.filter((_, i) => held.has(groups[i]!));
    return { train, val, manifest: splitManifest(train, val, { seed: null, valFraction: null }) };
  }
  if (opts.split) {
    const recorded = await readSplitFile(opts.split);
    const applied = applySplitManifest(items, recorded);
    if (applied.missing.length > 0) log(`warning: ${applied.missing.length} files of the recorded split are gone`);
    return { train: applied.train, val: applied.val, manifest: splitManifest(applied.train, applied.val, { seed: recorded.seed, valFraction: recorded.valFraction }) };
  }
  if (scan.layout === 'train-val') {
    const train = items.filter((i) => i.split === 'train');
    const val = items.filter((i) => i.split === 'val');
    return { train, val, manifest: splitManifest(train, val, { seed: null, valFraction: null }) };
  }
  const s = stratifiedSplit(items, { valFraction: opts.valFraction, seed: opts.seed });
  return { train: s.train, val: s.val, manifest: splitManifest(s.train, s.val, { seed: opts.seed, valFraction: opts.valFraction }) };
}

/** Pairs of near-identical images across the split (they inflate validation scores). */
async function nearDuplicatesAcrossSplit(
  items: readonly DatasetItem[], train: readonly DatasetItem[], val: readonly DatasetItem[],
): Promise<TrainResult['nearDuplicates']> {
  const hashes = new Map<string, string>();
  await Promise.all(items.map(async (it) => hashes.set(it.sha256, await perceptualHash(it.path))));
  const hashed = (list: readonly DatasetItem[]) => list.map((i) => ({ id: i.relPath, hash: hashes.get(i.sha256)! }));
  return findNearDuplicates(hashed(train), hashed(val), NEAR_DUPLICATE_DISTANCE).map((d) => ({ train: d.a, val: d.b, distance: d.distance }));
}

/** Stage 1: scan and check the images, split them, and look for near-duplicates across the split. */
export async function prepareData(dataDir: string, opts: TrainOptions, { log, stream }: TrainLog, cv?: CvCarryOver): Promise<TrainingData> {
  if (opts.valGroups && !opts.groups) throw new OptionConflictError(['valGroups', 'groups'], ([v, g]) => `${v} needs ${g} (where each image's group comes from)`);
  if (opts.valGroups && opts.split) throw new OptionConflictError(['valGroups', 'split'], ([v, sp]) => `${v} and ${sp} are two different splits: give one`);
  const images = await loadTrainingImages(dataDir, opts, stream, log);
  const { scan, items, skipped, classes } = images;
  if (cv && cv.classes.join('\0') !== classes.join('\0')) throw new OptionConflictError(['fromCv'], ([f]) => `${f}: the cv report's classes (${cv.classes.join(', ')}) are not this data's (${classes.join(', ')})`);

  const { train, val, manifest } = await splitImages(images, opts, log);
  if (train.length < 2) throw new Error(`not enough training images (${train.length})`);
  // valFraction 0 trains on every image for a fixed number of epochs (a final model after the
  // recipe was validated); anything else without validation images is a mistake.
  const allData = val.length === 0 && opts.valFraction === 0 && !opts.split && !opts.valGroups && scan.layout === 'classes';
  if (val.length === 0 && !allData) throw new OptionConflictError(['valFraction'], ([v]) => `no validation images: use ${v} > 0 or a val/ folder`);
  if (allData) log(`no validation split: training on all ${train.length} images for ${opts.epochs} epochs (no early stopping, no plateau schedule)`);

  const t = performance.now();
  const nearDuplicates = await nearDuplicatesAcrossSplit(items, train, val);
  const hashSeconds = (performance.now() - t) / 1000;
  if (nearDuplicates.length > 0) {
    log(`warning: ${nearDuplicates.length} near-duplicate pairs across train and validation (perceptual hash distance <= ${NEAR_DUPLICATE_DISTANCE}); see ${RUN_FILES.dataReport}`);
  }
  log(`data: ${classes.length} classes (${classes.join(', ')}), ${train.length} train / ${val.length} validation images, ${skipped.length} skipped`);
  return { images, train, val, manifest, allData, nearDuplicates, hashSeconds };
}

/** Trunk features of a run: `views` views per training image, one per validation image. */
export interface RunFeatures {
  trunk: TrunkFeatures;
  train: FeatureTable;
  val: Float32Array[];
  /** Views read from the cache or computed, and the time spent, over both sets. */
  stats: ExtractStats;
}

function addStats(a: ExtractStats, b: ExtractStats): ExtractStats {
  return {
    views: a.views + b.views,
    fromDisk: a.fromDisk + b.fromDisk,
    computed: a.computed + b.computed,
    decodeSeconds: a.decodeSeconds + b.decodeSeconds,
    trunkSeconds: a.trunkSeconds + b.trunkSeconds,
  };
}

/** Stage 2: load the backbone and extract (or read from the cache) the trunk features; frees the trunk after. */
export async function extractFeatures(m: ResolvedModel, opts: TrainOptions, data: TrainingData, stream: ProgressStream): Promise<RunFeatures> {
  const trunk = await openTrunkFeatures(m, opts);
  const { train, val } = await extractViews(trunk.store, data.train, data.val, Math.max(1, opts.views), stream);
  await trunk.dispose();
  return { trunk, train: train.features, val: val.features.map((v) => v[0]!), stats: addStats(train.stats, val.stats) };
}

const labelsOf = (items: readonly DatasetItem[], classes: readonly string[]): number[] => items.map((i) => classes.indexOf(i.label));

/** Stage 3: fit the top + head, logging each epoch to the run's metrics.jsonl (and the progress stream). */
async function fitRun(
  m: ResolvedModel, features: RunFeatures, data: TrainingData, run: RunFolder, opts: TrainOptions, stream: ProgressStream,
): Promise<FittedModel & { seconds: number }> {
  const t = performance.now();
  const { classes } = data.images;
  const fitted = await fitOnFeatures(
    {
      model: m,
      trunk: features.trunk,
      classes,
      train: features.train,
      trainLabels: labelsOf(data.train, classes),
      val: features.val,
      valLabels: labelsOf(data.val, classes),
      callbacks: [new JsonlLogger(run.metricsFile), ...(opts.verbose ? [new ProgressCallback(stream)] : [])],
      rng: createRng(opts.seed).fork('train'),
    },
    opts,
  );
  return { ...fitted, seconds: (performance.now() - t) / 1000 };
}

export interface Calibrated {
  /** Validation metrics of the weights kept; undefined without a validation split. */
  evaluation: ClassificationMetrics | undefined;
  calibration: RunCalibration;
  /** Validation logits (empty without a validation split). */
  valLogits: number[][];
}

/**
 * Stage 4: the final validation figures and temperature scaling on the validation logits
 * (calibrated confidences for --min-confidence); without a validation split, the given temperature.
 */
export function calibrate(
  fitted: FittedModel, features: RunFeatures, data: TrainingData, opts: Pick<TrainOptions, 'temperature'>, log: (msg: string) => void,
): Calibrated {
  if (data.allData) return { evaluation: undefined, calibration: { temperature: opts.temperature ?? 1, eceBefore: NaN, eceAfter: NaN }, valLogits: [] };
  const { classes } = data.images;
  const valLabels = labelsOf(data.val, classes);
  const final = evaluateFeatures(fitted.classifier, features.val, valLabels, classes, fitted.lossCfg);
  const evaluation = classificationMetrics(valLabels, final.probs.map(argmax), classes);
  const valLogits = predictLogits(fitted.classifier, features.val);
  const temperature = fitTemperature(valLogits, valLabels);
  const calibration = {
    temperature,
    eceBefore: expectedCalibrationError(softmaxWithTemperature(valLogits, 1), valLabels),
    eceAfter: expectedCalibrationError(softmaxWithTemperature(valLogits, temperature), valLabels),
  };
  log(`calibration: temperature ${temperature.toFixed(3)}, ECE ${calibration.eceBefore.toFixed(4)} -> ${calibration.eceAfter.toFixed(4)}`);
  return { evaluation, calibration, valLogits };
}

/** What the stages before writing the run produced. */
interface TrainedRun {
  dataDir: string;
  opts: TrainOptions;
  cv: CvCarryOver | undefined;
  model: ResolvedModel;
  data: TrainingData;
  features: RunFeatures;
  fitted: FittedModel & { seconds: number };
  calibrated: Calibrated;
  /** performance.now() at the start, for the total time. */
  tStart: number;
}

/** The model bundle of a run: the trained graph and everything a deployment needs to know. */
function runBundle({ model: m, features, data, fitted, calibrated, opts, cv }: TrainedRun): ModelBundle {
  const { spec } = m;
  const { evaluation, calibration } = calibrated;
  return {
    manifest: {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      createdAt: new Date().toISOString(),
      backbone: {
        id: spec.id,
        family: spec.family,
        weightsSha256: features.trunk.backbone.weightsSha256,
        weightsSource: spec.weights.kind === 'npm' ? `npm:${spec.weights.packageName}@${spec.weights.version}/${spec.weights.dir}` : spec.weights.url,
        cut: m.cut,
      },
      preprocessing: spec.preprocessing,
      classes: data.images.classes,
      topBlocks: m.topBlocks,
      head: { units: m.headUnits, dropout: opts.dropout },
      temperature: calibration.temperature,
      ...(cv ? { thresholds: cv.thresholds } : {}),
      // Temperature and thresholds were fitted on flip-averaged logits: the model must average too.
      ...(cv?.tta ? { tta: 'hflip' as const } : {}),
      info: {
        validation: evaluation ? { accuracy: evaluation.accuracy, macroF1: evaluation.macroAvg.f1, images: data.val.length } : null,
        calibration,
        trainImages: data.train.length,
        bestEpoch: fitted.bestEpoch,
        loss: fitted.lossCfg,
        ...(cv ? { groupCv: { report: cv.path, ...cv.summary } } : {}),
      },
    },
    graph: fitted.classifier.toGraph(),
  };
}

/** What data-report.json holds (besides the timings). */
function dataReportOf(data: TrainingData): DataReport {
  const { classes, skipped, scan } = data.images;
  return {
    classes,
    counts: Object.fromEntries(classes.map((c) => [c, { train: data.train.filter((i) => i.label === c).length, val: data.val.filter((i) => i.label === c).length }])),
    skipped,
    duplicates: scan.duplicates,
    conflicts: scan.conflicts,
    nearDuplicatesAcrossSplit: data.nearDuplicates,
  };
}

/**
 * Stage 5: the run folder. The model bundle first (then the classifier is freed), then config,
 * split, evaluation, data report with the stage timings, and the HTML report of the validation split.
 */
async function writeRun(run: RunFolder, trained: TrainedRun): Promise<TrainResult> {
  const { dataDir, opts, model: m, data, features, fitted, tStart } = trained;
  const { evaluation, calibration, valLogits } = trained.calibrated;
  const { bestEpoch, history, epochsRun } = fitted;
  const { classes, scan, skipped } = data.images;
  const bundle = runBundle(trained);
  await run.writeModel(bundle);
  fitted.classifier.dispose();
  await run.writeConfig({ dataDir: resolve(dataDir), ...recordedOptions(opts), topBlocks: m.topBlocks, cut: m.cut, headUnits: m.headUnits });
  await run.writeSplit(data.manifest);
  if (evaluation) await run.writeEvaluation(evaluation, { bestEpoch, calibration });
  const timings: StageTimings = {
    scanSeconds: data.images.scanSeconds,
    checkSeconds: data.images.checkSeconds,
    hashSeconds: data.hashSeconds,
    backboneSeconds: features.trunk.seconds,
    decodeSeconds: features.stats.decodeSeconds,
    trunkSeconds: features.stats.trunkSeconds,
    featureViewsComputed: features.stats.computed,
    featureViewsCached: features.stats.fromDisk,
    trainSeconds: fitted.seconds,
    epochs: epochsRun,
    secondsPerEpoch: history.reduce((a, h) => a + h.seconds, 0) / Math.max(1, epochsRun),
    totalSeconds: (performance.now() - tStart) / 1000,
  };
  const dataReport = dataReportOf(data);
  await run.writeDataReport(dataReport, timings);
  if (evaluation) {
    // The HTML report of the validation split, from the same logits the figures above came from.
    const probs = softmaxWithTemperature(valLogits, calibration.temperature);
    const report = buildEvaluationReport({
      classes,
      predictions: data.val.map((it, i) => ({ path: it.relPath, label: it.label, predicted: classes[argmax(probs[i]!)]!, probabilities: probs[i]! })),
      temperature: calibration.temperature,
      model: { path: run.dir, backbone: m.spec.id },
      data: { dir: dataDir, subset: 'val', skipped },
      // What metrics.jsonl and data-report.json now hold, from memory rather than read back.
      run: { runDir: run.dir, epochs: history, bestEpoch, dataReport, hasSplit: true },
    });
    const heatmaps = opts.heatmaps ? await mistakeHeatmaps(run.dir, report.mistakes, scan.root) : undefined;
    await run.writeReport(report, scan.root, heatmaps);
  }
  return { runDir: run.dir, calibration, bundle, evaluation, history, bestEpoch, timings, skipped, nearDuplicates: data.nearDuplicates, split: data.manifest };
}

/**
 * Heat maps of the report's mistakes, by the model just written (run through ONNX Runtime like
 * any user's). A failure here costs the report its heat maps, never the run.
 */
function mistakeHeatmaps(runDir: string, mistakes: readonly { path: string }[], root: string): Promise<ReadonlyMap<string, GalleryHeatmap> | undefined> {
  if (mistakes.length === 0) return Promise.resolve(undefined);
  const items = mistakes.slice(0, GALLERY_LIMIT).map((m) => ({ key: m.path, file: join(root, m.path) }));
  return heatmapsOfModel(runDir, items).catch(() => undefined);
}

/** A run folder must be new or empty, unless `overwrite` (whose run files are cleared when the run starts writing). */
async function checkRunTarget(runDir: string, overwrite: boolean): Promise<void> {
  const there = await RunFolder.contents(runDir);
  if (there.length === 0 || overwrite) return;
  const shown = there.slice(0, 4).join(', ') + (there.length > 4 ? ', ...' : '');
  throw new OptionConflictError(['out', 'overwrite'], ([o, w]) => `${o} ${runDir} is not empty (${shown}); give ${w} to replace the run in it, or another ${o}`);
}

/**
 * Trains a classifier on `dataDir` and writes its run folder. `options.callbacks` (fastai's `cbs`)
 * get every training event beside the built-in callbacks.
 */
export async function train(dataDir: string, params: TrainParams = {}): Promise<TrainResult> {
  trainOptions(params); // every option checked before the cv report is read
  const fromCv = await applyFromCv(params);
  const { cv } = fromCv;
  const opts = trainOptions(fromCv.params);
  const log = trainLog(opts);
  const tStart = performance.now();
  const m = resolveModel(opts);
  checkFromCvModel(cv, m);
  const runDir = opts.out ?? timestampedRunDir(m.spec.id);
  await checkRunTarget(runDir, opts.overwrite);

  const data = await prepareData(dataDir, opts, log, cv);
  const features = await extractFeatures(m, opts, data, log.stream);
  // --overwrite: the earlier run's files go now, so nothing of it (metrics, evaluation, report) is mixed with this one.
  const run = await RunFolder.create(runDir, { clear: opts.overwrite });
  const fitted = await fitRun(m, features, data, run, opts, log.stream).catch((err: unknown) => {
    if (err instanceof TrainingDivergedError) err.message += `; no model was saved (${run.metricsFile} has the epochs so far)`;
    throw err;
  });
  const calibrated = calibrate(fitted, features, data, opts, log.log);
  return writeRun(run, { dataDir, opts, cv, model: m, data, features, fitted, calibrated, tStart });
}
