// @ts-check
/**
 * Pure pixel code shared by the page and its tests (no DOM, no Node): resizing decoded pixels to
 * the model's input the way phoneside's Node side does it with sharp (libvips), and normalising
 * them into the model's NCHW float32 input.
 *
 * Why not just canvas.drawImage? Browsers resample with their own filters (bilinear, mipmaps),
 * and the model is sensitive enough that this moves its probabilities by several points. So this
 * module reproduces sharp's resize (libvips 8.17 as bundled with sharp 0.34) step by step,
 * fixed-point arithmetic included: from the same decoded pixels it gives bit-identical results
 * (checked against sharp on all 790 images of the phones set and on synthetic large images, for
 * the three policies). The one approximation: sharp decodes a large JPEG at 1/2, 1/4 or 1/8 scale
 * inside the JPEG decoder, which is emulated here with a box average.
 */

/** @typedef {'squash' | 'center-crop' | 'pad'} ResizePolicy */

/**
 * @typedef {object} Preprocessing
 * @property {number} size
 * @property {'RGB' | 'BGR'} channelOrder
 * @property {number[]} mean  per channel, in the network's channel order, on 0..255 pixel values
 * @property {number[]} std
 * @property {ResizePolicy} resize
 */

/** Packed RGB, 8 bits per channel, HWC. @typedef {{ data: Uint8Array, width: number, height: number }} RgbImage */

/** Letterbox colour of the 'pad' policy (the same mid gray as src/data/image.ts). */
export const PAD_GRAY = 128;

export const RESIZE_POLICIES = /** @type {const} */ (['squash', 'center-crop', 'pad']);

/**
 * What sharp does to a width x height image for `policy` at `size`: how much a JPEG is shrunk
 * while decoding, the size it is resized to, and where the size x size result is cut from it
 * ('center-crop') or placed in it ('pad').
 * @param {number} width
 * @param {number} height
 * @param {number} size
 * @param {ResizePolicy} policy
 * @param {boolean} jpeg  whether the source is a JPEG (sharp shrinks those while decoding)
 */
export function planResize(width, height, size, policy, jpeg) {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`resize: size must be a positive integer, got ${size}`);
  if (!(width > 0 && height > 0)) throw new RangeError(`resize: empty image ${width}x${height}`);
  const shrinks = (/** @type {number} */ w, /** @type {number} */ h) => {
    let hs = w / size;
    let vs = h / size;
    if (policy === 'center-crop') hs = vs = Math.min(hs, vs);
    else if (policy === 'pad') hs = vs = Math.max(hs, vs);
    else if (policy !== 'squash') throw new RangeError(`unknown resize policy: ${String(policy)}`);
    return [Math.min(hs, w), Math.min(vs, h)];
  };
  let [hs, vs] = shrinks(width, height);
  // sharp's shrink-on-load for JPEG (fastShrinkOnLoad, its default).
  let jpegShrink = 1;
  if (jpeg) {
    const shrink = Math.min(hs, vs);
    if (shrink >= 8) jpegShrink = 8;
    else if (shrink >= 4) jpegShrink = 4;
    else if (shrink >= 2) jpegShrink = 2;
    if (jpegShrink > 1 && Math.trunc(shrink) === jpegShrink) jpegShrink /= 2;
  }
  const loadedWidth = Math.ceil(width / jpegShrink);
  const loadedHeight = Math.ceil(height / jpegShrink);
  [hs, vs] = shrinks(loadedWidth, loadedHeight);
  const resizedWidth = Math.max(1, Math.round(loadedWidth / hs));
  const resizedHeight = Math.max(1, Math.round(loadedHeight / vs));
  return {
    jpegShrink,
    hshrink: hs,
    vshrink: vs,
    loadedWidth,
    loadedHeight,
    resizedWidth,
    resizedHeight,
    // sharp's CalculateCrop / CalculateEmbedPosition for gravity 'centre' (integer division).
    cropLeft: policy === 'center-crop' ? Math.trunc((resizedWidth - size + 1) / 2) : 0,
    cropTop: policy === 'center-crop' ? Math.trunc((resizedHeight - size + 1) / 2) : 0,
    padLeft: policy === 'pad' ? Math.trunc((size - resizedWidth) / 2) : 0,
    padTop: policy === 'pad' ? Math.trunc((size - resizedHeight) / 2) : 0,
  };
}

