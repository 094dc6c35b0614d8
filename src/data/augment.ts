/**
 * Random training-time augmentation, done with sharp on raw RGB so each view costs a few ms.
 *
 * Order: random resized crop -> squash to size x size -> horizontal flip -> rotate (k*90° + small
 * angle, corners filled with the mean border colour) -> perspective warp -> brightness/saturation/
 * hue/grayscale -> contrast -> Gaussian blur -> JPEG re-encode -> cut-out.
 * All random numbers are drawn up front in a fixed order (see sampleAugmentParams), so a given
 * rng state always gives the same view, whatever the probabilities are set to. The newer ops
 * (perspective .. cut-out) are off in DEFAULT_AUGMENT and IDENTITY_AUGMENT; STRONG_AUGMENT
 * turns them on.
 */
import sharp from 'sharp';
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
  /**
   * Perspective warp: max displacement of each of the 4 corners, in x and in y independently, as
   * a fraction of the side, in [0, 0.5); 0 = off. A hand-held phone is mostly seen at an angle,
   * while catalog shots are square-on. Typical 0.05-0.15; above 0.25 the warped outline can fold.
   */
  perspective: number;
  /** Probability of the perspective warp. */
  perspectiveProb: number;
  /**
   * Probability of a grayscale view (luma in all 3 channels): front/back must not hinge on colour
   * (the same phone comes in many finishes; some sources are black-and-white).
   */
  grayscaleProb: number;
  /** Probability of a Gaussian blur: hand-held photos are often out of focus or shaken. */
  blurProb: number;
  /** Blur sigma in output pixels, uniform in [min, max]; sharp needs min >= 0.3 (below ~0.4 the blur is barely visible). */
  blurSigma: [number, number];
  /**
   * Probability of a JPEG re-encode: catalog and web photos are recompressed, often hard, and
   * the model must not take block artefacts (or their absence) as a cue.
   */
  jpegProb: number;
  /** JPEG quality, integer uniform in [min, max], within 1..100. */
  jpegQuality: [number, number];
  /**
   * Probability of a cut-out (one rectangle filled with the image's mean colour, after all other
   * ops): hides one cue at a time, so the model learns to use several (screen, camera bump,
   * logo, buttons) instead of one.
   */
  cutoutProb: number;
  /** Cut-out area as a fraction of the image, uniform in [min, max]; aspect ratio log-uniform in [1/2, 2]. */
  cutoutScale: [number, number];
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
  // New ops: off (probability 0); the ranges are what turning one on by its probability gives.
  perspective: 0.1,
  perspectiveProb: 0,
  grayscaleProb: 0,
  blurProb: 0,
  blurSigma: [0.3, 1.5],
  jpegProb: 0,
  jpegQuality: [30, 90],
  cutoutProb: 0,
  cutoutScale: [0.02, 0.15],
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
  perspective: 0,
  perspectiveProb: 0,
  grayscaleProb: 0,
  blurProb: 0,
  blurSigma: [0.3, 1.5],
  jpegProb: 0,
  jpegQuality: [30, 90],
  cutoutProb: 0,
  cutoutScale: [0.02, 0.15],
});

/**
 * A stronger recipe for the augmentation study: wider crops, more quarter turns, and every
 * newer op on part of the time. Other fields as DEFAULT_AUGMENT.
 */
export const STRONG_AUGMENT: Readonly<AugmentConfig> = Object.freeze<AugmentConfig>({
  ...DEFAULT_AUGMENT,
  cropScale: [0.35, 1.0],
  rot90Prob: 0.5,
  perspective: 0.1,
  perspectiveProb: 0.5,
  grayscaleProb: 0.1,
  blurProb: 0.2,
  blurSigma: [0.3, 1.5],
  jpegProb: 0.3,
  jpegQuality: [30, 90],
  cutoutProb: 0.3,
  cutoutScale: [0.02, 0.15],
});

/**
 * Throws a RangeError naming the first bad field of the newer ops. A [min, max] range is only
 * checked while its probability is > 0, so a disabled op may carry any placeholder range.
 * (The older fields are not checked here, so configs that worked before keep working.)
 */
