/**
 * Random training-time augmentation, done with sharp on raw RGB so each view costs a few ms.
 *
 * Order: random resized crop -> squash to size x size -> horizontal flip -> rotate (k*90° + small
 * angle, corners filled with the mean border colour) -> brightness/saturation/hue -> contrast.
 * All random numbers are drawn up front in a fixed order (see sampleAugmentParams), so a given
 * rng state always gives the same view, whatever the probabilities are set to.
 */
import type { Rng } from '../util/rng.js';
import { type RgbImage, rawSharp } from './image.js';

export interface AugmentConfig {
  /** Max small rotation, degrees (uniform in ±rotationDeg). */
  rotationDeg: number;
  /**
   * Probability of an extra rotation by 90/180/270°. Phone photos are mostly portrait and many
   * 'none' photos landscape: without this the model can learn orientation instead of content.
   */
  rot90Prob: number;
  /** Probability of a horizontal mirror. */
  flipProb: number;
  /** Brightness factor uniform in [1 - b, 1 + b]. */
  brightness: number;
  /** Contrast factor uniform in [1 - c, 1 + c], pivoting on the image's mean luma. */
  contrast: number;
  /** Random resized crop: fraction of the image area kept, [min, max]; [1, 1] = no crop. */
  cropScale: [number, number];
  /** Random resized crop: crop aspect ratio w/h, [min, max] (sampled log-uniformly). */
  cropRatio: [number, number];
  /** Hue shift uniform in ±hueDeg degrees. */
  hueDeg: number;
  /** Saturation factor uniform in [min, max]. */
  saturation: [number, number];
}

export const DEFAULT_AUGMENT: Readonly<AugmentConfig> = Object.freeze<AugmentConfig>({
  rotationDeg: 15,
  rot90Prob: 0.25,
  flipProb: 0.5,
  brightness: 0.2,
  contrast: 0.2,
  cropScale: [0.6, 1.0],
  cropRatio: [3 / 4, 4 / 3],
  hueDeg: 15,
  saturation: [0.8, 1.2],
});

/** A config that changes nothing (useful as a base for tests and for 'no augmentation'). */
export const IDENTITY_AUGMENT: Readonly<AugmentConfig> = Object.freeze<AugmentConfig>({
  rotationDeg: 0,
  rot90Prob: 0,
  flipProb: 0,
  brightness: 0,
  contrast: 0,
  cropScale: [1, 1],
  cropRatio: [1, 1],
  hueDeg: 0,
  saturation: [1, 1],
});

/** Concrete parameters of one augmented view. */
export interface AugmentParams {
  crop: { left: number; top: number; width: number; height: number };
  /** Total rotation in degrees, clockwise: k*90 + small angle. */
  angle: number;
  flip: boolean;
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/**
 * torchvision-style RandomResizedCrop box; falls back to the largest centred box in range.
 * A scale of [1, 1] means 'the whole image', whatever the ratio range says.
 */
function sampleCrop(
  w: number, h: number, scale: [number, number], ratio: [number, number], u: number[],
): AugmentParams['crop'] {
  if (scale[0] >= 1) return { left: 0, top: 0, width: w, height: h };
  const area = w * h;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let i = 0; i < 10; i++) {
    const target = area * (scale[0] + u[4 * i]! * (scale[1] - scale[0]));
    const ar = Math.exp(logLo + u[4 * i + 1]! * (logHi - logLo));
    const cw = Math.round(Math.sqrt(target * ar));
    const ch = Math.round(Math.sqrt(target / ar));
    if (cw > 0 && ch > 0 && cw <= w && ch <= h) {
      const left = Math.floor(u[4 * i + 2]! * (w - cw + 1));
      const top = Math.floor(u[4 * i + 3]! * (h - ch + 1));
      return { left, top, width: cw, height: ch };
    }
  }
  const inRatio = w / h;
  let cw = w;
  let ch = h;
  if (inRatio < ratio[0]) ch = Math.max(1, Math.round(w / ratio[0]));
  else if (inRatio > ratio[1]) cw = Math.max(1, Math.round(h * ratio[1]));
  return { left: Math.floor((w - cw) / 2), top: Math.floor((h - ch) / 2), width: cw, height: ch };
}

/** Draw one view's parameters. Always consumes exactly the same number of rng values. */
export function sampleAugmentParams(
  width: number, height: number, rng: Rng, cfg: Partial<AugmentConfig> = {},
): AugmentParams {
  const c: AugmentConfig = { ...DEFAULT_AUGMENT, ...cfg };
  const u = Array.from({ length: 48 }, () => rng.next());
  const crop = sampleCrop(width, height, c.cropScale, c.cropRatio, u);
  const quarter = u[40]! < c.rot90Prob ? 90 * (1 + Math.floor(u[41]! * 3)) : 0;
  const small = c.rotationDeg > 0 ? (2 * u[42]! - 1) * c.rotationDeg : 0;
  const factor = (amp: number, x: number): number => (amp > 0 ? 1 + (2 * x - 1) * amp : 1);
  return {
    crop,
    angle: quarter + small,
    flip: u[43]! < c.flipProb,
    brightness: factor(c.brightness, u[44]!),
    contrast: factor(c.contrast, u[45]!),
    saturation: c.saturation[0] + u[46]! * (c.saturation[1] - c.saturation[0]),
    hue: c.hueDeg > 0 ? (2 * u[47]! - 1) * c.hueDeg : 0,
  };
}

