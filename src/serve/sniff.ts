/**
 * Image type by magic bytes. The declared Content-Type is never trusted: a JPEG sent as
 * `application/x-www-form-urlencoded` (curl's default) is still a JPEG, and an SVG or PDF sent as
 * `image/jpeg` is still refused before it reaches the decoder (libvips would happily render SVG,
 * which can reference URLs; nothing here ever fetches one).
 */

export type ImageType = 'jpeg' | 'png' | 'webp' | 'gif' | 'avif' | 'tiff';

export type Sniffed = { ok: true; type: ImageType } | { ok: false; why: string };

const ascii = (b: Uint8Array, at: number, len: number): string => String.fromCharCode(...b.subarray(at, at + len));

/** The image type of `b`, or why it is refused. */
export function sniffImage(b: Uint8Array): Sniffed {
  if (b.length === 0) return { ok: false, why: 'empty' };
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return { ok: true, type: 'jpeg' };
  if (b.length >= 8 && b[0] === 0x89 && ascii(b, 1, 3) === 'PNG' && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) {
    return { ok: true, type: 'png' };
  }
  if (b.length >= 6 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) return { ok: true, type: 'gif' };
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return { ok: true, type: 'webp' };
  if (b.length >= 4 && ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0x00) || (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0x00 && b[3] === 0x2a))) {
    return { ok: true, type: 'tiff' };
  }
  if (b.length >= 12 && ascii(b, 4, 4) === 'ftyp') {
    // ISO-BMFF: the major brand, then compatible brands up to the box's end.
    const boxSize = Math.min(b.length, ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0 || 12);
    const brands = [ascii(b, 8, 4)];
    for (let at = 16; at + 4 <= boxSize; at += 4) brands.push(ascii(b, at, 4));
    if (brands.some((x) => x === 'avif' || x === 'avis')) return { ok: true, type: 'avif' };
    if (brands.some((x) => /^(heic|heix|hevc|hevx|heim|heis|mif1|msf1)$/.test(x))) {
      return { ok: false, why: 'HEIC/HEIF is not supported; send JPEG (iPhone: Settings > Camera > Formats > Most Compatible)' };
    }
    return { ok: false, why: 'a video or other ISO media file, not an image' };
  }
  if (b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d) return { ok: false, why: 'BMP is not supported' };
  const head = ascii(b, 0, Math.min(b.length, 256)).trimStart().toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return { ok: false, why: 'SVG is not accepted' };
  if (head.startsWith('%pdf')) return { ok: false, why: 'PDF is not an image' };
  return { ok: false, why: 'not an image (JPEG, PNG, WebP, GIF, AVIF or TIFF expected)' };
}