export function validateAugmentConfig(c: AugmentConfig): void {
  const prob = (name: keyof AugmentConfig): void => {
    const v = c[name];
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new RangeError(`augment: ${name} must be a probability in [0, 1], got ${String(v)}`);
  };
  const range = (name: keyof AugmentConfig, lo: number, hi: number, integer = false): void => {
    const v = c[name];
    const ok = Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!integer || Number.isInteger(x)));
    if (!ok || !(v[0]! >= lo && v[1]! <= hi && v[0]! <= v[1]!)) {
      throw new RangeError(`augment: ${name} must be [min, max]${integer ? ' of integers' : ''} with ${lo} <= min <= max <= ${hi}, got ${JSON.stringify(v)}`);
    }
  };
  for (const name of ['perspectiveProb', 'grayscaleProb', 'blurProb', 'jpegProb', 'cutoutProb'] as const) prob(name);
  if (typeof c.perspective !== 'number' || !(c.perspective >= 0 && c.perspective < 0.5)) {
    throw new RangeError(`augment: perspective must be a corner displacement fraction in [0, 0.5), got ${String(c.perspective)}`);
  }
  if (c.blurProb > 0) range('blurSigma', 0.3, 1000); // sharp's blur() accepts sigma 0.3..1000
  if (c.jpegProb > 0) range('jpegQuality', 1, 100, true);
  if (c.cutoutProb > 0) {
    range('cutoutScale', 0, 1);
    if (!(c.cutoutScale[1] > 0)) throw new RangeError(`augment: cutoutScale max must be > 0, got ${JSON.stringify(c.cutoutScale)}`);
  }
}

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
  /**
   * Perspective corner offsets [dx, dy] x (top-left, top-right, bottom-right, bottom-left), as
   * fractions of the output side: corner i of the view moves by (dx_i, dy_i). null = no warp.
   */
  perspective: number[] | null;
  /** Luma only (folded into the colour matrix as saturation 0). */
  grayscale: boolean;
  /** Gaussian blur sigma in output pixels; 0 = none. */
  blurSigma: number;
  /** JPEG re-encode quality 1..100; 0 = none. */
  jpegQuality: number;
  /** Cut-out rectangle as fractions of the output side (see cutoutRect); null = none. */
  cutout: { left: number; top: number; width: number; height: number } | null;
}

/** Number of rng values one view consumes: 48 for the original ops, then 19 for the newer ones. */
export const AUGMENT_DRAWS = 48 + 19;

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

/**
 * Draw one view's parameters. Always consumes exactly AUGMENT_DRAWS rng values: the original 48
 * first (so their params are what they were before the newer ops existed), then the newer ops'.
 */
export function sampleAugmentParams(
  width: number, height: number, rng: Rng, cfg: Partial<AugmentConfig> = {},
): AugmentParams {
  const c: AugmentConfig = { ...DEFAULT_AUGMENT, ...cfg };
  validateAugmentConfig(c);
  const u = Array.from({ length: 48 }, () => rng.next());
  // v[0] perspective on, v[1..8] corner offsets, v[9] grayscale, v[10..11] blur on/sigma,
  // v[12..13] jpeg on/quality, v[14..18] cut-out on/area/aspect/left/top.
  const v = Array.from({ length: AUGMENT_DRAWS - 48 }, () => rng.next());
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
    perspective: c.perspective > 0 && v[0]! < c.perspectiveProb
      ? v.slice(1, 9).map((x) => (2 * x - 1) * c.perspective)
      : null,
    grayscale: v[9]! < c.grayscaleProb,
    blurSigma: v[10]! < c.blurProb ? c.blurSigma[0] + v[11]! * (c.blurSigma[1] - c.blurSigma[0]) : 0,
    jpegQuality: v[12]! < c.jpegProb
      ? Math.min(c.jpegQuality[1], c.jpegQuality[0] + Math.floor(v[13]! * (c.jpegQuality[1] - c.jpegQuality[0] + 1)))
      : 0,
    cutout: v[14]! < c.cutoutProb ? sampleCutout(c.cutoutScale, v[15]!, v[16]!, v[17]!, v[18]!) : null,
  };
}

/** Cut-out box in fractions of the side: area in `scale`, aspect w/h log-uniform in [1/2, 2]. */
function sampleCutout(
  scale: [number, number], uArea: number, uRatio: number, uLeft: number, uTop: number,
): NonNullable<AugmentParams['cutout']> {
  const area = scale[0] + uArea * (scale[1] - scale[0]);
  const ratio = Math.exp(Math.log(0.5) + uRatio * Math.log(4));
  const width = Math.min(1, Math.sqrt(area * ratio));
  const height = Math.min(1, Math.sqrt(area / ratio));
  return { left: uLeft * (1 - width), top: uTop * (1 - height), width, height };
}