/** C's rint(): round half to even. @param {number} x */
function rint(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** @param {number} i @param {number} n */
const clampIndex = (i, n) => (i < 0 ? 0 : i >= n ? n - 1 : i);

/** @param {number} v */
const toByte = (v) => (v < 0 ? 0 : v > 255 ? 255 : v);

/**
 * sum / n rounded the way libvips' shrinkh/shrinkv do it for 8-bit pixels: a multiply by a
 * truncated 2^32 / (256 n) and a shift, which is not always the exact rounded quotient.
 * @param {number} sum
 * @param {number} n
 */
function boxMean(sum, n) {
  const multiplier = Math.floor(2 ** 32 / (256 * n));
  return Math.min(255, Math.floor(((sum + (n >> 1)) * multiplier) / 2 ** 24));
}

/**
 * Averages fx x fy blocks, rounding as libvips' shrinkh/shrinkv do (vertical first); edge blocks are completed by
 * repeating the last row/column (libvips' "ceil" mode). Also stands in for a JPEG decoded at
 * 1/2, 1/4 or 1/8 scale (an approximation: the decoder's scaled IDCT is not exactly a box).
 * @param {RgbImage} img
 * @param {number} fx
 * @param {number} fy
 * @returns {RgbImage}
 */
export function boxShrink(img, fx, fy) {
  let cur = img;
  if (fy > 1) {
    const { data, width, height } = cur;
    const oh = Math.ceil(height / fy);
    const row = width * 3;
    const out = new Uint8Array(row * oh);
    const acc = new Int32Array(row);
    for (let oy = 0; oy < oh; oy++) {
      acc.fill(0);
      for (let k = 0; k < fy; k++) {
        const base = clampIndex(oy * fy + k, height) * row;
        for (let x = 0; x < row; x++) acc[x] += data[base + x];
      }
      for (let x = 0; x < row; x++) out[oy * row + x] = boxMean(acc[x], fy);
    }
    cur = { data: out, width, height: oh };
  }
  if (fx > 1) {
    const { data, width, height } = cur;
    const ow = Math.ceil(width / fx);
    const out = new Uint8Array(ow * height * 3);
    for (let y = 0; y < height; y++) {
      for (let ox = 0; ox < ow; ox++) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (let k = 0; k < fx; k++) {
          const p = (y * width + clampIndex(ox * fx + k, width)) * 3;
          r += data[p];
          g += data[p + 1];
          b += data[p + 2];
        }
        const q = (y * ow + ox) * 3;
        out[q] = boxMean(r, fx);
        out[q + 1] = boxMean(g, fx);
        out[q + 2] = boxMean(b, fx);
      }
    }
    cur = { data: out, width: ow, height };
  }
  return cur;
}

/*
 * libvips works on 8-bit pixels in fixed point: coefficients scaled by 2^12 (truncated), sample
 * positions rounded to 1/64 pixel, sums rounded by adding 2^11 and shifting. Doing the same
 * here makes the result bit-identical to sharp's for the reduce and enlarge steps.
 */
const SHIFT = 12;
const SCALE = 1 << SHIFT;
const HALF = SCALE >> 1;
/** Sub-pixel positions per pixel (VIPS_TRANSFORM_SCALE). */
const SUBPIXELS = 64;

/** @param {number} x */
function lanczos3(x) {
  if (x === 0) return 1;
  if (x <= -3 || x >= 3) return 0;
  const px = Math.PI * x;
  return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
}

/** libvips' mask index for a position: its fraction rounded to the nearest 1/64. @param {number} pos */
function subpixel(pos) {
  const s = Math.trunc(pos * SUBPIXELS * 2);
  return ((s & (SUBPIXELS * 2 - 1)) + 1) >> 1;
}

/**
 * Weights per output sample: the first input index (may lie outside the image: edges repeat)
 * and integer coefficients.
 * @typedef {{ start: number, k: Int32Array }[]} Taps
 */

