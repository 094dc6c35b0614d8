/**
 * Files -> 8-bit sRGB RGB pixels. All decoding, orientation, colour conversion and resizing is
 * done by sharp (libvips) so that no per-pixel loops run in JS.
 *
 * Nothing reaches libvips unchecked: a path is read here (regular files only, size-capped; see
 * src/util/regular-file.ts) and the bytes' type is checked against the one format policy of
 * src/data/formats.ts, the same check the service applies to uploads.
 */
import { extname } from 'node:path';
import sharp from 'sharp';
import type { FsPath } from '../util/list-dir.js';
import { FileReadError, MAX_FILE_BYTES, readRegularFile } from '../util/regular-file.js';
import { checkFormat, SUPPORTED_EXTENSIONS, type ImageType } from './formats.js';

export { SUPPORTED_EXTENSIONS, SUPPORTED_TYPES, REFUSALS, checkFormat, type ImageType, type FormatCheck } from './formats.js';

/** Packed HWC RGB, 8 bits per channel: data.length === width * height * 3. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** How a non-square image becomes size x size. */
export type ResizePolicy = 'squash' | 'center-crop' | 'pad';
export const RESIZE_POLICIES: readonly ResizePolicy[] = ['squash', 'center-crop', 'pad'];

/** Letterbox colour for the 'pad' policy: mid gray, close to the ImageNet mean. */
export const PAD_GRAY = 128;

export function isSupportedImagePath(path: string): boolean {
  return SUPPORTED_EXTENSIONS.includes(extname(path).toLowerCase());
}

/** A file (or buffer) that could not be turned into pixels; never leaks a raw sharp error. */
export class ImageDecodeError extends Error {
  override readonly name = 'ImageDecodeError';
  /** File path, or '<buffer>' for in-memory input. */
  readonly path: string;
  /** Short human reason, e.g. 'truncated or corrupt'. */
  readonly reason: string;
  /** The underlying decoder message, for logs. */
  readonly detail: string;
  constructor(path: string, reason: string, detail = '') {
    super(`${path}: ${reason}${detail ? ` (${detail})` : ''}`);
    this.path = path;
    this.reason = reason;
    this.detail = detail;
  }
}

export interface LoadOptions {
  /** Downscale (never upscale) so that the longer side is at most this; 0 = keep size. Default 1024. */
  maxSide?: number;
  /** Refuse inputs with more pixels than this (decompression-bomb guard); default sharp's 268M. */
  limitInputPixels?: number;
  /** Refuse files bigger than this many bytes (paths only); default MAX_FILE_BYTES (256 MiB). */
  maxFileBytes?: number;
}

const WHITE = { r: 255, g: 255, b: 255 };
const GRAY = { r: PAD_GRAY, g: PAD_GRAY, b: PAD_GRAY };

function describeInput(input: string | Uint8Array): string {
  return typeof input === 'string' ? input : '<buffer>';
}

/** Map libvips/sharp messages onto a few stable, user-facing reasons. */
export function toDecodeError(input: string | Uint8Array, err: unknown): ImageDecodeError {
  if (err instanceof ImageDecodeError) return err;
  if (err instanceof FileReadError) return new ImageDecodeError(err.path, err.reason);
  const msg = err instanceof Error ? err.message : String(err);
  const path = describeInput(input);
  let reason = 'truncated or corrupt';
  if (/unsupported image format/i.test(msg)) reason = 'not an image / unsupported format';
  else if (/input file is missing|ENOENT/i.test(msg)) reason = 'file not found';
  else if (/exceeds pixel limit/i.test(msg)) reason = 'too many pixels';
  else if (/is empty/i.test(msg)) reason = 'empty file';
  return new ImageDecodeError(path, reason, msg);
}

/**
 * The bytes of an image file, read safely: only a regular file (a FIFO, device or folder is
 * refused, and opening never blocks), at most `maxFileBytes`. Takes a Buffer path for names that
 * are not valid UTF-8. The format is not checked here (see checkImageBytes).
 */
export async function readImageFile(path: FsPath, opts: Pick<LoadOptions, 'maxFileBytes'> = {}): Promise<Uint8Array> {
  try {
    return await readRegularFile(path, opts.maxFileBytes ?? MAX_FILE_BYTES);
  } catch (err) {
    throw toDecodeError(typeof path === 'string' ? path : '<buffer>', err);
  }
}

/** The type of encoded image bytes, or an ImageDecodeError saying why they are refused (formats.ts). */
export function checkImageBytes(bytes: Uint8Array, path = '<buffer>'): ImageType {
  const c = checkFormat(bytes);
  if (!c.ok) throw new ImageDecodeError(path, c.message);
  return c.type;
}