/** The pixel rectangle [x0, x1) x [y0, y1) a cut-out covers in a size x size view (at least 1 px). */
export function cutoutRect(
  c: NonNullable<AugmentParams['cutout']>, size: number,
): { x0: number; y0: number; x1: number; y1: number } {
  const edge = (start: number, len: number): [number, number] => {
    const a = Math.min(size - 1, Math.max(0, Math.round(start * size)));
    const b = Math.min(size, Math.max(a + 1, Math.round((start + len) * size)));
    return [a, b];
  };
  const [x0, x1] = edge(c.left, c.width);
  const [y0, y1] = edge(c.top, c.height);
  return { x0, y0, x1, y1 };
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

export type Mat3 = [[number, number, number], [number, number, number], [number, number, number]];

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

/** A point in continuous pixel coordinates: pixel (i, j) covers [i, i+1) x [j, j+1). */
export type Point = readonly [number, number];

/**
 * The projective map (3x3, h22 = 1) that takes from[i] to to[i] for 4 point pairs, no three of
 * either set collinear: the 8x8 linear system of the direct linear transform, solved by Gaussian
 * elimination with partial pivoting.
 */
export function homography(from: readonly Point[], to: readonly Point[]): Mat3 {
  if (from.length !== 4 || to.length !== 4) throw new RangeError('homography: needs exactly 4 point pairs');
  const a: number[][] = [];
  const b: number[] = [];
  for (let i = 0; i < 4; i++) {
    const [x, y] = from[i]!;
    const [u, v] = to[i]!;
    a.push([x, y, 1, 0, 0, 0, -x * u, -y * u]);
    b.push(u);
    a.push([0, 0, 0, x, y, 1, -x * v, -y * v]);
    b.push(v);
  }
  const scale = Math.max(...a.flat().map(Math.abs));
  for (let c = 0; c < 8; c++) {
    let piv = c;
    for (let r = c + 1; r < 8; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[piv]![c]!)) piv = r;
    if (!(Math.abs(a[piv]![c]!) > 1e-10 * scale)) throw new RangeError('homography: degenerate points (three collinear?)');
    [a[c], a[piv]] = [a[piv]!, a[c]!];
    [b[c], b[piv]] = [b[piv]!, b[c]!];
    const rc = a[c]!;
    for (let r = c + 1; r < 8; r++) {
      const rr = a[r]!;
      const f = rr[c]! / rc[c]!;
      if (f === 0) continue;
      for (let k = c; k < 8; k++) rr[k]! -= f * rc[k]!;
      b[r]! -= f * b[c]!;
    }
  }
  const h = new Array<number>(8).fill(0);
  for (let r = 7; r >= 0; r--) {
    let acc = b[r]!;
    for (let k = r + 1; k < 8; k++) acc -= a[r]![k]! * h[k]!;
    h[r] = acc / a[r]![r]!;
  }
  return [[h[0]!, h[1]!, h[2]!], [h[3]!, h[4]!, h[5]!], [h[6]!, h[7]!, 1]];
}

/** Apply a homography to one point. */
export function applyHomography(m: Mat3, [x, y]: Point): [number, number] {
  const z = m[2][0] * x + m[2][1] * y + m[2][2];
  return [(m[0][0] * x + m[0][1] * y + m[0][2]) / z, (m[1][0] * x + m[1][1] * y + m[1][2]) / z];
}

type Rgb = { r: number; g: number; b: number };

/**
 * Projective warp of a whole image: corner i of the output shows what was at corner i of the
 * input, moved by (offsets[2i], offsets[2i+1]) x (width, height) (corners TL, TR, BR, BL). Every
 * output pixel centre is mapped back through the inverse homography and sampled bilinearly;
 * input pixels outside the image count as `fill`, so the outline is antialiased. Zero offsets
 * give the input back exactly. About 1-2 ms at 224 x 224 (plain JS).
 */
