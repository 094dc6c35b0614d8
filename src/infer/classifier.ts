/**
 * A trained classifier run end to end by ONNX Runtime alone (no tfjs): the bundle's trained
 * layers are joined to the backbone's frozen trunk and emitted as one ONNX graph, or an exported
 * ONNX file (see infer/export.ts) is loaded as it is. Assembled graphs are cached on disk by the
 * bundle's content, so loading the same bundle again skips the backbone and the assembly.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isFile } from '../util/fs.js';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { getBackbone, type Preprocessing } from '../backbones/registry.js';
import { loadBackbone } from '../backbones/load.js';
import { normalizeToCHW } from '../backbones/preprocess.js';
import { loadForModel } from '../data/image.js';
import { env } from '../env.js';
import { BUNDLE_FORMAT, loadBundle, type BundleManifest, type ModelBundle } from '../model/bundle.js';
import { assembleClassifierGraph } from '../model/assemble.js';
import { buildTrunkModel } from '../onnx/from-graph.js';
import { classifierMetadata, parseClassifierMetadata, parseThresholds, readOnnxMetadata, ONNX_FORMAT_VERSION, type ClassifierInfo } from './onnx-meta.js';
import { emitterFingerprint, packageVersion } from './package.js';

export interface LoadClassifierOptions {
  /** Override folder for the backbone's ImageNet weights. */
  weights?: string;
  /** ONNX Runtime intra-op threads (0 = all cores). */
  threads?: number;
  /** Reuse / store the assembled ONNX graph under `<env.cacheDir>/models/` (default true). */
  cache?: boolean;
}

export interface Prediction {
  label: string;
  probabilities: Record<string, number>;
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
  kind: 'bundle' | 'onnx';
  path: string;
  /** For bundles: the cached ONNX file used or written, if any. */
  cachedOnnx?: string;
  /** For bundles: whether the cache already held the graph (no assembly was done). */
  cacheHit?: boolean;
}

const sessionOptions = (threads: number | undefined): ort.InferenceSession.SessionOptions => ({
  intraOpNumThreads: threads ?? 0,
  graphOptimizationLevel: 'all',
});

/** The ClassifierInfo of a bundle manifest (thresholds validated against its classes). */
export function infoFromManifest(manifest: BundleManifest, createdAt = manifest.createdAt): ClassifierInfo {
  const raw: unknown = manifest.thresholds;
  const thresholds = parseThresholds(raw, 'manifest.json');
  for (const k of Object.keys(thresholds)) {
    if (!manifest.classes.includes(k)) throw new Error(`manifest.json: threshold for unknown class '${k}' (classes: ${manifest.classes.join(', ')})`);
  }
  return {
    classes: manifest.classes,
    preprocessing: manifest.preprocessing,
    temperature: manifest.temperature,
    thresholds,
    backbone: { id: manifest.backbone.id, weightsSha256: manifest.backbone.weightsSha256 },
    createdAt,
  };
}

/**
 * The whole classifier (trunk + trained layers + softmax, temperature folded) as ONNX bytes with
 * phoneside's metadata: input `input` [N, 3, H, W] float32, output `output` [N, classes].
 */
export async function buildClassifierOnnx(
  bundle: ModelBundle,
  opts: { weights?: string; createdAt?: string } = {},
): Promise<{ bytes: Uint8Array; info: ClassifierInfo }> {
  const info = infoFromManifest(bundle.manifest, opts.createdAt ?? new Date().toISOString());
  const spec = getBackbone(bundle.manifest.backbone.id);
  const backbone = await loadBackbone(spec, opts.weights ? { path: opts.weights } : {});
  const graph = assembleClassifierGraph(backbone, bundle, { softmax: true });
  return { bytes: buildTrunkModel(graph, { metadata: classifierMetadata(info) }), info };
}

/** Folder holding the bundle's manifest.json: `dir` itself or its `model/`; undefined if neither. */
async function findBundleDir(dir: string): Promise<string | undefined> {
  if (await isFile(join(dir, 'manifest.json'))) return dir;
  if (await isFile(join(dir, 'model', 'manifest.json'))) return join(dir, 'model');
  return undefined;
}

let codeDigest: string | undefined;

/** Cache key: the bundle's bytes plus the code and version that turn it into ONNX. */
function cacheKey(manifestBytes: Uint8Array, weightsBytes: Uint8Array): string {
  codeDigest ??= createHash('sha256').update(emitterFingerprint()).digest('hex');
  return createHash('sha256')
    .update(`phoneside-classifier-onnx/${ONNX_FORMAT_VERSION}/${packageVersion()}/${codeDigest}\n`)
    .update(manifestBytes)
    .update('\0')
    .update(weightsBytes)
    .digest('hex');
}

/** Writes `bytes` to `path` atomically (temp file + rename), creating the folder. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await mkdir(dirname(path), { recursive: true });
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** A classifier's whole ONNX graph, found or assembled, before any session is made. */
export interface ClassifierOnnx {
  info: ClassifierInfo;
  source: ClassifierSource;
  /** The bundle's manifest (undefined for an exported ONNX file). */
  manifest?: BundleManifest;
  /** The cached or exported file, or the assembled bytes when nothing could be cached. */
  onnx: { path: string } | { bytes: Uint8Array };
}

async function onnxFileClassifier(path: string): Promise<ClassifierOnnx> {
  const info = parseClassifierMetadata(await readOnnxMetadata(path), path);
  return { info, source: { kind: 'onnx', path }, onnx: { path } };
}

