/**
 * Bad input, made at test time (no binary fixtures in the repository): files that are empty,
 * truncated, random, lying about their type, decompression bombs, unusual but valid images (CMYK,
 * 16-bit, grey, 1x1, 10000x100, alpha, animated, every EXIF orientation), formats the policy
 * refuses (SVG, HEIC, BMP, PDF), hostile names (spaces, unicode, newline, tab, escape codes, a
 * leading dash, 240 characters, bytes that are not UTF-8), a folder holding two links to its
 * parent, and a FIFO. Used by test/hostile-files.test.ts; the temporary-folder helpers are shared
 * with other tests (tampered bundles and the like).
 *
 * Self-contained (sharp and node:fs only, nothing from src/), so it also runs against an older
 * checkout to see how that one behaves.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';

// ---------------------------------------------------------------------------------------------
// Temporary folders

export interface TempDir {
  /** The folder (absolute). */
  dir: string;
  /** A path inside it. */
  path(...parts: string[]): string;
  /** Removes it and everything in it. */
  cleanup(): Promise<void>;
}

/** A fresh folder under the OS temp folder. */
export async function makeTempDir(prefix = 'phoneside-test-'): Promise<TempDir> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, path: (...parts) => join(dir, ...parts), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A temporary folder for a describe block: made in its before(), removed in its after(). Call it
 * inside describe() (at file level under Node 20, its before() was not run ahead of the file's other hooks), and
 * read `.dir` / `.path()` inside tests or hooks (not at module load).
 */
export function useTempDir(prefix?: string): { readonly dir: string; path(...parts: string[]): string } {
  let t: TempDir | undefined;
  before(async () => {
    t = await makeTempDir(prefix);
  });
  after(async () => {
    await t?.cleanup();
  });
  const get = (): TempDir => {
    if (!t) throw new Error('useTempDir: the folder exists only while the tests run (read it inside a test or hook)');
    return t;
  };
  return {
    get dir() {
      return get().dir;
    },
    path: (...parts) => get().path(...parts),
  };
}

/** Runs `fn` with a fresh temporary folder, removed afterwards whatever happens. */
export async function withTempDir<T>(fn: (t: TempDir) => Promise<T>, prefix?: string): Promise<T> {
  const t = await makeTempDir(prefix);
  try {
    return await fn(t);
  } finally {
    await t.cleanup();
  }
}

// ---------------------------------------------------------------------------------------------
// Bytes

/** Deterministic pseudo-random bytes (xorshift32). */
export function randomBytesSeeded(n: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of b) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/**
 * A PNG header announcing width x height 1-bit grey pixels, with one compressed row of data: a
 * few hundred bytes that claim, by default, 10^10 pixels (a decompression bomb, refused from the
 * header by the pixel limit before anything is decoded).
 */
export function pixelBombPng(width = 100_000, height = 100_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  const row = Buffer.alloc(1 + Math.ceil(width / 8)); // filter byte + packed bits
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(row)),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}

/** The start of an iPhone HEIC file: an ISO-BMFF `ftyp` box (brand heic, compatible mif1 heic), then junk. */
export function heicHeader(): Buffer {
  const ftyp = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypheic', 'latin1'), Buffer.alloc(4), Buffer.from('mif1heic', 'latin1')]);
  const meta = Buffer.concat([Buffer.from([0, 0, 0, 0x28]), Buffer.from('meta', 'latin1'), randomBytesSeeded(32, 7)]);
  return Buffer.concat([ftyp, meta]);
}

/** A valid 2x2, 24-bit BMP (libvips cannot read BMP; the policy refuses it before). */
export function bmp2x2(): Buffer {
  const rowBytes = 8; // 2 px * 3 bytes, padded to 4
  const pixels = Buffer.alloc(rowBytes * 2, 0x80);
  const h = Buffer.alloc(54);
  h.write('BM', 0, 'latin1');
  h.writeUInt32LE(54 + pixels.length, 2);
  h.writeUInt32LE(54, 10);
  h.writeUInt32LE(40, 14);
  h.writeInt32LE(2, 18);
  h.writeInt32LE(2, 22);
  h.writeUInt16LE(1, 26);
  h.writeUInt16LE(24, 28);
  h.writeUInt32LE(pixels.length, 34);
  return Buffer.concat([h, pixels]);
}