/**
 * libvips' reduce along one axis by `shrink` (> 1): Lanczos-3 widened by the shrink (so it also
 * anti-aliases), `outSize` samples spaced `shrink` apart and centred on the input.
 * @param {number} outSize
 * @param {number} shrink
 * @param {number} extra  outSize * shrink - input size: input invented (+) or dropped (-)
 * @returns {Taps}
 */
function reduceTaps(outSize, shrink, extra) {
  const n = 2 * rint(3 * shrink) + 1;
  const margin = Math.ceil(n / 2) - 1;
  const offset = (1 + extra) / 2 - 1;
  /** @type {Int32Array[]} */
  const masks = [];
  for (let t = 0; t <= SUBPIXELS; t++) {
    const half = t / SUBPIXELS + n / 2 - 1;
    const c = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      c[i] = lanczos3((i - half) / shrink);
      sum += c[i];
    }
    masks.push(Int32Array.from(c, (v) => Math.trunc((v / sum) * SCALE)));
  }
  /** @type {Taps} */
  const taps = [];
  for (let o = 0; o < outSize; o++) {
    const pos = (o + 0.5) * shrink - 0.5 - offset;
    taps.push({ start: Math.trunc(pos) - margin, k: masks[subpixel(pos)] });
  }
  return taps;
}

/**
 * Catmull-Rom weights at fraction x, libvips' calculate_coefficients_catmull.
 * @param {number} x
 */
function catmullRom(x) {
  const cr1 = 1 - x;
  const cr2 = -0.5 * x;
  const cr3 = cr1 * cr2;
  const cone = cr1 * cr3;
  const cfou = x * cr3;
  const cr4 = cfou - cone;
  const ctwo = cr1 - cone + cr4;
  const cthr = x - cfou - cr4;
  return [cone, ctwo, cthr, cfou];
}

/**
 * libvips' enlargement (vips_affine, bicubic interpolator, half-pixel input displacement): output
 * pixel o samples input position o / scale - 0.5 (measured against sharp).
 * @param {number} outSize
 * @param {number} scale  >= 1 (1 still shifts by half a pixel, as libvips does)
 * @returns {Taps}
 */
function enlargeTaps(outSize, scale) {
  /** @type {Int32Array[]} */
  const masks = [];
  for (let t = 0; t <= SUBPIXELS; t++) masks.push(Int32Array.from(catmullRom(Math.fround(t / SUBPIXELS)), (v) => Math.trunc(v * SCALE)));
  /** @type {Taps} */
  const taps = [];
  for (let o = 0; o < outSize; o++) {
    // libvips sees the position inside an extended image, always positive: offset it by 2
    // (and take the whole and fractional parts of that same number).
    const pos = o / scale - 0.5 + 2;
    taps.push({ start: Math.trunc(pos) - 3, k: masks[subpixel(pos)] });
  }
  return taps;
}

/**
 * Applies taps down the columns (one output row per tap set).
 * @param {RgbImage} img
 * @param {Taps} taps
 * @returns {RgbImage}
 */
function applyVertical(img, taps) {
  const { data, width, height } = img;
  const row = width * 3;
  const out = new Uint8Array(row * taps.length);
  const acc = new Int32Array(row);
  taps.forEach(({ start, k }, oy) => {
    acc.fill(HALF);
    for (let i = 0; i < k.length; i++) {
      const w = k[i];
      if (w === 0) continue;
      const base = clampIndex(start + i, height) * row;
      for (let x = 0; x < row; x++) acc[x] += w * data[base + x];
    }
    const ob = oy * row;
    for (let x = 0; x < row; x++) out[ob + x] = toByte(acc[x] >> SHIFT);
  });
  return { data: out, width, height: taps.length };
}

/**
 * Applies taps along the rows (one output column per tap set).
 * @param {RgbImage} img
 * @param {Taps} taps
 * @returns {RgbImage}
 */
