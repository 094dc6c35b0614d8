/**
 * The one image-format policy of the CLI (`predict`, `train`, `evaluate`) and the service: the
 * type of a file comes from its first bytes (magic numbers), never from its name or a declared
 * Content-Type, and only the formats below are ever handed to the decoder. Everything else is
 * refused with the same message everywhere. In particular SVG (which libvips would render, and
 * which can reference URLs), PDF, HEIC/HEIF and BMP never reach the decoder.
 *
 * No imports, no Node APIs: this module also runs in a browser.
 */

/** The formats that are decoded (first frame only, for animated GIF/WebP). */
export type ImageType = 'jpeg' | 'png' | 'webp' | 'gif' | 'avif' | 'tiff';

export const SUPPORTED_TYPES: readonly ImageType[] = ['jpeg', 'png', 'webp', 'gif', 'avif', 'tiff'];

/** File extensions that folder and dataset scans pick up (a file named explicitly is tried whatever its name). */
export const SUPPORTED_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.tif', '.tiff'];

/** Why a file is refused before decoding; `message` is what users see (CLI rows, skipped lists, HTTP errors). */
export type RefusalCode = 'empty' | 'heic' | 'svg' | 'bmp' | 'pdf' | 'iso-media' | 'not-image';

export const REFUSALS: Readonly<Record<RefusalCode, string>> = {
  empty: 'empty file',
  heic: 'HEIC/HEIF is not supported; convert it to JPEG (iPhone: Settings > Camera > Formats > Most Compatible)',
  svg: 'SVG is not supported (a drawing, not a photo)',
  bmp: 'BMP is not supported',
  pdf: 'PDF is not an image',
  'iso-media': 'a video or other ISO media file, not an image',
  'not-image': 'not an image (JPEG, PNG, WebP, GIF, AVIF or TIFF expected)',
};

export type FormatCheck = { ok: true; type: ImageType } | { ok: false; code: RefusalCode; message: string };

/** How many leading bytes checkFormat looks at (a caller reading a file needs no more). */
export const SNIFF_BYTES = 512;

const ascii = (b: Uint8Array, at: number, len: number): string => String.fromCharCode(...b.subarray(at, Math.min(b.length, at + len)));

const refuse = (code: RefusalCode): FormatCheck => ({ ok: false, code, message: REFUSALS[code] });

/** The image type of `b` (its first SNIFF_BYTES are enough), or why it is refused. */
export function checkFormat(b: Uint8Array): FormatCheck {
  if (b.length === 0) return refuse('empty');
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
    const boxSize = Math.min(b.length, SNIFF_BYTES, ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0 || 12);
    const brands = [ascii(b, 8, 4)];
    for (let at = 16; at + 4 <= boxSize; at += 4) brands.push(ascii(b, at, 4));
    if (brands.some((x) => x === 'avif' || x === 'avis')) return { ok: true, type: 'avif' };
    if (brands.some((x) => /^(heic|heix|hevc|hevx|heim|heis|mif1|msf1)$/.test(x))) return refuse('heic');
    return refuse('iso-media');
  }
  if (b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d) return refuse('bmp');
  // Text formats: skip a UTF-8 byte-order mark and leading white space.
  const head = ascii(b, 0, 256).replace(/^\xef\xbb\xbf/, '').trimStart().toLowerCase();
  if (head.startsWith('<svg') || ((head.startsWith('<?xml') || head.startsWith('<!doctype svg') || head.startsWith('<!--')) && head.includes('<svg'))) {
    return refuse('svg');
  }
  if (head.startsWith('%pdf')) return refuse('pdf');
  return refuse('not-image');
}

/** The older shape of checkFormat's answer (serve's sniffImage): `why` is 'empty' for 0 bytes, else the message. */
export type Sniffed = { ok: true; type: ImageType } | { ok: false; why: string };

export function sniffImage(b: Uint8Array): Sniffed {
  const c = checkFormat(b);
  if (c.ok) return c;
  return { ok: false, why: c.code === 'empty' ? 'empty' : c.message };
}
