import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import { loadImage } from '../src/data/image.js';
import { findNearDuplicates, hammingDistance, perceptualHash } from '../src/data/phash.js';
import { createRng } from '../src/util/rng.js';
import { DATA as PHONES, havePhotos } from './helpers/paths.js';

// Real photos are read in place from the shared, read-only dataset (never copied here).
const photo = (cls: string, i: number): string => {
  const files = readdirSync(join(PHONES, cls)).filter((f) => /\.jpe?g$/i.test(f)).sort();
  return join(PHONES, cls, files[i % files.length]!);
};

/** Synthetic 'photo': soft colour blobs, i.e. a natural-image-like, low-frequency-heavy spectrum. */
async function synthetic(seed: number): Promise<Uint8Array> {
  const w = 160;
  const h = 120;
  const rng = createRng(seed);
  const blobs = Array.from({ length: 12 }, () => ({
    x: rng.uniform(0, w),
    y: rng.uniform(0, h),
    r: rng.uniform(8, 40),
    c: [rng.uniform(-120, 120), rng.uniform(-120, 120), rng.uniform(-120, 120)],
  }));
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < 3; k++) {
        let v = 128;
        for (const b of blobs) v += b.c[k]! * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.r * b.r));
        data[(y * w + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  return sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

describe('hammingDistance', () => {
  test('counts differing bits; accepts hex or bigint', () => {
    assert.equal(hammingDistance('0000000000000000', 'ffffffffffffffff'), 64);
    assert.equal(hammingDistance('8000000000000001', '0000000000000000'), 2);
    assert.equal(hammingDistance('00000000000000f0', 0x0fn), 8);
    assert.equal(hammingDistance(0xffffffff00000000n, 'FFFFFFFF00000000'), 0);
    assert.throws(() => hammingDistance('abc', '0000000000000000'), RangeError);
  });
});

describe('perceptualHash', () => {
  test('16 hex chars; same pixels from any input form give the same hash', async () => {
    const png = await synthetic(1);
    const h = await perceptualHash(png);
    assert.match(h, /^[0-9a-f]{16}$/);
    const rgb = await loadImage(png);
    assert.equal(await perceptualHash(rgb), h);
  });

  test('robust to resize, recompression and brightening; inversion flips most bits', async () => {
    const png = await synthetic(2);
    const h = await perceptualHash(png);
    const edited = await sharp(png).resize(97, 73).modulate({ brightness: 1.08 }).jpeg({ quality: 55 }).toBuffer();
    const dEdit = hammingDistance(h, await perceptualHash(edited));
    assert.ok(dEdit <= 6, `edited: ${dEdit}`);
    const inverted = await sharp(png).negate().png().toBuffer();
    const dInv = hammingDistance(h, await perceptualHash(inverted));
    // Not all 63: libvips greys in linear light, so sRGB inversion is not an exact grey inversion.
    assert.ok(dInv >= 40, `inverted: ${dInv}`);
    const other = await perceptualHash(await synthetic(5));
    assert.ok(hammingDistance(h, other) > 16, `unrelated synthetic images: ${hammingDistance(h, other)}`);
  });

  test('EXIF orientation is applied before hashing', async () => {
    const png = await synthetic(3);
    const rotated = await sharp(png).rotate(90).png().toBuffer();
    // Stored unrotated but tagged 'rotate 90° clockwise' -> displays like `rotated`.
    const tagged = await sharp(png).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const hr = await perceptualHash(rotated);
    assert.ok(hammingDistance(hr, await perceptualHash(tagged)) <= 4);
    assert.ok(hammingDistance(hr, await perceptualHash(png)) > 10, 'rotation itself changes the hash');
  });

  test('real photos: an edited copy stays close, different photos are far apart', { skip: !havePhotos && 'no ../shared dataset' }, async () => {
    const a = photo('front', 3);
    const b = photo('none', 7);
    const ha = await perceptualHash(a);
    const hb = await perceptualHash(b);
    const meta = await sharp(a).metadata();
    const edited = await sharp(a)
      .rotate()
      .resize(Math.round((meta.width ?? 400) * 0.6))
      .linear(1.1, 5)
      .jpeg({ quality: 60 })
      .toBuffer();
    const dEdit = hammingDistance(ha, await perceptualHash(edited));
    const dOther = hammingDistance(ha, hb);
    assert.ok(dEdit <= 6, `edited copy: ${dEdit}`);
    assert.ok(dOther > 12, `unrelated photos: ${dOther}`);
  });
});

describe('findNearDuplicates', () => {
  const items = [
    { id: 'a', hash: '0000000000000000' },
    { id: 'b', hash: '0000000000000003' }, // 2 from a
    { id: 'c', hash: 'ffff000000000000' }, // 16 from a
    { id: 'd', hash: '0000000000000001' }, // 1 from a, 1 from b
  ];

  test('within one list: each pair once, closest first', () => {
    const pairs = findNearDuplicates(items);
    assert.deepEqual(pairs, [
      { a: 'a', b: 'd', distance: 1 },
      { a: 'b', b: 'd', distance: 1 },
      { a: 'a', b: 'b', distance: 2 },
    ]);
    assert.deepEqual(findNearDuplicates(items, items, 1).length, 2, 'same array = self mode');
  });

  test('between two lists, with a threshold', () => {
    const val = [{ id: 'v1', hash: 'ffff000000000001' }, { id: 'v2', hash: '1234567812345678' }];
    assert.deepEqual(findNearDuplicates(items, val, 0), []);
    assert.deepEqual(findNearDuplicates(items, val), [{ a: 'c', b: 'v1', distance: 1 }]);
    assert.deepEqual(findNearDuplicates(items, val, 17).map((p) => p.a + p.b), ['cv1', 'dv1', 'av1', 'bv1']);
  });
});