/** A path is read (readImageFile), bytes are taken as they are; either way the format is checked. */
export async function imageBytes(input: string | Uint8Array, opts: Pick<LoadOptions, 'maxFileBytes'> = {}): Promise<Uint8Array> {
  const bytes = typeof input === 'string' ? await readImageFile(input, opts) : input;
  checkImageBytes(bytes, describeInput(input));
  return bytes;
}

/** sharp's input options: first frame only, and the pixel limit when one is given. */
function sharpOptions(limitInputPixels?: number): sharp.SharpOptions {
  const opts: sharp.SharpOptions = { pages: 1, page: 0 };
  if (limitInputPixels !== undefined) opts.limitInputPixels = limitInputPixels;
  return opts;
}

/** Open checked bytes with sharp: first frame only, EXIF orientation applied. */
function open(bytes: Uint8Array, limitInputPixels?: number): sharp.Sharp {
  return sharp(bytes, sharpOptions(limitInputPixels)).rotate();
}

/** Finish a pipeline as 3-channel 8-bit sRGB: alpha onto white, gray/CMYK/16-bit converted. */
async function finishRgb(pipeline: sharp.Sharp): Promise<RgbImage> {
  const { data, info } = await pipeline
    .flatten({ background: WHITE })
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
    throw new Error(`unexpected decoded layout: ${info.channels} channels, ${data.length} bytes`);
  }
  // A plain Uint8Array view (no copy): callers and deepEqual should not see Buffer semantics.
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

export async function loadImage(input: string | Uint8Array, opts: LoadOptions = {}): Promise<RgbImage> {
  const maxSide = opts.maxSide ?? 1024;
  try {
    let p = open(await imageBytes(input, opts), opts.limitInputPixels);
    if (maxSide > 0 && Number.isFinite(maxSide)) {
      p = p.resize({ width: maxSide, height: maxSide, fit: 'inside', withoutEnlargement: true });
    }
    return await finishRgb(p);
  } catch (err) {
    throw toDecodeError(input, err);
  }
}

function resizeOptions(size: number, policy: ResizePolicy): sharp.ResizeOptions {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`resize: size must be a positive integer, got ${size}`);
  switch (policy) {
    case 'squash':
      return { width: size, height: size, fit: 'fill' };
    case 'center-crop':
      return { width: size, height: size, fit: 'cover', position: 'centre' };
    case 'pad':
      return { width: size, height: size, fit: 'contain', position: 'centre', background: GRAY };
    default:
      throw new RangeError(`unknown resize policy: ${String(policy)}`);
  }
}

/** sharp pipeline over an RgbImage, validating the buffer size first. */
export function rawSharp(img: RgbImage): sharp.Sharp {
  if (img.data.length !== img.width * img.height * 3) {
    throw new RangeError(`RgbImage ${img.width}x${img.height} needs ${img.width * img.height * 3} bytes, has ${img.data.length}`);
  }
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
}

/** Resize to size x size under the given policy. */
export async function resizeRgb(img: RgbImage, size: number, policy: ResizePolicy): Promise<RgbImage> {
  const ro = resizeOptions(size, policy);
  return finishRgb(rawSharp(img).resize(ro));
}

/** Decode + orient + resize to size x size in one sharp pipeline (shrink-on-load for JPEG). */
export async function loadForModel(
  input: string | Uint8Array,
  size: number,
  policy: ResizePolicy,
  opts: Pick<LoadOptions, 'limitInputPixels' | 'maxFileBytes'> = {},
): Promise<RgbImage> {
  const ro = resizeOptions(size, policy);
  try {
    return await finishRgb(open(await imageBytes(input, opts), opts.limitInputPixels).resize(ro));
  } catch (err) {
    throw toDecodeError(input, err);
  }
}

/**
 * Whether `input` would decode, without decoding it at full size: the format check, the header
 * (size, pixel limit), then a tiny decode, which still reads the whole compressed stream and so
 * catches truncated data that a header read misses. Throws an ImageDecodeError saying why not.
 */
export async function checkDecodes(input: string | Uint8Array, opts: Pick<LoadOptions, 'limitInputPixels' | 'maxFileBytes'> = {}): Promise<void> {
  try {
    const bytes = await imageBytes(input, opts);
    const sharpOpts = sharpOptions(opts.limitInputPixels);
    const meta = await sharp(bytes, sharpOpts).metadata();
    if (!meta.width || !meta.height) throw new ImageDecodeError(describeInput(input), 'truncated or corrupt', 'no image size');
    // JPEG shrink-on-load makes this cheap but still reads the whole entropy-coded stream.
    await sharp(bytes, sharpOpts).resize(16, 16, { fit: 'inside' }).raw().toBuffer();
  } catch (err) {
    throw toDecodeError(input, err);
  }
}
