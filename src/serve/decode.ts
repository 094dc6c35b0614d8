/**
 * Uploaded bytes -> the network's input tensor, with the service's checks: magic-byte type check
 * (the one format policy of src/data/formats.ts, which the CLI applies to files too), sharp's
 * pixel limit (checked from the header, before any pixel is decoded), and errors that name
 * the file. Every file of a request is checked before any inference runs, so a request either
 * fails as a whole, naming each bad file, or is classified as a whole.
 */
import type { Preprocessing } from '../backbones/registry.js';
import { normalizeToCHW } from '../backbones/preprocess.js';
import { ImageDecodeError, loadForModel } from '../data/image.js';
import { ApiError, decodeApiError, FilesError } from './errors.js';
import { checkFormat } from './sniff.js';

export interface Upload {
  /** Multipart filename, or null for a raw body (or a part without one). */
  filename: string | null;
  /** How errors name it: the filename, else `file #i` / `body`. */
  label: string;
  bytes: Uint8Array;
}

export interface DecodedUploads {
  /** Normalised NCHW float32 pixels, one image after the other. */
  input: Float32Array;
  count: number;
  /** Milliseconds spent decoding each image (decodes run concurrently). */
  decodeMs: number[];
}

/** Cheap checks that need no decoding: empty, and type by magic bytes (same messages as the CLI's). */
export function checkUpload(u: Upload): ApiError | undefined {
  const c = checkFormat(u.bytes);
  if (c.ok) return undefined;
  if (c.code === 'empty') return new ApiError(400, 'empty_image', 'the image is empty (0 bytes)', u.label);
  return new ApiError(415, 'unsupported_media_type', c.message, u.label);
}

/** Decodes every upload; throws a FilesError naming each one that cannot be classified. */
export async function decodeUploads(uploads: readonly Upload[], pre: Preprocessing, maxPixels: number): Promise<DecodedUploads> {
  const per = 3 * pre.size * pre.size;
  const early = uploads.map(checkUpload);
  if (early.some((e) => e !== undefined)) throw new FilesError(early.filter((e): e is ApiError => e !== undefined));
  const input = new Float32Array(uploads.length * per);
  const decodeMs = new Array<number>(uploads.length).fill(0);
  const errors = await Promise.all(
    uploads.map(async (u, i): Promise<ApiError | undefined> => {
      const t0 = performance.now();
      try {
        const rgb = await loadForModel(u.bytes, pre.size, pre.resize, { limitInputPixels: maxPixels });
        normalizeToCHW(rgb.data, pre, input, i * per);
        return undefined;
      } catch (err) {
        if (err instanceof ImageDecodeError) return decodeApiError(err, u.label, maxPixels);
        throw err;
      } finally {
        decodeMs[i] = performance.now() - t0;
      }
    }),
  );
  const bad = errors.filter((e): e is ApiError => e !== undefined);
  if (bad.length > 0) throw new FilesError(bad);
  return { input, count: uploads.length, decodeMs };
}
