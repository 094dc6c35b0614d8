// @ts-check
/**
 * Browser side of the model's preprocessing: decode a file with the browser's own decoder (EXIF
 * orientation applied, colour converted to sRGB, alpha flattened onto white as sharp does), then
 * resize and normalise with resize.js, which reproduces phoneside's Node pipeline.
 */
import { normalizeToCHW, resizeForModel } from './resize.js';

/** @typedef {import('./resize.js').Preprocessing} Preprocessing */
/** @typedef {import('./resize.js').RgbImage} RgbImage */

/** Bigger images are first scaled down by the browser (canvas size limits, memory). */
export const MAX_DECODE_PIXELS = 40_000_000;

/** A file the browser cannot turn into pixels. */
export class ImageDecodeError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'ImageDecodeError';
  }
}

/** @param {Uint8Array} bytes */
export function isJpeg(bytes) {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/**
 * Whether a JPEG's structure is cut short (or broken): browsers draw what arrived and fill the
 * rest with gray, while sharp refuses such a file, so the page refuses it too. Walks the marker
 * segments from the start (so thumbnails inside APP segments are skipped by their length), through
 * each scan's entropy-coded data (where FF is always escaped), and wants the end-of-image marker.
 * @param {Uint8Array} bytes
 */
export function jpegIsTruncated(bytes) {
  const n = bytes.length;
  let i = 2; // after the start-of-image marker
  while (i + 1 < n) {
    if (bytes[i] !== 0xff) return true; // not at a marker: corrupt
    const m = bytes[i + 1];
    if (m === 0xff) {
      i++; // fill byte
      continue;
    }
    if (m === 0xd9) return false; // end of image
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) {
      i += 2; // markers without a length
      continue;
    }
    if (i + 3 >= n) return true;
    let j = i + 2 + ((bytes[i + 2] << 8) | bytes[i + 3]);
    if (m === 0xda) {
      // Start of scan: entropy-coded data runs to the next marker other than FF00 / restarts.
      while (j + 1 < n && !(bytes[j] === 0xff && bytes[j + 1] !== 0 && !(bytes[j + 1] >= 0xd0 && bytes[j + 1] <= 0xd7))) j++;
    }
    i = j;
  }
  return true;
}

/**
 * @param {number} width
 * @param {number} height
 */
function makeCanvas(width, height) {
  if (typeof OffscreenCanvas !== 'undefined') return new OffscreenCanvas(width, height);
  const c = document.createElement('canvas');
  c.width = width;
  c.height = height;
  return c;
}

/**
 * Decodes an image file to packed RGB at its full size (oriented, alpha onto white).
 * @param {Blob} blob
 * @returns {Promise<{ image: RgbImage, jpeg: boolean }>}
 */
export async function decodeImage(blob) {
  if (blob.size === 0) throw new ImageDecodeError('empty file');
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let jpeg = isJpeg(bytes);
  if (jpeg && jpegIsTruncated(bytes)) throw new ImageDecodeError('truncated or corrupt JPEG');
  /** @type {ImageBitmap} */
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', premultiplyAlpha: 'default', colorSpaceConversion: 'default' });
  } catch {
    throw new ImageDecodeError(jpeg || blob.type.startsWith('image/') ? 'a corrupt image, or a format this browser cannot read' : 'not an image');
  }
  try {
    if (bitmap.width * bitmap.height > MAX_DECODE_PIXELS) {
      // Too big for a canvas on many devices: let the browser scale it down first (its filter,
      // so the result drifts a little from the server's).
      const f = Math.sqrt(MAX_DECODE_PIXELS / (bitmap.width * bitmap.height));
      const smaller = await createImageBitmap(bitmap, {
        resizeWidth: Math.max(1, Math.floor(bitmap.width * f)),
        resizeHeight: Math.max(1, Math.floor(bitmap.height * f)),
        resizeQuality: 'high',
      });
      bitmap.close();
      bitmap = smaller;
      jpeg = false;
    }
    const { width, height } = bitmap;
    const canvas = makeCanvas(width, height);
    const ctx = /** @type {CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D | null} */ (
      canvas.getContext('2d', { willReadFrequently: true })
    );
    if (!ctx) throw new ImageDecodeError('this browser cannot read image pixels (no 2D canvas)');
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);
    ctx.drawImage(bitmap, 0, 0);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
      rgb[j] = rgba[i];
      rgb[j + 1] = rgba[i + 1];
      rgb[j + 2] = rgba[i + 2];
    }
    return { image: { data: rgb, width, height }, jpeg };
  } finally {
    bitmap.close();
  }
}

/**
 * A file -> the model's input for one image: NCHW float32, [3, size, size].
 * @param {Blob} blob
 * @param {Preprocessing} pre
 */
export async function preprocess(blob, pre) {
  const { image, jpeg } = await decodeImage(blob);
  const pixels = resizeForModel(image, pre.size, pre.resize, jpeg);
  return normalizeToCHW(pixels.data, pre);
}
