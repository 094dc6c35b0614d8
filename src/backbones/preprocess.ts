/** Pixel normalisation, driven by a backbone's Preprocessing entry. */
import type { Preprocessing } from './registry.js';

/**
 * HWC RGB uint8 pixels of one size x size image -> normalised CHW float32 written into `out` at
 * `offset` (so a batch can be filled in place), in the network's channel order.
 */
export function normalizeToCHW(
  rgb: Uint8Array,
  pre: Preprocessing,
  out: Float32Array,
  offset = 0,
): void {
  const n = pre.size * pre.size;
  if (rgb.length !== n * 3) throw new Error(`expected ${pre.size}x${pre.size} RGB pixels, got ${rgb.length} values`);
  if (out.length < offset + n * 3) throw new Error('output buffer too small');
  // Output channel c reads source channel src[c] (BGR reverses RGB).
  const src = pre.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  for (let c = 0; c < 3; c++) {
    const s = src[c]!;
    const mean = pre.mean[c]!;
    const inv = 1 / pre.std[c]!;
    const base = offset + c * n;
    for (let i = 0; i < n; i++) out[base + i] = (rgb[i * 3 + s]! - mean) * inv;
  }
}