export const SVG_TEXT =
  '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48">' +
  '<rect width="64" height="48" fill="#d22"/><image href="http://example.invalid/x.png" width="8" height="8"/></svg>\n';

export const PDF_TEXT = '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n';

type Rgb = [number, number, number];
export const COLOURS = { red: [220, 20, 20] as Rgb, blue: [30, 40, 220] as Rgb, green: [20, 200, 40] as Rgb, white: [255, 255, 255] as Rgb };
export type ColourName = keyof typeof COLOURS;

/** Raw RGB quadrants: top-left red, top-right blue, bottom-left green, bottom-right white. */
function quadrants(w: number, h: number): sharp.Sharp {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const c = y < h / 2 ? (x < w / 2 ? COLOURS.red : COLOURS.blue) : x < w / 2 ? COLOURS.green : COLOURS.white;
      data.set(c, (y * w + x) * 3);
    }
  }
  return sharp(data, { raw: { width: w, height: h, channels: 3 } });
}

/** Where the stored top-left ... quadrants end up once EXIF orientation 1..8 is applied: the displayed top-left colour. */
export const ORIENTATION_TOP_LEFT: Record<number, ColourName> = { 1: 'red', 2: 'blue', 3: 'white', 4: 'green', 5: 'red', 6: 'green', 7: 'white', 8: 'blue' };

/** A 40x20 quadrant JPEG tagged with EXIF orientation `o` (displayed 20x40 for 5..8). */
export function jpegWithOrientation(o: number): Promise<Buffer> {
  return quadrants(40, 20).jpeg({ quality: 95 }).withMetadata({ orientation: o }).toBuffer();
}

