/**
 * int8 classifiers: the whole fp32 classifier graph quantized statically (QDQ, see
 * onnx/quantize.ts), calibrated on a few hundred labelled photos and then held to a gate on
 * every photo of a gate data set: top-label agreement with fp32 >= 99.5 %, and accuracy (top
 * class, no thresholds) within 0.5 points of fp32's. A model that fails is refused unless
 * `force`. Used by export (`--precision int8`) and by Classifier.load (predict, serve), which
 * caches the result.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { normalizeToCHW } from '../backbones/preprocess.js';
import { isSupportedImagePath, loadForModel } from '../data/image.js';
import { calibrateRanges, type CalibrationMethod } from '../onnx/calibrate.js';
import { defaultExclude, graphSha256, quantizableConvs, quantizeModel, tensorsToCalibrate, type QuantizeSummary, type TensorRange } from '../onnx/quantize.js';
import { argmax } from '../util/argmax.js';
import { parseCsv } from '../util/csv.js';
import { byCodePoint } from '../util/list-dir.js';
import { createRng } from '../util/rng.js';
import type { ClassifierInfo } from './onnx-meta.js';

export type Precision = 'fp32' | 'int8';
export const PRECISIONS: readonly Precision[] = ['fp32', 'int8'];

/** The gate: int8 must agree with fp32 on at least this share of the images... */
export const GATE_MIN_AGREEMENT = 0.995;
/** ...and its accuracy may be at most this much (a fraction) below fp32's. */
export const GATE_MAX_ACCURACY_DROP = 0.005;
/** Calibration images taken from the calibration folder by default. */
export const DEFAULT_CALIBRATION_IMAGES = 256;
/** Calibration: min/max over the calibration images (what kept the shipped models' answers). */
const CALIBRATION_METHOD: CalibrationMethod = 'minmax';
/**
 * When the all-int8 graph fails the gate: how many of the most sensitive convolutions are kept in
 * fp32 in the next tries (MobileNetV2 0.35 fails with all of them quantized, 98.60 % agreement,
 * and passes with its 8 most sensitive in fp32: 99.61 %).
 */
const KEEP_FP32_STEPS = [4, 8, 12] as const;
/** Calibration images used to rank convolutions by sensitivity (one run of them per convolution). */
const SENSITIVITY_IMAGES = 64;

/** The phones data set next to the repository (../shared/datasets/phones), when it is there. */
export function defaultQuantizationData(): string | undefined {
  const candidates = [fileURLToPath(new URL('../../../shared/datasets/phones', import.meta.url)), resolve('../shared/datasets/phones')];
  return candidates.find((d) => existsSync(d));
}

export interface LabelledImage {
  path: string;
  /** The class (the manifest's label or the image's folder), if known. */
  label?: string;
}

/**
 * The images of a folder: the rows of its manifest.csv (file,label,...) when it has one, else
 * every image below it, labelled by its first folder (back/x.jpg -> back) when it is in one.
 * Sorted by path, so the same folder always gives the same list.
 */
export async function listLabelledImages(dir: string): Promise<LabelledImage[]> {
  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw new QuantizationGateError(`${dir} is not a folder of photos`);
  const manifest = join(dir, 'manifest.csv');
  if (existsSync(manifest)) {
    const rows = parseCsv(await readFile(manifest, 'utf8')).filter((r) => r.some((c) => c.trim() !== ''));
    const head = (rows[0] ?? []).map((s) => s.trim());
    const fi = head.indexOf('file');
    const li = head.indexOf('label');
    if (fi >= 0) {
      return rows
        .slice(1)
        .map((c) => ({ path: join(dir, (c[fi] ?? '').trim()), ...(li >= 0 && c[li] ? { label: c[li].trim() } : {}) }))
        .filter((x) => isSupportedImagePath(x.path))
        .sort((a, b) => byCodePoint(a.path, b.path));
    }
  }
  const out: LabelledImage[] = [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (!isSupportedImagePath(e.name)) continue;
    const path = join(e.parentPath, e.name);
    if (!e.isFile() && !(e.isSymbolicLink() && (await stat(path).catch(() => undefined))?.isFile())) continue;
    const parts = relative(dir, path).split(sep);
    out.push({ path, ...(parts.length > 1 ? { label: parts[0]! } : {}) });
  }
  return out.sort((a, b) => byCodePoint(a.path, b.path));
}

