/** Types of web/heatmap.js, for src/explain (which re-exports it). */

/** Side of the grey square, as a fraction of the input side (stride: half of it). */
export declare const OCCLUSION_FRACTION: number;

/** Where the squares go over a size x size input. */
export interface OcclusionPlan {
  size: number;
  patch: number;
  /** Top-left corners, [x, y]. */
  positions: [number, number][];
}

export declare function occlusionPlan(size: number, fraction?: number): OcclusionPlan;

/**
 * Writes the occluded copies of `input` (one CHW image, size x size) for `positions[from..to)`
 * into `out`, packed: the square set to `grey[c]` in channel c.
 */
export declare function fillOccluded(input: Float32Array, plan: OcclusionPlan, grey: readonly number[], from: number, to: number, out: Float32Array): void;

/** The map of one class from the probability drops, one per square: mean drop per pixel, ReLU, scaled to 0..1. */
export declare function occlusionMap(plan: OcclusionPlan, drops: ArrayLike<number>): Float32Array;

/** RGB of heat `v` (clamped to 0..1): blue, cyan, yellow, red. */
export declare function heatColour(v: number): [number, number, number];

/** `heat` (width x height, 0..1) blended over packed RGB (3) or RGBA (4, alpha kept) pixels; a new buffer. */
export declare function blendHeat(pixels: Uint8Array | Uint8ClampedArray, heat: Float32Array, width: number, height: number, channels?: 3 | 4): Uint8Array;