async function truncatedJpeg(): Promise<Buffer> {
  const noisy = await sharp({ create: { width: 128, height: 128, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
    .jpeg()
    .toBuffer();
  return noisy.subarray(0, Math.floor(noisy.length * 0.6));
}

async function animatedGif(): Promise<Buffer> {
  const w = 16;
  const h = 8;
  const tall = Buffer.alloc(w * h * 3 * 3);
  [COLOURS.red, COLOURS.blue, COLOURS.green].forEach((c, f) => {
    for (let i = 0; i < w * h; i++) tall.set(c, (f * w * h + i) * 3);
  });
  return sharp(tall, { raw: { width: w, height: h * 3, channels: 3, pageHeight: h } }).gif().toBuffer();
}

async function alphaPng(): Promise<Buffer> {
  const w = 20;
  const h = 10;
  const rgba = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) rgba.set(i % w < w / 2 ? [0, 0, 0, 0] : [255, 0, 0, 128], i * 4);
  return sharp(rgba, { raw: { width: w, height: h, channels: 4 } }).png().toBuffer();
}

const solid = (width: number, height: number): sharp.Sharp => sharp({ create: { width, height, channels: 3, background: { r: 90, g: 120, b: 150 } } });

/** A small valid JPEG, different for each `n` (the content of the odd-name cases: no two byte-identical). */
export const smallJpeg = (n = 0): Promise<Buffer> =>
  sharp({ create: { width: 32, height: 24, channels: 3, background: { r: (40 + 37 * n) % 256, g: (90 + 53 * n) % 256, b: (160 + 71 * n) % 256 } } })
    .jpeg({ quality: 90 })
    .toBuffer();

/** What a corpus file is meant to test. */
export type CaseGroup =
  /** Bytes that decode (unusual but valid images). */
  | 'image'
  /** Bytes the format policy refuses from their first bytes. */
  | 'refused'
  /** Bytes of an accepted type that do not decode, or are refused by a limit. */
  | 'broken'
  /** A valid image under an odd name. */
  | 'name'
  /** Not a regular file, or a link. */
  | 'special';

/** The byte-content cases: id -> [file name, group, how to make the bytes]. */
export const BYTE_CASES: Record<string, { name: string; group: CaseGroup; make: () => Promise<Buffer> | Buffer }> = {
  'zero-byte': { name: 'empty.jpg', group: 'broken', make: () => Buffer.alloc(0) },
  'truncated-jpeg': { name: 'truncated.jpg', group: 'broken', make: truncatedJpeg },
  'random-bytes': { name: 'random.jpg', group: 'refused', make: () => randomBytesSeeded(4096) },
  'text-as-png': { name: 'text.png', group: 'refused', make: () => Buffer.from('hello, I am a text file and not a PNG\n') },
  'pixel-bomb': { name: 'bomb.png', group: 'broken', make: () => pixelBombPng() },
  'cmyk-jpeg': { name: 'cmyk.jpg', group: 'image', make: () => quadrants(64, 48).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer() },
  'png-16bit': { name: 'sixteen-bit.png', group: 'image', make: () => quadrants(64, 48).toColourspace('rgb16').png().toBuffer() },
  grayscale: { name: 'gray.jpg', group: 'image', make: () => quadrants(64, 48).toColourspace('b-w').jpeg().toBuffer() },
  '1x1': { name: '1x1.png', group: 'image', make: () => solid(1, 1).png().toBuffer() },
  '10000x100': { name: 'wide-10000x100.png', group: 'image', make: () => solid(10_000, 100).png({ compressionLevel: 9 }).toBuffer() },
  'alpha-png': { name: 'alpha.png', group: 'image', make: alphaPng },
  'animated-gif': { name: 'animated.gif', group: 'image', make: animatedGif },
  webp: { name: 'photo.webp', group: 'image', make: () => quadrants(64, 48).webp({ quality: 90 }).toBuffer() },
  avif: { name: 'photo.avif', group: 'image', make: () => quadrants(64, 48).avif({ quality: 60 }).toBuffer() },
  tiff: { name: 'photo.tiff', group: 'image', make: () => quadrants(64, 48).tiff({ compression: 'lzw' }).toBuffer() },
  svg: { name: 'drawing.svg', group: 'refused', make: () => Buffer.from(SVG_TEXT) },
  heic: { name: 'photo.heic', group: 'refused', make: heicHeader },
  bmp: { name: 'image.bmp', group: 'refused', make: bmp2x2 },
  pdf: { name: 'doc.pdf', group: 'refused', make: () => Buffer.from(PDF_TEXT) },
  ...Object.fromEntries(
    [1, 2, 3, 4, 5, 6, 7, 8].map((o) => [`exif-${o}`, { name: `orient-${o}.jpg`, group: 'image' as const, make: () => jpegWithOrientation(o) }]),
  ),
};

/** The odd-name cases (each a small valid JPEG): id -> file name. */
export const NAME_CASES: Record<string, string> = {
  'name-space': 'with space.jpg',
  'name-unicode': 'ünïcødé 日本 📱.jpg',
  'name-newline': 'new\nline.jpg',
  'name-tab': 'tab\there.jpg',
  'name-escape': 'ansi-\x1b[31mred\x1b[0m.jpg',
  'name-dash': '-leading-dash.jpg',
  'name-long': `${'l'.repeat(240)}.jpg`,
};

/** The name of the non-UTF-8 case: `bad-` 0xFF 0xFE `-name.jpg`, and how predict shows it. */
export const NON_UTF8_NAME = Buffer.concat([Buffer.from('bad-'), Buffer.from([0xff, 0xfe]), Buffer.from('-name.jpg')]);
export const NON_UTF8_SHOWN = 'bad-\\xff\\xfe-name.jpg';

export interface CorpusCase {
  id: string;
  group: CaseGroup;
  /** The file name (for the non-UTF-8 case: as predict shows it). */
  name: string;
  /** Full path for node:fs: a Buffer for the non-UTF-8 name. */
  fsPath: string | Buffer;
  /** Full path as text, as predict prints it (bad bytes as \xHH). */
  path: string;
  /** The file's bytes (undefined for the FIFO, the loop folder and links). */
  bytes?: Buffer;
}

export interface HostileCorpus {
  dir: string;
  cases: CorpusCase[];
  /** The case with this id (throws if the platform could not make it: see `unavailable`). */
  get(id: string): CorpusCase;
  has(id: string): boolean;
  /** Cases this filesystem or OS could not make (a FIFO on Windows, a non-UTF-8 name on APFS), with why. */
  unavailable: { id: string; why: string }[];
}

/**
 * Writes the corpus into `dir` (made if missing):
 * - every BYTE_CASES file and every NAME_CASES file (a small JPEG) at the top;
 * - `bad-\xff\xfe-name.jpg` (non-UTF-8 bytes in the name), where the filesystem allows it;
 * - `fifo.jpg`, a FIFO (mkfifo), where the OS has them;
 * - `alias-of-1x1.png`, a symbolic link to `1x1.png` (the same file under a second name);
 * - `loop/inner.jpg` and `loop/sub/{up1,up2}`, two symbolic links to `loop` (sub's parent): a
 *   walk that follows links without remembering folders never ends.
 */
export async function makeHostileCorpus(dir: string): Promise<HostileCorpus> {
  await mkdir(dir, { recursive: true });
  const cases: CorpusCase[] = [];
  const unavailable: { id: string; why: string }[] = [];
  for (const [id, c] of Object.entries(BYTE_CASES)) {
    const bytes = await c.make();
    const path = join(dir, c.name);
    await writeFile(path, bytes);
    cases.push({ id, group: c.group, name: c.name, fsPath: path, path, bytes });
  }
  let n = 0;
  for (const [id, name] of Object.entries(NAME_CASES)) {
    const path = join(dir, name);
    const jpeg = await smallJpeg(++n);
    await writeFile(path, jpeg);
    cases.push({ id, group: 'name', name, fsPath: path, path, bytes: jpeg });
  }
  const raw = Buffer.concat([Buffer.from(dir + '/'), NON_UTF8_NAME]);
  const jpeg = await smallJpeg(++n);
  try {
    await writeFile(raw, jpeg);
    cases.push({ id: 'name-non-utf8', group: 'name', name: NON_UTF8_SHOWN, fsPath: raw, path: join(dir, NON_UTF8_SHOWN), bytes: jpeg });
  } catch (err) {
    unavailable.push({ id: 'name-non-utf8', why: `the filesystem refuses the name: ${(err as Error).message}` });
  }
  const fifo = join(dir, 'fifo.jpg');
  try {
    execFileSync('mkfifo', [fifo], { stdio: 'ignore' });
    cases.push({ id: 'fifo', group: 'special', name: 'fifo.jpg', fsPath: fifo, path: fifo });
  } catch (err) {
    unavailable.push({ id: 'fifo', why: `mkfifo failed: ${(err as Error).message}` });
  }
  try {
    const alias = join(dir, 'alias-of-1x1.png');
    await symlink('1x1.png', alias);
    cases.push({ id: 'alias', group: 'special', name: 'alias-of-1x1.png', fsPath: alias, path: alias });
    const loop = join(dir, 'loop');
    await mkdir(join(loop, 'sub'), { recursive: true });
    const inner = await smallJpeg(++n);
    await writeFile(join(loop, 'inner.jpg'), inner);
    await symlink('..', join(loop, 'sub', 'up1'));
    await symlink('..', join(loop, 'sub', 'up2'));
    cases.push({ id: 'symlink-loop', group: 'special', name: 'loop', fsPath: loop, path: loop });
    cases.push({ id: 'loop-inner', group: 'image', name: 'loop/inner.jpg', fsPath: join(loop, 'inner.jpg'), path: join(loop, 'inner.jpg'), bytes: inner });
  } catch (err) {
    unavailable.push({ id: 'symlink-loop', why: `symbolic links failed: ${(err as Error).message}` });
  }
  const byId = new Map(cases.map((c) => [c.id, c]));
  return {
    dir,
    cases,
    unavailable,
    has: (id) => byId.has(id),
    get: (id) => {
      const c = byId.get(id);
      if (!c) throw new Error(`hostile corpus: no case '${id}'${unavailable.some((u) => u.id === id) ? ' on this platform' : ''}`);
      return c;
    },
  };
}