function applyHorizontal(img, taps) {
  const { data, width, height } = img;
  const ow = taps.length;
  const out = new Uint8Array(ow * height * 3);
  for (let y = 0; y < height; y++) {
    const inRow = y * width;
    const outRow = y * ow * 3;
    for (let ox = 0; ox < ow; ox++) {
      const { start, k } = taps[ox];
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let i = 0; i < k.length; i++) {
        const w = k[i];
        if (w === 0) continue;
        const p = (inRow + clampIndex(start + i, width)) * 3;
        r += w * data[p];
        g += w * data[p + 1];
        b += w * data[p + 2];
      }
      out[outRow + ox * 3] = toByte(r >> SHIFT);
      out[outRow + ox * 3 + 1] = toByte(g >> SHIFT);
      out[outRow + ox * 3 + 2] = toByte(b >> SHIFT);
    }
  }
  return { data: out, width: ow, height };
}

/**
 * Both axes of an enlargement at once, as libvips' bicubic interpolator does on each 4 x 4
 * neighbourhood: each row's sum rounded (not clamped), then the column's, then clamped.
 * @param {RgbImage} img
 * @param {Taps} htaps
 * @param {Taps} vtaps
 * @returns {RgbImage}
 */
function enlarge(img, htaps, vtaps) {
  const { data, width, height } = img;
  const ow = htaps.length;
  const oh = vtaps.length;
  // Rounded horizontal sums for every input row, kept as ints (they may leave 0..255).
  const mid = new Int32Array(ow * height * 3);
  for (let y = 0; y < height; y++) {
    for (let ox = 0; ox < ow; ox++) {
      const { start, k } = htaps[ox];
      const q = (y * ow + ox) * 3;
      for (let c = 0; c < 3; c++) {
        let s = HALF;
        for (let i = 0; i < 4; i++) s += k[i] * data[(y * width + clampIndex(start + i, width)) * 3 + c];
        mid[q + c] = s >> SHIFT;
      }
    }
  }
  const row = ow * 3;
  const out = new Uint8Array(row * oh);
  vtaps.forEach(({ start, k }, oy) => {
    for (let x = 0; x < row; x++) {
      let s = HALF;
      for (let i = 0; i < 4; i++) s += k[i] * mid[clampIndex(start + i, height) * row + x];
      out[oy * row + x] = toByte(s >> SHIFT);
    }
  });
  return { data: out, width: ow, height: oh };
}

/**
 * Reduces one axis as libvips' reducev/reduceh do with sharp's settings (gap 2): a box shrink by
 * the integer part of half the factor, then Lanczos-3 for the rest.
 * @param {RgbImage} img
 * @param {'h' | 'v'} axis
 * @param {number} shrink  > 1
 */
function reduceAxis(img, axis, shrink) {
  const inSize = axis === 'h' ? img.width : img.height;
  const outSize = Math.max(1, Math.floor(inSize / shrink + 0.5));
  let extra = outSize * shrink - inSize;
  const int = Math.max(1, Math.floor(inSize / outSize / 2));
  let cur = img;
  if (int > 1) {
    cur = axis === 'h' ? boxShrink(cur, int, 1) : boxShrink(cur, 1, int);
    shrink /= int;
    extra /= int;
  }
  if (shrink === 1) return cur;
  const taps = reduceTaps(outSize, shrink, extra);
  return axis === 'h' ? applyHorizontal(cur, taps) : applyVertical(cur, taps);
}

/**
 * libvips' resize as sharp calls it, with a shrink factor per axis: reduce vertically, then
 * horizontally, then enlarge whichever axis grows.
 * @param {RgbImage} img
 * @param {number} hshrink  input width / output width (< 1 enlarges)
 * @param {number} vshrink
 * @returns {RgbImage}
 */
export function vipsResize(img, hshrink, vshrink) {
  let cur = img;
  if (vshrink > 1) cur = reduceAxis(cur, 'v', vshrink);
  if (hshrink > 1) cur = reduceAxis(cur, 'h', hshrink);
  if (hshrink < 1 || vshrink < 1) {
    // One affine transform for both axes: an axis that was reduced (scale 1 here) still gets
    // the half-pixel displacement, as it does in libvips.
    const hscale = hshrink < 1 ? 1 / hshrink : 1;
    const vscale = vshrink < 1 ? 1 / vshrink : 1;
    cur = enlarge(cur, enlargeTaps(Math.round(cur.width * hscale), hscale), enlargeTaps(Math.round(cur.height * vscale), vscale));
  }
  return cur;
}