/** Mean colour of the one-pixel border: a fill for rotated corners that looks like 'more edge'. */
function borderMean(img: RgbImage): { r: number; g: number; b: number } {
  const { data, width: w, height: h } = img;
  const sum = [0, 0, 0];
  let n = 0;
  const add = (x: number, y: number): void => {
    const o = (y * w + x) * 3;
    sum[0]! += data[o]!;
    sum[1]! += data[o + 1]!;
    sum[2]! += data[o + 2]!;
    n++;
  };
  for (let x = 0; x < w; x++) {
    add(x, 0);
    if (h > 1) add(x, h - 1);
  }
  for (let y = 1; y < h - 1; y++) {
    add(0, y);
    if (w > 1) add(w - 1, y);
  }
  return { r: Math.round(sum[0]! / n), g: Math.round(sum[1]! / n), b: Math.round(sum[2]! / n) };
}

/** Mean BT.601 luma, sampled on a sparse grid (only used as the contrast pivot). */
function meanLuma(img: RgbImage): number {
  const { data } = img;
  const step = 3 * 7; // every 7th pixel is plenty for a mean
  let sum = 0;
  let n = 0;
  for (let o = 0; o + 2 < data.length; o += step) {
    sum += 0.299 * data[o]! + 0.587 * data[o + 1]! + 0.114 * data[o + 2]!;
    n++;
  }
  return n > 0 ? sum / n : 128;
}

type Mat3 = [[number, number, number], [number, number, number], [number, number, number]];

function matMul(a: Mat3, b: Mat3): Mat3 {
  const r = (i: number, j: number): number => a[i]![0] * b[0]![j]! + a[i]![1] * b[1]![j]! + a[i]![2] * b[2]![j]!;
  return [[r(0, 0), r(0, 1), r(0, 2)], [r(1, 0), r(1, 1), r(1, 2)], [r(2, 0), r(2, 1), r(2, 2)]];
}

const RGB_TO_YIQ: Mat3 = [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]];
const YIQ_TO_RGB: Mat3 = [[1, 0.956, 0.621], [1, -0.272, -0.647], [1, -1.106, 1.703]];

/**
 * Brightness, saturation and hue as one 3x3 RGB matrix: hue rotates and saturation scales the
 * chroma plane (I, Q) of YIQ, keeping luma. A single sharp recomb is ~5x cheaper than modulate(),
 * which round-trips every pixel through LCh.
 */
export function colourMatrix(brightness: number, saturation: number, hueDeg: number): Mat3 {
  const t = (hueDeg * Math.PI) / 180;
  const c = Math.cos(t) * saturation;
  const s = Math.sin(t) * saturation;
  const inYiq: Mat3 = [[brightness, 0, 0], [0, brightness * c, -brightness * s], [0, brightness * s, brightness * c]];
  return matMul(YIQ_TO_RGB, matMul(inYiq, RGB_TO_YIQ));
}

async function toRgb(p: ReturnType<typeof rawSharp>): Promise<RgbImage> {
  const { data, info } = await p.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`augment: expected 3 channels, got ${info.channels}`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

/** Apply given parameters (deterministic; exposed for tests and debugging). */
export async function applyAugment(img: RgbImage, size: number, p: AugmentParams): Promise<RgbImage> {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`augment: size must be a positive integer, got ${size}`);
  // 1) crop + squash at once: libvips only reads the crop window and shrinks it early.
  const base = await toRgb(rawSharp(img).extract(p.crop).resize(size, size, { fit: 'fill' }));

  // 2) everything else in one more pipeline at output size. sharp orders it as
  //    flop -> rotate -> extract -> recomb -> linear whatever the call order.
  let s = rawSharp(base);
  let changed = false;
  if (p.flip) {
    s = s.flop();
    changed = true;
  }
  const angle = ((p.angle % 360) + 360) % 360;
  if (angle !== 0) {
    // sharp grows the canvas to the rotated bounding box (about size*(|cos|+|sin|), rounded);
    // floor() never overestimates it, so the centred size x size window stays in bounds.
    const r = (angle * Math.PI) / 180;
    const grown = Math.floor(size * (Math.abs(Math.cos(r)) + Math.abs(Math.sin(r))) + 1e-9);
    const off = Math.max(0, Math.floor((grown - size) / 2));
    s = s.rotate(angle, { background: borderMean(base) }).extract({ left: off, top: off, width: size, height: size });
    changed = true;
  }
  if (p.brightness !== 1 || p.saturation !== 1 || p.hue !== 0 || p.contrast !== 1) {
    // Contrast pivots on the image's mean luma (as torchvision does): y = c*x + (1-c)*mean.
    // Brightness scales that mean too; saturation/hue keep luma, so the pivot is b*mean.
    const m = colourMatrix(p.brightness * p.contrast, p.saturation, p.hue);
    const pivot = p.brightness * meanLuma(base);
    s = s.recomb(m).linear(1, (1 - p.contrast) * pivot + 0.5); // +0.5: the uchar cast truncates
    changed = true;
  }
  return changed ? toRgb(s) : base;
}

/** One random size x size view of `img`; the same rng state gives the same view. */
export async function augment(
  img: RgbImage, size: number, rng: Rng, cfg: Partial<AugmentConfig> = {},
): Promise<RgbImage> {
  return applyAugment(img, size, sampleAugmentParams(img.width, img.height, rng, cfg));
}