/** `n` images spread over the labels (seeded shuffle within each label, then taken in turn). */
export function pickCalibrationImages(images: readonly LabelledImage[], n: number, seed = 12): LabelledImage[] {
  const rng = createRng(seed);
  const byLabel = new Map<string, LabelledImage[]>();
  for (const im of images) {
    const l = byLabel.get(im.label ?? '');
    if (l) l.push(im);
    else byLabel.set(im.label ?? '', [im]);
  }
  const lists = [...byLabel.values()];
  for (const a of lists) {
    for (let i = a.length - 1; i > 0; i--) {
      const j = rng.int(0, i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
  }
  const out: LabelledImage[] = [];
  for (let k = 0; out.length < n && lists.some((l) => k < l.length); k++) {
    for (const l of lists) if (k < l.length && out.length < n) out.push(l[k]!);
  }
  return out;
}

/** Decoded, normalised batches of images for a classifier's input. */
async function* batchesOf(images: readonly LabelledImage[], info: ClassifierInfo, batch: number): AsyncGenerator<{ input: Float32Array; n: number; images: LabelledImage[] }> {
  const pre = info.preprocessing;
  const per = 3 * pre.size * pre.size;
  for (let i = 0; i < images.length; i += batch) {
    const part = images.slice(i, i + batch);
    const x = new Float32Array(part.length * per);
    await Promise.all(
      part.map(async (im, k) => {
        const rgb = await loadForModel(im.path, pre.size, pre.resize);
        normalizeToCHW(rgb.data, pre, x, k * per);
      }),
    );
    yield { input: x, n: part.length, images: part };
  }
}

const feedOf = (x: Float32Array, n: number, size: number): Record<string, ort.Tensor> => ({ input: new ort.Tensor('float32', x, [n, 3, size, size]) });

/** What the gate measured. */
export interface GateReport {
  /** The gate data folder and the number of images run. */
  data: string;
  images: number;
  /** Share of images whose top class is the same in int8 and fp32. */
  agreement: number;
  /** Largest |p_int8 - p_fp32| over every image and class. */
  maxAbsDelta: number;
  /** Images with a label among the classes, on which accuracies are measured. */
  labelled: number;
  /** Top-class accuracies (no thresholds), when there are labelled images. */
  accuracyFp32?: number;
  accuracyInt8?: number;
  passed: boolean;
  /** Why it failed (empty when it passed). */
  failures: string[];
}

export interface QuantizationRecord {
  calibration: { data: string; images: number; method: CalibrationMethod };
  gate?: GateReport;
  /**
   * Convolutions kept in fp32 because int8 failed the gate with them quantized: the most
   * sensitive ones (each quantized alone, largest mean |Δp| on calibration images) first.
   */
  keptFp32?: string[];
  /** Every quantization tried, in order (fp32-kept count and its gate figures); the last is the one used. */
  attempts?: { keptFp32: number; agreement: number; accuracyInt8?: number; passed: boolean }[];
  /** Nodes quantized (by op type), kept in fp32, activation tensors with Q/DQ pairs. */
  summary: QuantizeSummary;
  /** Set when the gate failed or could not run and `force` wrote the model anyway. */
  forced?: boolean;
  /** Set when the graph was made from a shipped int8 recipe (that file); `gate` is then what was measured when it was shipped. */
  recipe?: string;
}

export class QuantizationGateError extends Error {
  override readonly name = 'QuantizationGateError';
  constructor(
    message: string,
    readonly record?: QuantizationRecord,
  ) {
    super(message);
  }
}

export interface QuantizeClassifierOptions {
  /** Folder of calibration images (default the phones data set next to the repository). */
  calibration?: string;
  /** Images taken from it (default 256, spread over the labels). */
  calibrationImages?: number;
  /** Folder of labelled images for the gate (default: the phones data set when present). */
  gateData?: string;
  /** Write / use the model even when the gate fails or cannot run. */
  force?: boolean;
  /** ONNX Runtime threads (0 = all cores). */
  threads?: number;
  /** Progress lines (default none). */
  log?: (line: string) => void;
}

/** Formats the gate's figures on one line. */
export function formatGate(g: GateReport): string {
  const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;
  const acc = g.accuracyFp32 !== undefined ? `, accuracy fp32 ${pct(g.accuracyFp32)} int8 ${pct(g.accuracyInt8!)} (${g.labelled} labelled)` : '';
  return `agreement with fp32 ${pct(g.agreement)} of ${g.images} images (${g.data}), max |Δp| ${g.maxAbsDelta.toFixed(4)}${acc}`;
}

/** Runs both graphs on every image of `dir` and measures the gate. */
export async function runGate(fp32: Uint8Array, int8: Uint8Array, info: ClassifierInfo, dir: string, opts: Pick<QuantizeClassifierOptions, 'threads' | 'log'> = {}): Promise<GateReport> {
  const images = await listLabelledImages(dir);
  if (images.length === 0) throw new QuantizationGateError(`the gate data ${dir} holds no images`);
  const so: ort.InferenceSession.SessionOptions = { intraOpNumThreads: opts.threads ?? 0, graphOptimizationLevel: 'all' };
  const a = await ort.InferenceSession.create(fp32, so);
  const b = await ort.InferenceSession.create(int8, so);
  const k = info.classes.length;
  let agree = 0;
  let maxAbsDelta = 0;
  let labelled = 0;
  let rightA = 0;
  let rightB = 0;
  let done = 0;
  try {
    for await (const batch of batchesOf(images, info, 16)) {
      const feed = feedOf(batch.input, batch.n, info.preprocessing.size);
      const pa = (await a.run(feed))['output']!.data as Float32Array;
      const pb = (await b.run(feed))['output']!.data as Float32Array;
      for (let i = 0; i < batch.n; i++) {
        for (let j = 0; j < k; j++) {
          const d = Math.abs(pa[i * k + j]! - pb[i * k + j]!);
          if (!(d <= maxAbsDelta)) maxAbsDelta = Number.isFinite(d) ? d : Infinity;
        }
        const ia = argmax(pa.subarray(i * k, (i + 1) * k));
        const ib = argmax(pb.subarray(i * k, (i + 1) * k));
        if (ia === ib) agree++;
        const label = batch.images[i]!.label;
        const li = label === undefined ? -1 : info.classes.indexOf(label);
        if (li >= 0) {
          labelled++;
          if (ia === li) rightA++;
          if (ib === li) rightB++;
        }
      }
      done += batch.n;
      if (done % 256 < batch.n) opts.log?.(`gate: ${done}/${images.length} images`);
    }
  } finally {
    await a.release();
    await b.release();
  }
  const report: GateReport = { data: dir, images: images.length, agreement: agree / images.length, maxAbsDelta, labelled, passed: true, failures: [] };
  if (labelled > 0) {
    report.accuracyFp32 = rightA / labelled;
    report.accuracyInt8 = rightB / labelled;
  }
  if (!(report.agreement >= GATE_MIN_AGREEMENT)) report.failures.push(`agreement ${(100 * report.agreement).toFixed(2)}% < ${100 * GATE_MIN_AGREEMENT}%`);
  if (report.accuracyFp32 !== undefined && !(report.accuracyInt8! >= report.accuracyFp32 - GATE_MAX_ACCURACY_DROP - 1e-12)) {
    report.failures.push(`accuracy ${(100 * (report.accuracyFp32 - report.accuracyInt8!)).toFixed(2)} points below fp32 (at most ${100 * GATE_MAX_ACCURACY_DROP})`);
  }
  if (!Number.isFinite(maxAbsDelta)) report.failures.push('int8 output is not finite');
  report.passed = report.failures.length === 0;
  return report;
}

/** The calibration folder and gate folder to use (options, else the phones set when present). */
export function quantizationData(opts: Pick<QuantizeClassifierOptions, 'calibration' | 'gateData'>): { calibration?: string; gateData?: string } {
  const dflt = defaultQuantizationData();
  const calibration = opts.calibration ?? dflt;
  const gateData = opts.gateData ?? dflt;
  return { ...(calibration !== undefined ? { calibration } : {}), ...(gateData !== undefined ? { gateData } : {}) };
}

/**
 * What decides an int8 graph besides the fp32 one: the calibration images (paths, sizes and
 * mtimes), their number and method, the gate folder and `force`; for the cache key.
 */
export async function quantizationKey(opts: QuantizeClassifierOptions): Promise<string> {
  const { calibration, gateData } = quantizationData(opts);
  const h = createHash('sha256').update(`int8/qdq-v2/${CALIBRATION_METHOD}/${opts.calibrationImages ?? DEFAULT_CALIBRATION_IMAGES}/force=${opts.force === true}\n`);
  if (calibration !== undefined) {
    const picked = pickCalibrationImages(await listLabelledImages(calibration), opts.calibrationImages ?? DEFAULT_CALIBRATION_IMAGES);
    for (const im of picked) {
      const s = await stat(im.path);
      h.update(`${resolve(im.path)}\0${s.size}\0${s.mtimeMs}\n`);
    }
  }
  h.update(`gate=${gateData === undefined ? '' : resolve(gateData)}\n`);
  return h.digest('hex');
}

/**
 * The int8 graph of a classifier's fp32 graph: calibrated on `calibration`, then gated on
 * `gateData`. Throws QuantizationGateError (with the figures) when the gate fails, or when
 * there is no data to calibrate on or to gate with, unless `force`.
 */
export async function quantizeClassifier(fp32: Uint8Array, info: ClassifierInfo, opts: QuantizeClassifierOptions = {}): Promise<QuantizedClassifier> {
  const { calibration, gateData } = quantizationData(opts);
  if (calibration === undefined) {
    throw new QuantizationGateError('int8 needs calibration images: give --calibration DIR (a folder of photos like the ones to classify); the phones data set (../shared/datasets/phones) is not here');
  }
  if (gateData === undefined && !opts.force) {
    throw new QuantizationGateError('int8 needs labelled photos to check it against fp32: give --gate-data DIR (one folder per class, or a manifest.csv), or --force to skip the check');
  }
  const picked = pickCalibrationImages(await listLabelledImages(calibration), opts.calibrationImages ?? DEFAULT_CALIBRATION_IMAGES);
  if (picked.length === 0) throw new QuantizationGateError(`the calibration folder ${calibration} holds no images`);
  opts.log?.(`calibrating on ${picked.length} images of ${calibration}`);
  const tensors = tensorsToCalibrate(fp32);
  const size = info.preprocessing.size;
  const feeds = (async function* () {
    for await (const b of batchesOf(picked, info, 8)) yield feedOf(b.input, b.n, size);
  })();
  const ranges = await calibrateRanges(fp32, tensors, feeds, { method: CALIBRATION_METHOD, ...(opts.threads !== undefined ? { threads: opts.threads } : {}) });
  const calibrationRecord = { data: calibration, images: picked.length, method: CALIBRATION_METHOD };

  // All convolutions in int8 first; if that fails the gate, keep the most sensitive in fp32.
  const attempts: NonNullable<QuantizationRecord['attempts']> = [];
  let ranking: string[] | undefined;
  let best: QuantizedClassifier | undefined;
  for (const k of [0, ...KEEP_FP32_STEPS]) {
    if (k > 0) {
      ranking ??= await rankBySensitivity(fp32, ranges, picked.slice(0, SENSITIVITY_IMAGES), info, opts);
      if (k > ranking.length) break;
    }
    const keep = new Set(ranking?.slice(0, k));
    const { bytes, summary } = quantizeModel(fp32, ranges, k > 0 ? { exclude: (n, dims) => defaultExclude(n, dims) || keep.has(n.name ?? '') } : {});
    const record: QuantizationRecord = { calibration: calibrationRecord, summary, ...(k > 0 ? { keptFp32: [...keep] } : {}) };
    const made = { bytes, record, ranges };
    if (gateData === undefined) {
      record.forced = true;
      return made;
    }
    opts.log?.(`checking int8${k > 0 ? ` (${k} most sensitive convolutions in fp32)` : ''} against fp32 on ${gateData}`);
    record.gate = await runGate(fp32, bytes, info, gateData, opts);
    attempts.push({ keptFp32: k, agreement: record.gate.agreement, ...(record.gate.accuracyInt8 !== undefined ? { accuracyInt8: record.gate.accuracyInt8 } : {}), passed: record.gate.passed });
    record.attempts = [...attempts];
    if (record.gate.passed) return made;
    opts.log?.(`int8 gate failed: ${record.gate.failures.join('; ')}`);
    if (best === undefined || record.gate.agreement > best.record.gate!.agreement) best = made;
  }
  // Every try failed: the error (or, with force, the graph) is the one closest to fp32.
  const { record } = best!;
  record.attempts = attempts;
  if (!opts.force) {
    throw new QuantizationGateError(`the int8 model fails the accuracy gate (${record.gate!.failures.join('; ')}): ${formatGate(record.gate!)}; --force writes it anyway`, record);
  }
  record.forced = true;
  return best!;
}

export interface QuantizedClassifier {
  bytes: Uint8Array;
  record: QuantizationRecord;
  /** The calibrated activation ranges (with record.keptFp32, all an Int8Recipe needs). */
  ranges: ReadonlyMap<string, TensorRange>;
}

/** The file, next to a shipped model's manifest.json or ensemble.json, that lets it run in int8 without calibration data. */
export const INT8_RECIPE_FILE = 'int8.json';
export const INT8_RECIPE_FORMAT = 'phoneside.int8-recipe/1';

/**
 * How a model was quantized when it was shipped: the activation ranges calibrated then and the
 * convolutions kept in fp32, for the fp32 graph with this sha256 (the graph is assembled
 * deterministically from the bundle and its backbone's weights, so a user's graph has the same
 * bytes). Quantizing is then pure arithmetic: no photos needed, and the gate figures measured at
 * ship time (in `record`) hold for the same bytes.
 */
export interface Int8Recipe {
  format: typeof INT8_RECIPE_FORMAT;
  /** graphSha256 of the fp32 graph (its metadata, e.g. when it was assembled, left out). */
  fp32GraphSha256: string;
  ranges: Record<string, [number, number]>;
  record: QuantizationRecord;
}

export function int8Recipe(fp32: Uint8Array, q: QuantizedClassifier): Int8Recipe {
  return { format: INT8_RECIPE_FORMAT, fp32GraphSha256: graphSha256(fp32), ranges: Object.fromEntries([...q.ranges].map(([t, r]) => [t, [r.min, r.max]])), record: q.record };
}

/** The int8 graph a recipe describes, or an Error saying why the recipe does not fit `fp32`. */
export function applyInt8Recipe(fp32: Uint8Array, recipe: Int8Recipe, file: string): { bytes: Uint8Array; record: QuantizationRecord } {
  if (recipe.format !== INT8_RECIPE_FORMAT || typeof recipe.ranges !== 'object' || recipe.ranges === null) throw new Error(`${file} is not an int8 recipe (${INT8_RECIPE_FORMAT})`);
  if (recipe.fp32GraphSha256 !== graphSha256(fp32)) throw new Error(`${file} was made for another fp32 graph (its backbone weights or the model differ)`);
  const ranges = new Map(Object.entries(recipe.ranges).map(([t, [min, max]]) => [t, { min, max }]));
  const keep = new Set(recipe.record.keptFp32 ?? []);
  const { bytes, summary } = quantizeModel(fp32, ranges, keep.size > 0 ? { exclude: (n, dims) => defaultExclude(n, dims) || keep.has(n.name ?? '') } : {});
  return { bytes, record: { ...recipe.record, summary, recipe: file } };
}

/**
 * Names of the quantizable convolutions, most sensitive first: each is quantized alone (the rest
 * fp32) and scored by the mean |Δp| against fp32 on `images` (calibration images, never the gate's).
 */
async function rankBySensitivity(fp32: Uint8Array, ranges: ReadonlyMap<string, TensorRange>, images: readonly LabelledImage[], info: ClassifierInfo, opts: Pick<QuantizeClassifierOptions, 'threads' | 'log'>): Promise<string[]> {
  const size = info.preprocessing.size;
  const feeds: Record<string, ort.Tensor>[] = [];
  for await (const b of batchesOf(images, info, 16)) feeds.push(feedOf(b.input, b.n, size));
  const so: ort.InferenceSession.SessionOptions = { intraOpNumThreads: opts.threads ?? 0, graphOptimizationLevel: 'all' };
  const outputs = async (bytes: Uint8Array): Promise<Float32Array[]> => {
    const session = await ort.InferenceSession.create(bytes, so);
    try {
      const out: Float32Array[] = [];
      for (const f of feeds) out.push((await session.run(f))['output']!.data as Float32Array);
      return out;
    } finally {
      await session.release();
    }
  };
  const reference = await outputs(fp32);
  const convs = quantizableConvs(fp32);
  opts.log?.(`ranking ${convs.length} convolutions by sensitivity on ${images.length} calibration images`);
  const scored: [string, number][] = [];
  for (const name of convs) {
    const { bytes } = quantizeModel(fp32, ranges, { exclude: (n, dims) => defaultExclude(n, dims) || n.name !== name });
    const got = await outputs(bytes);
    let sum = 0;
    let count = 0;
    got.forEach((o, i) => {
      for (let j = 0; j < o.length; j++) sum += Math.abs(o[j]! - reference[i]![j]!);
      count += o.length;
    });
    scored.push([name, sum / count]);
  }
  return scored.sort((a, b) => b[1] - a[1]).map(([name]) => name);
}

