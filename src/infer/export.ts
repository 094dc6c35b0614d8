/**
 * `export`: a trained bundle, or an ensemble of them, as ONE self-describing ONNX file (trunk +
 * trained layers + softmax, temperature folded, TTA inside the graph when used) that any ONNX
 * runtime can run; phoneside's metadata (classes, preprocessing, thresholds, backbone, tta,
 * ensemble members) travels in its `metadata_props`.
 *
 * What is refused: a target that does not end in .onnx, an existing target without `overwrite`
 * (a folder always), a bundle whose weights are damaged (sha256) or not finite (loadBundle), and
 * a graph whose output on two test images (mid-grey and seeded noise) is not finite.
 *
 * `precision: 'int8'` writes the statically quantized graph instead (see infer/quantize.ts),
 * only when it passes the accuracy gate against the fp32 graph (or with `force`); the figures
 * are in the result and in the file's metadata ('quantization').
 */
import { stat } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { normalizeToCHW } from '../backbones/preprocess.js';
import { loadBundle } from '../model/bundle.js';
import { EXPORT, type ExportInput } from '../options/infer.js';
import { OptionConflictError, OptionError, resolveOptions } from '../options/schema.js';
import { warnDeprecated } from '../util/deprecate.js';
import { writeFileAtomic } from '../util/fs.js';
import { createRng } from '../util/rng.js';
import { buildClassifierOnnx, buildEnsembleOnnx, checkFiniteOutput, NonFiniteOutputError, sessionOptions } from './classifier.js';
import { isEnsembleDir } from './ensemble.js';
import { resolveModelPath } from './load.js';
import type { ClassifierInfo } from './onnx-meta.js';
import { withMetadata } from '../onnx/quantize.js';
import { quantizeClassifier, type QuantizationRecord } from './quantize.js';
import { definedOnly } from '../util/defined.js';

/** `export`'s options: the table in src/options/infer.ts (same names as the CLI's flags; `out` required). */
export type ExportOptions = ExportInput;

export interface ExportResult {
  path: string;
  bytes: number;
  info: ClassifierInfo;
  /** With precision 'int8': the calibration, the gate's figures and what was quantized. */
  quantization?: QuantizationRecord;
}

/** Writes the classifier of `model` (a shipped name, bundle, run or ensemble folder; default the shipped default) to `out`, atomically. */
export async function exportClassifier(options: ExportOptions, log?: (line: string) => void): Promise<ExportResult>;
/** @deprecated the old form, for one release: `exportClassifier({ model, out, ...options })`. */
export async function exportClassifier(model: string, out: string, options?: Omit<ExportOptions, 'model' | 'out'>): Promise<ExportResult>;
export async function exportClassifier(
  first: ExportOptions | string,
  outArg?: string | ((line: string) => void),
  rest: Omit<ExportOptions, 'model' | 'out'> = {},
): Promise<ExportResult> {
  const log = typeof outArg === 'function' ? outArg : undefined;
  if (typeof first === 'string') {
    warnDeprecated('exportClassifier(model, out, options)', 'exportClassifier({ model, out, ...options })');
    return exportClassifier({ ...rest, model: first, ...(typeof outArg === 'string' ? { out: outArg } : {}) });
  }
  const opts = resolveOptions(EXPORT.options, first);
  const out = opts.out;
  if (out === undefined) throw new OptionConflictError(['out'], ([o]) => `export needs ${o}, the .onnx file to write`);
  if (!/\.onnx$/i.test(out)) throw new OptionError('out', 'a file name ending in .onnx', out);
  const existing = await stat(out).catch(() => undefined);
  if (existing?.isDirectory()) throw new OptionConflictError(['out'], ([o]) => `${o} ${out} is a folder; give the .onnx file to write`);
  if (existing !== undefined && !opts.overwrite) {
    throw new OptionConflictError(['out', 'overwrite'], ([o, w]) => `${o} ${out} already exists; give ${w} to replace it`);
  }
  const model = resolveModelPath(opts.model);
  if ((await stat(model).catch(() => undefined))?.isFile()) {
    throw new Error(`${model} is a file; export takes a bundle, run or ensemble folder`);
  }
  const build = opts.tta !== undefined ? { tta: opts.tta } : {};
  const { bytes, info } = (await isEnsembleDir(model)) ? await buildEnsembleOnnx(model, build) : await buildClassifierOnnx(await loadBundle(model), build);
  await checkExportedOutput(bytes, info, model);
  if (opts.precision === 'int8') {
    const q = await quantizeClassifier(bytes, info, { ...definedOnly(opts, ['calibration', 'gateData', 'force']), ...(log !== undefined ? { log } : {}) });
    const int8Info: ClassifierInfo = { ...info, precision: 'int8' };
    const int8 = withMetadata(q.bytes, { precision: 'int8', quantization: JSON.stringify(q.record) });
    await checkExportedOutput(int8, int8Info, model);
    await writeFileAtomic(out, int8);
    return { path: out, bytes: int8.length, info: int8Info, quantization: q.record };
  }
  await writeFileAtomic(out, bytes);
  return { path: out, bytes: bytes.length, info };
}

/**
 * Runs the graph about to be written on two test images (mid-grey, and seeded noise) and throws
 * NonFiniteOutputError if any output is NaN or infinite: a broken model is never written.
 */
async function checkExportedOutput(bytes: Uint8Array, info: ClassifierInfo, model: string): Promise<void> {
  const pre = info.preprocessing;
  const per = 3 * pre.size * pre.size;
  const x = new Float32Array(2 * per);
  const rng = createRng(1);
  normalizeToCHW(new Uint8Array(per).fill(128), pre, x, 0);
  normalizeToCHW(Uint8Array.from({ length: per }, () => rng.int(0, 256)), pre, x, per);
  const session = await ort.InferenceSession.create(bytes, sessionOptions(undefined));
  try {
    const res = await session.run({ input: new ort.Tensor('float32', x, [2, 3, pre.size, pre.size]) });
    checkFiniteOutput(res['output']!.data as Float32Array, 2, info.classes.length, model);
  } catch (err) {
    if (!(err instanceof NonFiniteOutputError)) throw err;
    throw new Error(`refusing to export ${model}: its output on a test image is ${err.value} (not finite); the model is broken (its weights or temperature)`);
  } finally {
    await session.release();
  }
}
