/**
 * The models a server holds: the one `/v1/classify` runs (in worker threads, see pool.ts) and the
 * on-device one it hands to the browser as a single ONNX file. Both are found like `--model`
 * everywhere else (a shipped name, a bundle or run folder, or an exported .onnx) and described by
 * an id, a version and what their bundle's card says.
 *
 * Id and version: see infer/identity.ts.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { locateClassifierOnnx } from '../infer/classifier.js';
import { identify, type ModelIdentity } from '../infer/identity.js';
import { resolveModelPath } from '../infer/load.js';
import { parseClassifierMetadata, readOnnxMetadata, type ClassifierInfo } from '../infer/onnx-meta.js';
import type { EnsembleManifest } from '../infer/ensemble.js';
import type { BundleManifest } from '../model/bundle.js';
import { sha256Hex } from '../util/hash.js';
import { definedOnly } from '../util/defined.js';

/** Validation figures from a bundle's manifest (what its MODEL_CARD.md reports). */
export interface ModelMetrics {
  accuracy?: number;
  macroF1?: number;
  /** How the figures were measured, e.g. 'stratified 80/20, seed 42 (632 train / 158 validation images)'. */
  split?: string;
  /** Row = true class, column = predicted, in `classes` order. */
  confusion?: number[][];
  classes?: string[];
  /** Group cross-validation only: the source the model did worst on when it was held out. */
  worstGroup?: { group: string; accuracy: number; images: number };
}

export interface LoadedModel extends ModelIdentity {
  info: ClassifierInfo;
  /** Bundle or ensemble folder, or .onnx file. */
  path: string;
  /** The assembled classifier ONNX (a cached file, or bytes when there is no cache). */
  onnx: { path: string } | { bytes: Uint8Array };
  metrics: ModelMetrics | null;
  /** MODEL_CARD.md next to the bundle, if there is one. */
  card: string | null;
}

/** How a model is loaded; its backbones' weights come from env.weightsDir / PHONESIDE_WEIGHTS_<ID>, the cache or a download. */
export interface ModelLoadOptions {
  /** Use the ONNX cache under env.cacheDir (default true). */
  cache?: boolean;
  /** Test-time augmentation, as LoadClassifierOptions.tta (default: as the model says). */
  tta?: boolean;
  /** int8 and its calibration / gate data, as in LoadClassifierOptions. */
  precision?: 'fp32' | 'int8';
  calibration?: string;
  gateData?: string;
  force?: boolean;
}

const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);

/** The group cross-validation figures a model was made with (train/ensemble --from-cv), if any. */
function groupCvMetrics(g: unknown): ModelMetrics | null {
  if (typeof g !== 'object' || g === null) return null;
  const o = g as { pooled?: { accuracy?: unknown; macroF1?: unknown; images?: unknown; worstGroup?: ModelMetrics['worstGroup']; metrics?: { confusion?: unknown } }; folds?: unknown[]; mode?: unknown; classes?: unknown };
  const p = o.pooled;
  if (!p || num(p.accuracy) === undefined) return null;
  return {
    accuracy: num(p.accuracy)!,
    ...(num(p.macroF1) !== undefined ? { macroF1: num(p.macroF1)! } : {}),
    split: `group cross-validation, ${String(o.mode)} (${Array.isArray(o.folds) ? o.folds.length : '?'} folds, ${String(p.images)} images): each image predicted by a model that never saw its source`,
    ...(Array.isArray(p.metrics?.confusion) ? { confusion: p.metrics.confusion as number[][] } : {}),
    ...(Array.isArray(o.classes) ? { classes: o.classes as string[] } : {}),
    ...(p.worstGroup ? { worstGroup: p.worstGroup } : {}),
  };
}

function metricsOf(manifest: Pick<BundleManifest | EnsembleManifest, 'info'> | undefined): ModelMetrics | null {
  const fromCv = groupCvMetrics(manifest?.info?.['groupCv']);
  if (fromCv) return fromCv;
  const v = manifest?.info?.['validation'];
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const m: ModelMetrics = {};
  if (num(o['accuracy']) !== undefined) m.accuracy = num(o['accuracy'])!;
  if (num(o['macroF1']) !== undefined) m.macroF1 = num(o['macroF1'])!;
  if (typeof o['split'] === 'string') m.split = o['split'];
  if (Array.isArray(o['confusion'])) m.confusion = o['confusion'] as number[][];
  if (Array.isArray(o['classes'])) m.classes = o['classes'] as string[];
  return Object.keys(m).length > 0 ? m : null;
}

async function loadOnnxFile(path: string, requested: string | undefined): Promise<LoadedModel> {
  const info = parseClassifierMetadata(await readOnnxMetadata(path), path);
  return {
    ...(await identify({ info, source: { path }, files: [path] }, requested)),
    info,
    path,
    onnx: { path },
    metrics: null,
    card: await readCard(dirname(path)),
  };
}

/** The MODEL_CARD.md in `dir`, or null when there is none. */
async function readCard(dir: string): Promise<string | null> {
  const card = join(dir, 'MODEL_CARD.md');
  return existsSync(card) ? readFile(card, 'utf8') : null;
}

/** Finds (and assembles, or takes from the cache) the classifier named by `model`; no session is made. */
export async function loadModel(model: string | undefined, opts: ModelLoadOptions = {}): Promise<LoadedModel> {
  const path = resolveModelPath(model);
  const found = await locateClassifierOnnx(path, definedOnly(opts, ['cache', 'tta', 'precision', 'calibration', 'gateData', 'force']));
  if (found.source.kind === 'onnx') return loadOnnxFile(found.source.path, model);
  const dir = found.source.path;
  return {
    ...(await identify(found, model)),
    info: found.info,
    path: dir,
    onnx: found.onnx,
    metrics: metricsOf(found.manifest ?? found.ensemble),
    card: await readCard(dir),
  };
}

/** The model's ONNX as bytes (reads the cached file). */
export async function onnxBytes(m: LoadedModel): Promise<Uint8Array> {
  return 'bytes' in m.onnx ? m.onnx.bytes : new Uint8Array(await readFile(m.onnx.path));
}

/** What `GET /models/device.json` answers: all the browser needs to run the ONNX file. */
export interface DeviceModelJson {
  id: string;
  version: string;
  classes: string[];
  /** x = (pixel - mean) / std per channel, pixels 0..255, channels in `channelOrder`, NCHW. */
  preprocessing: Pick<ClassifierInfo['preprocessing'], 'size' | 'channelOrder' | 'mean' | 'std' | 'resize'>;
  thresholds: Record<string, number>;
  temperature: number;
  /** Where the ONNX file is; its output `output` [N, classes] is already probabilities. */
  onnx: string;
  /** Size of the ONNX file in bytes. */
  bytes: number;
  sha256: string;
  /** 'int8': a statically quantized graph (--device-precision int8); the page then runs it on wasm. */
  precision: 'fp32' | 'int8';
}

export function deviceJson(m: LoadedModel, bytes: Uint8Array, url: string): DeviceModelJson {
  const p = m.info.preprocessing;
  return {
    id: m.id,
    version: m.version,
    classes: m.info.classes,
    preprocessing: { size: p.size, channelOrder: p.channelOrder, mean: p.mean, std: p.std, resize: p.resize },
    thresholds: m.info.thresholds,
    temperature: m.info.temperature,
    onnx: url,
    bytes: bytes.length,
    sha256: sha256Hex(bytes),
    precision: m.info.precision ?? 'fp32',
  };
}