async function assembleBundle(bundle: ModelBundle, path: string, opts: Pick<LoadClassifierOptions, 'weights'>, cachePath?: string): Promise<ClassifierOnnx> {
  const { bytes } = await buildClassifierOnnx(bundle, { weights: opts.weights });
  let cachedOnnx: string | undefined;
  if (cachePath !== undefined) {
    try {
      await writeFileAtomic(cachePath, bytes);
      cachedOnnx = cachePath;
    } catch {
      // A read-only or full cache only costs the next load an assembly.
    }
  }
  const source: ClassifierSource = { kind: 'bundle', path, cacheHit: false, ...(cachedOnnx ? { cachedOnnx } : {}) };
  return { info: infoFromManifest(bundle.manifest), source, manifest: bundle.manifest, onnx: cachedOnnx ? { path: cachedOnnx } : { bytes } };
}

/**
 * Finds the classifier ONNX of `model` (bundle, run folder, exported `.onnx`, or a folder holding a
 * `model.onnx`): the cached graph of a bundle, else assembled (and cached) from the bundle and its
 * backbone's weights. No ONNX Runtime session is made, so callers that run the model elsewhere
 * (the server's worker threads) pay for one session, not two.
 */
export async function locateClassifierOnnx(model: string, opts: Pick<LoadClassifierOptions, 'weights' | 'cache'> = {}): Promise<ClassifierOnnx> {
  if (await isFile(model)) return onnxFileClassifier(model);
  const dir = await findBundleDir(model);
  if (dir === undefined) {
    if (await isFile(join(model, 'model.onnx'))) return onnxFileClassifier(join(model, 'model.onnx'));
    return assembleBundle(await loadBundle(model), model, opts); // loadBundle gives the error
  }
  if (opts.cache === false) return assembleBundle(await loadBundle(dir), dir, opts);

  const [manifestBytes, weightsBytes] = await Promise.all([readFile(join(dir, 'manifest.json')), readFile(join(dir, 'weights.bin'))]);
  const cached = join(env.cacheDir, 'models', `${cacheKey(manifestBytes, weightsBytes)}.onnx`);
  if (await isFile(cached)) {
    // The key covers the manifest bytes, so this manifest was loaded and assembled before.
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as BundleManifest & { graph?: unknown };
    // A cheap sanity check (a few small reads) catches a truncated or foreign file before anyone
    // builds a session on it; Classifier.load also rebuilds if a session cannot be made.
    const readable = await readOnnxMetadata(cached).then((meta) => parseClassifierMetadata(meta, cached)).then(() => true, () => false);
    if (manifest.format === BUNDLE_FORMAT && readable) {
      const { graph: _graph, ...rest } = manifest;
      return { info: infoFromManifest(rest), source: { kind: 'bundle', path: dir, cachedOnnx: cached, cacheHit: true }, manifest: rest, onnx: { path: cached } };
    }
    if (!readable) await rm(cached, { force: true });
  }
  return assembleBundle(await loadBundle(dir), dir, opts, cached);
}

export class Classifier {
  private constructor(
    /** Classes, preprocessing, thresholds, temperature and backbone of the model. */
    readonly info: ClassifierInfo,
    private readonly session: ort.InferenceSession,
    readonly source: ClassifierSource,
    /** The bundle's manifest (undefined for an exported ONNX file). */
    readonly manifest?: BundleManifest,
  ) {}

  /**
   * Loads a bundle folder, a run folder (holding `model/`), an exported `.onnx` file, or a folder
   * holding only a `model.onnx`.
   */
  static async load(model: string, opts: LoadClassifierOptions = {}): Promise<Classifier> {
    const found = await locateClassifierOnnx(model, opts);
    try {
      return await Classifier.open(found, opts);
    } catch (err) {
      if (!found.source.cacheHit) throw err;
      await rm(found.source.cachedOnnx!, { force: true }); // unreadable cache entry: rebuild it
      return Classifier.open(await locateClassifierOnnx(model, opts), opts);
    }
  }

  /** Loads an ONNX file written by `phoneside export` (classes and preprocessing from its metadata). */
  static async fromOnnx(path: string, opts: Pick<LoadClassifierOptions, 'threads'> = {}): Promise<Classifier> {
    return Classifier.open(await onnxFileClassifier(path), opts);
  }

  private static async open(found: ClassifierOnnx, opts: Pick<LoadClassifierOptions, 'threads'>): Promise<Classifier> {
    const so = sessionOptions(opts.threads);
    const session = 'path' in found.onnx ? await ort.InferenceSession.create(found.onnx.path, so) : await ort.InferenceSession.create(found.onnx.bytes, so);
    if (!session.inputNames.includes('input') || !session.outputNames.includes('output')) {
      await session.release();
      throw new Error(`${found.source.path}: expected an input named 'input' and an output named 'output'`);
    }
    return new Classifier(found.info, session, found.source, found.manifest);
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
    return Array.from({ length: n }, (_, i) => Array.from(probs.subarray(i * k, (i + 1) * k)));
  }

  /** Class probabilities for images given as paths or encoded bytes, in input order. */
  async probabilities(images: readonly (string | Uint8Array)[]): Promise<number[][]> {
    const batch = await this.decode(images);
    const failed = batch.errors.find((e) => e !== undefined);
    if (failed) throw failed;
    return this.run(batch);
  }

  async classify(image: string | Uint8Array): Promise<Prediction> {
    const [p] = await this.probabilities([image]);
    return toPrediction(this.classes, p!);
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

export function toPrediction(classes: readonly string[], probs: readonly number[]): Prediction {
  let best = 0;
  probs.forEach((v, i) => {
    if (v > probs[best]!) best = i;
  });
  return { label: classes[best]!, probabilities: Object.fromEntries(classes.map((c, i) => [c, probs[i]!])) };
}
