/**
 * The arithmetic of heat maps, shared by the page ("Show why") and Node (src/explain re-exports
 * it, typed by heatmap.d.ts): occlusion squares over a preprocessed input, the map made from the
 * probability drops, and the colour scale blended over a photo. Plain functions on typed arrays;
 * no DOM, no Node.js.
 */

/** Side of the grey square, as a fraction of the input side (stride: half of it). */
export const OCCLUSION_FRACTION = 1 / 7;

/**
 * Where the squares go over a size x size input: top-left corners every stride pixels, the last
 * one flush with the far edge.
 * @param {number} size
 * @param {number} [fraction]
 * @returns {{ size: number, patch: number, positions: [number, number][] }}
 */
export function occlusionPlan(size, fraction = OCCLUSION_FRACTION) {
  const patch = Math.max(1, Math.min(size, Math.round(size * fraction)));
  const stride = Math.max(1, Math.floor(patch / 2));
  /** @type {number[]} */
  const along = [];
  for (let s = 0; s + patch < size; s += stride) along.push(s);
  along.push(size - patch);
  /** @type {[number, number][]} */
  const positions = [];
  for (const y of along) for (const x of along) positions.push([x, y]);
  return { size, patch, positions };
}

/**
 * The occluded copies of `input` (one CHW image) for positions[from..to), packed into `out`.
 * @param {Float32Array} input
 * @param {{ size: number, patch: number, positions: [number, number][] }} plan
 * @param {readonly number[]} grey  mid grey per channel, as the network sees it
 * @param {number} from
 * @param {number} to
 * @param {Float32Array} out
 */
export function fillOccluded(input, plan, grey, from, to, out) {
  const { size, patch } = plan;
  const per = 3 * size * size;
  if (input.length !== per) throw new RangeError(`expected one ${size}x${size} CHW image, got ${input.length} values`);
  for (let i = from; i < to; i++) {
    const base = (i - from) * per;
    out.set(input, base);
    const [x0, y0] = plan.positions[i];
    for (let c = 0; c < 3; c++) {
      for (let y = y0; y < y0 + patch; y++) out.fill(grey[c], base + c * size * size + y * size + x0, base + c * size * size + y * size + x0 + patch);
    }
  }
}

/**
 * A pixel's heat: the mean drop of the class's probability over the squares covering it; then
 * negative values to 0 and scaled so the largest is 1.
 * @param {{ size: number, patch: number, positions: [number, number][] }} plan
 * @param {ArrayLike<number>} drops
 */
export function occlusionMap(plan, drops) {
  const { size, patch } = plan;
  const sum = new Float32Array(size * size);
  const count = new Uint16Array(size * size);
  plan.positions.forEach(([x0, y0], i) => {
    for (let y = y0; y < y0 + patch; y++) {
      for (let x = x0; x < x0 + patch; x++) {
        sum[y * size + x] += drops[i];
        count[y * size + x]++;
      }
    }
  });
  let max = 0;
  for (let p = 0; p < sum.length; p++) {
    const v = count[p] > 0 ? sum[p] / count[p] : 0;
    sum[p] = Number.isFinite(v) && v > 0 ? v : 0;
    if (sum[p] > max) max = sum[p];
  }
  if (max > 0) for (let p = 0; p < sum.length; p++) sum[p] = sum[p] / max;
  return sum;
}

/** @type {readonly [number, number, number][]} */
const HEAT_STOPS = [
  [0, 0, 143],
  [0, 0, 255],
  [0, 255, 255],
  [255, 255, 0],
  [255, 0, 0],
  [128, 0, 0],
];

/**
 * RGB of heat v (0..1): blue, cyan, yellow, red.
 * @param {number} v
 * @returns {[number, number, number]}
 */
export function heatColour(v) {
  const t = Math.min(Math.max(Number.isFinite(v) ? v : 0, 0), 1) * (HEAT_STOPS.length - 1);
  const i = Math.min(Math.floor(t), HEAT_STOPS.length - 2);
  const f = t - i;
  const a = HEAT_STOPS[i];
  const b = HEAT_STOPS[i + 1];
  return [Math.round(a[0] + (b[0] - a[0]) * f), Math.round(a[1] + (b[1] - a[1]) * f), Math.round(a[2] + (b[2] - a[2]) * f)];
}

/**
 * `heat` blended over packed pixels (3: RGB, 4: RGBA, alpha kept), more opaque where hotter.
 * @param {Uint8Array | Uint8ClampedArray} pixels
 * @param {Float32Array} heat
 * @param {number} width
 * @param {number} height
 * @param {3 | 4} [channels]
 */
export function blendHeat(pixels, heat, width, height, channels = 3) {
  if (pixels.length !== width * height * channels) throw new RangeError(`expected ${width}x${height}x${channels} pixels, got ${pixels.length} bytes`);
  if (heat.length !== width * height) throw new RangeError(`expected a ${width}x${height} heat map, got ${heat.length} values`);
  const out = new Uint8Array(pixels);
  for (let p = 0; p < width * height; p++) {
    const v = Math.min(Math.max(Number.isFinite(heat[p]) ? heat[p] : 0, 0), 1);
    const [r, g, b] = heatColour(v);
    const a = 0.2 + (0.65 - 0.2) * v;
    const o = p * channels;
    out[o] = Math.round(pixels[o] * (1 - a) + r * a);
    out[o + 1] = Math.round(pixels[o + 1] * (1 - a) + g * a);
    out[o + 2] = Math.round(pixels[o + 2] * (1 - a) + b * a);
  }
  return out;
}