/**
 * Cuts (or letterboxes with PAD_GRAY) a size x size window whose top-left is at (left, top) of img;
 * negative offsets place img inside the window.
 * @param {RgbImage} img
 * @param {number} size
 * @param {number} left
 * @param {number} top
 * @returns {RgbImage}
 */
function cutWindow(img, size, left, top) {
  if (left === 0 && top === 0 && img.width === size && img.height === size) return img;
  const out = new Uint8Array(size * size * 3).fill(PAD_GRAY);
  for (let y = 0; y < size; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < size; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= img.width) continue;
      const s = (sy * img.width + sx) * 3;
      const d = (y * size + x) * 3;
      out[d] = img.data[s];
      out[d + 1] = img.data[s + 1];
      out[d + 2] = img.data[s + 2];
    }
  }
  return { data: out, width: size, height: size };
}

/**
 * Full-size decoded pixels -> size x size pixels, as sharp's loadForModel would produce them.
 * @param {RgbImage} img  oriented, alpha already flattened onto white
 * @param {number} size
 * @param {ResizePolicy} policy
 * @param {boolean} jpeg  the source was a JPEG (emulates sharp's shrink-on-load)
 * @returns {RgbImage}
 */
export function resizeForModel(img, size, policy, jpeg) {
  if (img.data.length !== img.width * img.height * 3) {
    throw new RangeError(`RgbImage ${img.width}x${img.height} needs ${img.width * img.height * 3} bytes, has ${img.data.length}`);
  }
  const plan = planResize(img.width, img.height, size, policy, jpeg);
  const loaded = boxShrink(img, plan.jpegShrink, plan.jpegShrink);
  const resized = vipsResize(loaded, plan.hshrink, plan.vshrink);
  return cutWindow(resized, size, plan.cropLeft - plan.padLeft, plan.cropTop - plan.padTop);
}

/**
 * HWC RGB pixels of one size x size image -> normalised CHW float32 in the network's channel
 * order, x = (pixel - mean) / std (the same as src/backbones/preprocess.ts normalizeToCHW).
 * @param {Uint8Array} rgb
 * @param {Preprocessing} pre
 * @param {Float32Array} [out]
 * @param {number} [offset]
 */
export function normalizeToCHW(rgb, pre, out = new Float32Array(3 * pre.size * pre.size), offset = 0) {
  const n = pre.size * pre.size;
  if (rgb.length !== n * 3) throw new Error(`expected ${pre.size}x${pre.size} RGB pixels, got ${rgb.length} values`);
  if (out.length < offset + n * 3) throw new Error('output buffer too small');
  const src = pre.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  for (let c = 0; c < 3; c++) {
    const s = src[c];
    const mean = pre.mean[c];
    const inv = 1 / pre.std[c];
    const base = offset + c * n;
    for (let i = 0; i < n; i++) out[base + i] = (rgb[i * 3 + s] - mean) * inv;
  }
  return out;
}

/**
 * Checks a model description's preprocessing block; throws a clear error when it is unusable.
 * @param {unknown} p
 * @returns {Preprocessing}
 */
export function checkPreprocessing(p) {
  const o = /** @type {Record<string, unknown>} */ (p ?? {});
  const triple = (/** @type {unknown} */ v) => Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (typeof o.size !== 'number' || !Number.isInteger(o.size) || o.size <= 0) throw new Error('model preprocessing: size must be a positive integer');
  if (o.channelOrder !== 'RGB' && o.channelOrder !== 'BGR') throw new Error('model preprocessing: channelOrder must be RGB or BGR');
  if (!triple(o.mean) || !triple(o.std) || /** @type {number[]} */ (o.std).some((x) => x === 0)) throw new Error('model preprocessing: mean and std must be 3 numbers (std non-zero)');
  if (!RESIZE_POLICIES.includes(/** @type {ResizePolicy} */ (o.resize))) throw new Error(`model preprocessing: resize must be one of ${RESIZE_POLICIES.join(', ')}`);
  return /** @type {Preprocessing} */ (o);
}