export function warpPerspective(img: RgbImage, offsets: readonly number[], fill: Rgb): RgbImage {
  if (offsets.length !== 8 || !offsets.every(Number.isFinite)) {
    throw new RangeError(`warpPerspective: expected 8 finite corner offsets, got ${JSON.stringify(offsets)}`);
  }
  const { data: src, width: w, height: h } = img;
  const corners: Point[] = [[0, 0], [w, 0], [w, h], [0, h]];
  const moved: Point[] = corners.map(([x, y], i) => [x + offsets[2 * i]! * w, y + offsets[2 * i + 1]! * h]);
  const m = homography(moved, corners); // output -> input
  // Points with a non-positive denominator lie beyond the horizon (only possible for extreme,
  // folded warps): fill. Orient the map so that the centre of the output is in front.
  const zc = m[2][0] * (w / 2) + m[2][1] * (h / 2) + m[2][2];
  const sg = zc < 0 ? -1 : 1;
  const [m00, m01, m02] = m[0].map((x) => x * sg) as [number, number, number];
  const [m10, m11, m12] = m[1].map((x) => x * sg) as [number, number, number];
  const [m20, m21, m22] = m[2].map((x) => x * sg) as [number, number, number];
  // Source padded by one pixel of fill on every side: every sample inside (-1, w) x (-1, h) then
  // has all 4 bilinear taps in the padded buffer, with no per-pixel bounds checks.
  const pw = w + 2;
  const pad = new Uint8Array(pw * (h + 2) * 3);
  for (let i = 0; i < pad.length; i += 3) {
    pad[i] = fill.r;
    pad[i + 1] = fill.g;
    pad[i + 2] = fill.b;
  }
  for (let y = 0; y < h; y++) pad.set(src.subarray(y * w * 3, (y + 1) * w * 3), ((y + 1) * pw + 1) * 3);
  const row = pw * 3;
  const out = new Uint8Array(w * h * 3);
  let o = 0;
  for (let y = 0; y < h; y++) {
    const cy = y + 0.5;
    const bx = m01 * cy + m02;
    const by = m11 * cy + m12;
    const bz = m21 * cy + m22;
    for (let x = 0; x < w; x++, o += 3) {
      const cx = x + 0.5;
      const z = m20 * cx + bz;
      // Input position in padded pixel-index coordinates (input pixel i's centre at i + 1).
      const fx = (m00 * cx + bx) / z + 0.5;
      const fy = (m10 * cx + by) / z + 0.5;
      if (!(z > 0 && fx > 0 && fy > 0 && fx < w + 1 && fy < h + 1)) {
        out[o] = fill.r;
        out[o + 1] = fill.g;
        out[o + 2] = fill.b;
        continue;
      }
      const x0 = Math.floor(fx);
      const y0 = Math.floor(fy);
      const ax = fx - x0;
      const ay = fy - y0;
      const w00 = (1 - ax) * (1 - ay);
      const w10 = ax * (1 - ay);
      const w01 = (1 - ax) * ay;
      const w11 = ax * ay;
      const i = (y0 * pw + x0) * 3;
      const j = i + row;
      // + 0.5 then the Uint8Array store truncates: round to nearest.
      out[o] = w00 * pad[i]! + w10 * pad[i + 3]! + w01 * pad[j]! + w11 * pad[j + 3]! + 0.5;
      out[o + 1] = w00 * pad[i + 1]! + w10 * pad[i + 4]! + w01 * pad[j + 1]! + w11 * pad[j + 4]! + 0.5;
      out[o + 2] = w00 * pad[i + 2]! + w10 * pad[i + 5]! + w01 * pad[j + 2]! + w11 * pad[j + 5]! + 0.5;
    }
  }
  return { data: out, width: w, height: h };
}

/** Exact mean colour of the image (the cut-out fill: neutral for this image, no new cue). */
function meanColour(img: RgbImage): Rgb {
  const { data } = img;
  let r = 0;
  let g = 0;
  let b = 0;
  for (let o = 0; o + 2 < data.length; o += 3) {
    r += data[o]!;
    g += data[o + 1]!;
    b += data[o + 2]!;
  }
  const n = Math.max(1, data.length / 3);
  return { r: Math.round(r / n), g: Math.round(g / n), b: Math.round(b / n) };
}

/** Fill a cut-out rectangle in place. */
function fillCutout(img: RgbImage, c: NonNullable<AugmentParams['cutout']>): void {
  const { data, width: w } = img;
  const { r, g, b } = meanColour(img);
  const { x0, y0, x1, y1 } = cutoutRect(c, w);
  for (let y = y0; y < y1; y++) {
    for (let o = (y * w + x0) * 3, end = (y * w + x1) * 3; o < end; o += 3) {
      data[o] = r;
      data[o + 1] = g;
      data[o + 2] = b;
    }
  }
}

