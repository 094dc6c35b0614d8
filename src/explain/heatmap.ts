/**
 * Heat-map arithmetic on plain Float32Arrays (row-major, width x height): resizing, mirroring,
 * rectifying and scaling to 0..1. No Node.js imports, so the web page can reuse it.
 */

/** A map of one class over an image, row-major, values 0..1 once normalised. */
export interface HeatMap {
  class: string;
  width: number;
  height: number;
  values: Float32Array;
}

/**
 * Bilinear resize of a w x h map to `outW` x `outH`, pixel centres aligned (as image resizers do:
 * the map covers the image, each value standing for the middle of its cell).
 */
export function resizeBilinear(values: Float32Array, w: number, h: number, outW: number, outH: number): Float32Array {
  if (values.length !== w * h) throw new RangeError(`a ${w}x${h} map needs ${w * h} values, got ${values.length}`);
  const out = new Float32Array(outW * outH);
  const sx = w / outW;
  const sy = h / outH;
  for (let y = 0; y < outH; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const ty = fy - y0;
    for (let x = 0; x < outW; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, w - 1);
      const tx = fx - x0;
      const top = values[y0 * w + x0]! * (1 - tx) + values[y0 * w + x1]! * tx;
      const bottom = values[y1 * w + x0]! * (1 - tx) + values[y1 * w + x1]! * tx;
      out[y * outW + x] = top * (1 - ty) + bottom * ty;
    }
  }
  return out;
}

/** The map mirrored left to right (a TTA view of the mirror image, brought back to the photo). */
export function mirrorColumns(values: Float32Array, w: number, h: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = values[y * w + (w - 1 - x)]!;
  return out;
}

/**
 * Negative values to 0, then divided by the largest, so the map spans 0..1 (all zeros when nothing
 * is positive: no evidence for the class anywhere). Non-finite values count as 0. In place.
 */
export function rectifyAndScale(values: Float32Array): Float32Array {
  let max = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const r = Number.isFinite(v) && v > 0 ? v : 0;
    values[i] = r;
    if (r > max) max = r;
  }
  if (max > 0) for (let i = 0; i < values.length; i++) values[i] = values[i]! / max;
  return values;
}

/** Row-major index of the largest value, as {x, y}. */
export function peak(map: Pick<HeatMap, 'width' | 'values'>): { x: number; y: number } {
  let best = 0;
  for (let i = 1; i < map.values.length; i++) if (map.values[i]! > map.values[best]!) best = i;
  return { x: best % map.width, y: Math.floor(best / map.width) };
}
