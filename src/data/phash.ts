/**
 * 64-bit DCT perceptual hash (the classic pHash): greyscale 32x32 -> 2-D DCT-II -> the 8x8
 * lowest frequencies -> one bit per coefficient, set when above the median of the 63 AC terms
 * (the DC term only measures overall brightness, so it is left out of the median; its bit is
 * then almost always 1). Used to find near-duplicate photos, e.g. between train and val.
 */
import sharp from 'sharp';
import { type RgbImage, imageBytes, rawSharp, toDecodeError } from './image.js';

const N = 32;
const K = 8;

/** COS[u][x] = cos((2x+1)u*pi/(2N)) for the K lowest frequencies; scale factors don't matter. */
const COS: Float64Array[] = Array.from({ length: K }, (_, u) => {
  const row = new Float64Array(N);
  for (let x = 0; x < N; x++) row[x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * N));
  return row;
});

function isRgbImage(x: unknown): x is RgbImage {
  return typeof x === 'object' && x !== null && !(x instanceof Uint8Array) && 'data' in x && 'width' in x;
}

/** 32x32 greyscale pixels (row-major), alpha flattened onto white, EXIF orientation applied. */
async function grey32(input: string | Uint8Array | RgbImage): Promise<Uint8Array> {
  try {
    // Files and bytes go through the format policy (src/data/formats.ts) like every other decode.
    const base = isRgbImage(input) ? rawSharp(input) : sharp(await imageBytes(input), { pages: 1, page: 0 }).rotate();
    const { data, info } = await base
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .greyscale()
      .resize(N, N, { fit: 'fill' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels === 1) return data;
    // Defensive: keep the first band if libvips kept extra ones.
    const out = new Uint8Array(N * N);
    for (let i = 0; i < N * N; i++) out[i] = data[i * info.channels]!;
    return out;
  } catch (err) {
    if (isRgbImage(input)) throw err;
    throw toDecodeError(input, err);
  }
}

/** pHash of 32x32 greyscale pixels, as 16 lowercase hex chars (bit 63 = coefficient (0,0)). */
export function phashFromGrey32(px: Uint8Array): string {
  if (px.length !== N * N) throw new RangeError(`phashFromGrey32: need ${N * N} pixels, got ${px.length}`);
  // Separable DCT, only the K lowest frequencies: rows first (tmp[y][u]), then columns.
  const tmp = new Float64Array(N * K);
  for (let y = 0; y < N; y++) {
    for (let u = 0; u < K; u++) {
      const c = COS[u]!;
      let s = 0;
      for (let x = 0; x < N; x++) s += c[x]! * px[y * N + x]!;
      tmp[y * K + u] = s;
    }
  }
  const coef = new Float64Array(K * K); // coef[v*K + u]
  for (let v = 0; v < K; v++) {
    const c = COS[v]!;
    for (let u = 0; u < K; u++) {
      let s = 0;
      for (let y = 0; y < N; y++) s += c[y]! * tmp[y * K + u]!;
      coef[v * K + u] = s;
    }
  }
  const ac = Array.from(coef.subarray(1)).sort((a, b) => a - b);
  const median = (ac[31]! + ac[32]!) / 2; // 63 values -> ac[31] is the median; average is harmless
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < 64; i++) {
    const bit = coef[i]! > median ? 1 : 0;
    if (i < 32) hi = (hi << 1) | bit;
    else lo = (lo << 1) | bit;
  }
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

export async function perceptualHash(input: string | Uint8Array | RgbImage): Promise<string> {
  return phashFromGrey32(await grey32(input));
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Split a hash into two 32-bit halves (accepts the hex string form or a bigint). */
function halves(h: string | bigint): [number, number] {
  if (typeof h === 'bigint') {
    return [Number((h >> 32n) & 0xffffffffn), Number(h & 0xffffffffn)];
  }
  if (!/^[0-9a-fA-F]{16}$/.test(h)) throw new RangeError(`not a 64-bit hex hash: ${JSON.stringify(h)}`);
  return [parseInt(h.slice(0, 8), 16), parseInt(h.slice(8), 16)];
}

/** Number of differing bits (0..64). */
export function hammingDistance(a: string | bigint, b: string | bigint): number {
  const [ah, al] = halves(a);
  const [bh, bl] = halves(b);
  return popcount32((ah ^ bh) >>> 0) + popcount32((al ^ bl) >>> 0);
}

export interface HashedItem<Id> {
  id: Id;
  hash: string | bigint;
}

export interface NearDuplicate<Id> {
  a: Id;
  b: Id;
  distance: number;
}

/**
 * All pairs (x from a, y from b) with hamming distance <= maxDistance, closest first.
 * Pass `b` omitted (or the very same array as `a`) to compare `a` with itself (each pair once,
 * no self-pairs). Brute force over 32-bit halves: 800 x 800 images take a few ms.
 */
export function findNearDuplicates<Id>(
  a: readonly HashedItem<Id>[],
  b?: readonly HashedItem<Id>[],
  maxDistance = 6,
): NearDuplicate<Id>[] {
  const self = b === undefined || b === a;
  const other = b ?? a;
  const pa = a.map((x) => halves(x.hash));
  const pb = self ? pa : other.map((x) => halves(x.hash));
  const out: NearDuplicate<Id>[] = [];
  for (let i = 0; i < pa.length; i++) {
    const [ah, al] = pa[i]!;
    for (let j = self ? i + 1 : 0; j < pb.length; j++) {
      const [bh, bl] = pb[j]!;
      const d = popcount32((ah ^ bh) >>> 0) + popcount32((al ^ bl) >>> 0);
      if (d <= maxDistance) out.push({ a: a[i]!.id, b: other[j]!.id, distance: d });
    }
  }
  return out.sort((x, y) => x.distance - y.distance);
}