async function toRgb(p: ReturnType<typeof rawSharp>): Promise<RgbImage> {
  const { data, info } = await p.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`augment: expected 3 channels, got ${info.channels}`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

/**
 * Apply given parameters (deterministic; exposed for tests and debugging). sharp round trips:
 * one for crop+squash, one more only if anything else is on, plus one before a perspective warp
 * that follows a flip/rotation, and one JPEG encode+decode when re-encoding.
 */
export async function applyAugment(img: RgbImage, size: number, p: AugmentParams): Promise<RgbImage> {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`augment: size must be a positive integer, got ${size}`);
  // 1) crop + squash at once: libvips only reads the crop window and shrinks it early.
  const base = await toRgb(rawSharp(img).extract(p.crop).resize(size, size, { fit: 'fill' }));

  // 2) everything else at output size. `cur` holds the latest pixels, `s` (if not null) a sharp
  //    pipeline over them still to run. sharp orders one pipeline as
  //    flop -> rotate -> extract -> blur -> recomb -> linear whatever the call order; blur is
  //    linear, so running it before rather than after the (affine) colour map only differs by
  //    uchar rounding/clipping.
  let cur = base;
  let s: ReturnType<typeof rawSharp> | null = null;
  if (p.flip) s = rawSharp(cur).flop();
  const angle = ((p.angle % 360) + 360) % 360;
  if (angle !== 0) {
    // sharp grows the canvas to the rotated bounding box (about size*(|cos|+|sin|), rounded);
    // floor() never overestimates it, so the centred size x size window stays in bounds.
    const r = (angle * Math.PI) / 180;
    const grown = Math.floor(size * (Math.abs(Math.cos(r)) + Math.abs(Math.sin(r))) + 1e-9);
    const off = Math.max(0, Math.floor((grown - size) / 2));
    s = (s ?? rawSharp(cur)).rotate(angle, { background: borderMean(base) }).extract({ left: off, top: off, width: size, height: size });
  }
  if (p.perspective) {
    // Hand-held phones are seen at an angle; catalog shots square-on. Warped in JS (sharp has no
    // projective warp), with the rotation's fill colour outside.
    if (s) {
      cur = await toRgb(s);
      s = null;
    }
    cur = warpPerspective(cur, p.perspective, borderMean(base));
  }
  const saturation = p.grayscale ? 0 : p.saturation; // grayscale = saturation 0: luma in R=G=B
  if (p.brightness !== 1 || saturation !== 1 || p.hue !== 0 || p.contrast !== 1) {
    // Contrast pivots on the image's mean luma (as torchvision does): y = c*x + (1-c)*mean.
    // Brightness scales that mean too; saturation/hue keep luma, so the pivot is b*mean.
    const m = colourMatrix(p.brightness * p.contrast, saturation, p.hue);
    const pivot = p.brightness * meanLuma(base);
    s = (s ?? rawSharp(cur)).recomb(m).linear(1, (1 - p.contrast) * pivot + 0.5); // +0.5: the uchar cast truncates
  }
  if (p.blurSigma > 0) {
    // Hand-held shots are often out of focus or shaken; web thumbnails are soft. sharp's default
    // minAmplitude (0.2) cuts the mask to one tap below sigma ~0.56, making small sigmas no-ops.
    s = (s ?? rawSharp(cur)).blur({ sigma: p.blurSigma, minAmplitude: 0.01 });
  }
  if (p.jpegQuality > 0) {
    // Catalog/web photos are recompressed, often hard: block artefacts must not be a cue.
    const jpeg = await (s ?? rawSharp(cur)).jpeg({ quality: p.jpegQuality }).toBuffer();
    cur = await toRgb(sharp(jpeg));
    s = null;
  } else if (s) {
    cur = await toRgb(s);
  }
  if (p.cutout) {
    // Hide one cue (camera bump, screen, logo) so the model learns to use several.
    // `cur` is never the caller's `img` (step 1 always makes new pixels), so fill in place.
    fillCutout(cur, p.cutout);
  }
  return cur;
}

/** One random size x size view of `img`; the same rng state gives the same view. */
export async function augment(
  img: RgbImage, size: number, rng: Rng, cfg: Partial<AugmentConfig> = {},
): Promise<RgbImage> {
  return applyAugment(img, size, sampleAugmentParams(img.width, img.height, rng, cfg));
}
