/**
 * Calibration for static quantization: runs the fp32 model, with per-image min / max outputs
 * added for the tensors to quantize (quantize.ts calibrationModel), over calibration batches and
 * reduces them to one range per tensor.
 *
 *  - 'minmax': the smallest minimum and largest maximum seen (nothing clipped on those images);
 *  - 'percentile': the `percentile`-th percentile of the per-image maxima (and the mirror of it
 *    for minima): a few outlying images do not stretch the range for all the others.
 */
import * as ort from 'onnxruntime-node';
import { calibrationModel, quantizeModel, tensorsToCalibrate, type QuantizeOptions, type QuantizeSummary, type TensorRange } from './quantize.js';

export type CalibrationMethod = 'minmax' | 'percentile';

export interface CalibrateOptions extends QuantizeOptions {
  method?: CalibrationMethod;
  /** For 'percentile' (default 99). */
  percentile?: number;
  /** ONNX Runtime threads (0 = all cores). */
  threads?: number;
}

function quantile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const pos = (sorted.length - 1) * p;
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/**
 * Ranges of `tensors` over the batches (each a feed for the model's inputs). Batches are pulled
 * one at a time, so an async generator can decode images as they are needed.
 */
export async function calibrateRanges(
  bytes: Uint8Array,
  tensors: readonly string[],
  batches: AsyncIterable<Record<string, ort.Tensor>> | Iterable<Record<string, ort.Tensor>>,
  opts: Pick<CalibrateOptions, 'method' | 'percentile' | 'threads'> = {},
): Promise<Map<string, TensorRange>> {
  const session = await ort.InferenceSession.create(calibrationModel(bytes, tensors), { intraOpNumThreads: opts.threads ?? 0, graphOptimizationLevel: 'all' });
  const mins: number[][] = tensors.map(() => []);
  const maxs: number[][] = tensors.map(() => []);
  try {
    const fetches = tensors.flatMap((_, i) => [`calib:${i}:min`, `calib:${i}:max`]);
    for await (const feed of batches) {
      const out = await session.run(feed, fetches);
      tensors.forEach((_, i) => {
        for (const v of out[`calib:${i}:min`]!.data as Float32Array) mins[i]!.push(v);
        for (const v of out[`calib:${i}:max`]!.data as Float32Array) maxs[i]!.push(v);
      });
    }
  } finally {
    await session.release();
  }
  if (mins[0] !== undefined && mins[0].length === 0) throw new Error('calibration needs at least one image');
  const method = opts.method ?? 'minmax';
  const p = (opts.percentile ?? 99) / 100;
  const ranges = new Map<string, TensorRange>();
  tensors.forEach((t, i) => {
    const lo = Float64Array.from(mins[i]!).sort();
    const hi = Float64Array.from(maxs[i]!).sort();
    if (lo.some((v) => !Number.isFinite(v)) || hi.some((v) => !Number.isFinite(v))) throw new Error(`calibration: tensor '${t}' is not finite`);
    ranges.set(t, method === 'minmax' ? { min: lo[0]!, max: hi[hi.length - 1]! } : { min: quantile(lo, 1 - p), max: quantile(hi, p) });
  });
  return ranges;
}

/** Calibrates and quantizes in one go (see quantize.ts for what is quantized). */
export async function quantizeStatic(
  bytes: Uint8Array,
  batches: AsyncIterable<Record<string, ort.Tensor>> | Iterable<Record<string, ort.Tensor>>,
  opts: CalibrateOptions = {},
): Promise<{ bytes: Uint8Array; summary: QuantizeSummary }> {
  const tensors = tensorsToCalibrate(bytes, opts);
  const ranges = await calibrateRanges(bytes, tensors, batches, opts);
  return quantizeModel(bytes, ranges, opts);
}
