/** The heat map of one class drawn over the photo as the model saw it, as PNG (or JPEG) bytes. */
import sharp from 'sharp';
import { loadForModel, type ResizePolicy } from '../data/image.js';
import { blendHeat } from './colormap.js';
import { resizeBilinear, type HeatMap } from './heatmap.js';

export interface OverlayOptions {
  /** Side of the picture in pixels (default: the map's width, i.e. the model's input size). */
  size?: number;
  /** How the photo became square for the model (default 'squash', what the shipped models use). */
  resize?: ResizePolicy;
}

/** The blended RGB pixels, size x size. */
async function overlay(image: string | Uint8Array, map: HeatMap, opts: OverlayOptions): Promise<sharp.Sharp> {
  const size = opts.size ?? map.width;
  if (!Number.isInteger(size) || size < 1 || size > 4096) throw new RangeError(`overlay size must be an integer 1..4096, got ${size}`);
  const photo = await loadForModel(image, size, opts.resize ?? 'squash');
  const heat = map.width === size && map.height === size ? map.values : resizeBilinear(map.values, map.width, map.height, size, size);
  return sharp(blendHeat(photo.data, heat, size, size), { raw: { width: size, height: size, channels: 3 } });
}

const bytesOf = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/**
 * PNG of `image` (a path or encoded bytes) resized as the model saw it, `size` x `size`, with
 * `map` blended over it. An image that cannot be decoded throws ImageDecodeError.
 */
export async function heatmapOverlayPng(image: string | Uint8Array, map: HeatMap, opts: OverlayOptions = {}): Promise<Uint8Array> {
  return bytesOf(await (await overlay(image, map, opts)).png().toBuffer());
}

/** As heatmapOverlayPng, as a JPEG (smaller, for pages that embed many). */
export async function heatmapOverlayJpeg(image: string | Uint8Array, map: HeatMap, opts: OverlayOptions & { quality?: number } = {}): Promise<Uint8Array> {
  return bytesOf(await (await overlay(image, map, opts)).jpeg({ quality: opts.quality ?? 72 }).toBuffer());
}
