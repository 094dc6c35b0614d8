import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_AUGMENT,
  IDENTITY_AUGMENT,
  type AugmentParams,
  applyAugment,
  augment,
  sampleAugmentParams,
} from '../src/data/augment.js';
import { type RgbImage, resizeRgb } from '../src/data/image.js';
import { createRng } from '../src/util/rng.js';

type Rgb = [number, number, number];

function paint(width: number, height: number, f: (x: number, y: number) => Rgb): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(f(x, y), (y * width + x) * 3);
  return { data, width, height };
}

function px(img: RgbImage, x: number, y: number): Rgb {
  const o = (y * img.width + x) * 3;
  return [img.data[o]!, img.data[o + 1]!, img.data[o + 2]!];
}

/** Asymmetric test pattern: colour gradients plus a dark block near the top-left. */
const pattern = (w: number, h: number): RgbImage =>
  paint(w, h, (x, y) =>
    x > w * 0.1 && x < w * 0.35 && y > h * 0.1 && y < h * 0.3
      ? [10, 10, 10]
      : [Math.round((255 * x) / w), Math.round((255 * y) / h), 128 + ((x * 7 + y * 3) % 100)],
  );

const identityParams = (w: number, h: number): AugmentParams => ({
  crop: { left: 0, top: 0, width: w, height: h },
  angle: 0,
  flip: false,
  brightness: 1,
  contrast: 1,
  saturation: 1,
  hue: 0,
});

const countDiff = (a: RgbImage, b: RgbImage): number => {
  let n = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) n++;
  return n;
};

describe('augment', () => {
  const img = pattern(120, 90);

  test('returns size x size RGB', async () => {
    for (const seed of [1, 2, 3]) {
      const out = await augment(img, 64, createRng(seed));
      assert.deepEqual([out.width, out.height, out.data.length], [64, 64, 64 * 64 * 3]);
    }
  });

  test('deterministic per seed; different seeds differ', async () => {
    const a = await augment(img, 48, createRng(7));
    const b = await augment(img, 48, createRng(7));
    assert.deepEqual(a.data, b.data);
    const c = await augment(img, 48, createRng(8));
    assert.ok(countDiff(a, c) > a.data.length / 4, 'another seed gives another view');
    // Successive draws from one stream differ too.
    const rng = createRng(7);
    const v1 = await augment(img, 48, rng);
    const v2 = await augment(img, 48, rng);
    assert.deepEqual(v1.data, a.data);
    assert.ok(countDiff(v1, v2) > 0);
  });

  test('identity config = plain squash resize', async () => {
    const out = await augment(img, 40, createRng(3), IDENTITY_AUGMENT);
    const ref = await resizeRgb(img, 40, 'squash');
    assert.deepEqual(out.data, ref.data);
  });

  test('forced flip mirrors exactly', async () => {
    const out = await augment(img, 40, createRng(5), { ...IDENTITY_AUGMENT, flipProb: 1 });
    const ref = await resizeRgb(img, 40, 'squash');
    for (let y = 0; y < 40; y++) {
      for (let x = 0; x < 40; x++) assert.deepEqual(px(out, x, y), px(ref, 39 - x, y), `(${x},${y})`);
    }
  });

  test('forced rot90 gives an exact quarter/half turn', async () => {
    const sq = pattern(60, 60);
    const ref = await resizeRgb(sq, 30, 'squash');
    const rot = (k: number) => (x: number, y: number): Rgb =>
      k === 1 ? px(ref, y, 29 - x) : k === 2 ? px(ref, 29 - x, 29 - y) : px(ref, 29 - y, x); // clockwise k*90
    const seen = new Set<number>();
    for (let seed = 0; seed < 12; seed++) {
      const out = await augment(sq, 30, createRng(seed), { ...IDENTITY_AUGMENT, rot90Prob: 1 });
      const k = [1, 2, 3].find((kk) => {
        const f = rot(kk);
        for (let y = 0; y < 30; y++) for (let x = 0; x < 30; x++) if (px(out, x, y).join() !== f(x, y).join()) return false;
        return true;
      });
      assert.ok(k !== undefined, `seed ${seed}: not a multiple-of-90 rotation`);
      seen.add(k);
    }
    assert.equal(seen.size, 3, 'all three turns occur');
  });

  test('sampled parameters stay in the configured ranges', () => {
    const rng = createRng(11);
    let quarter = 0;
    let flips = 0;
    const n = 2000;
    for (let i = 0; i < n; i++) {
      const p = sampleAugmentParams(400, 300, rng);
      const area = (p.crop.width * p.crop.height) / (400 * 300);
      const ratio = p.crop.width / p.crop.height;
      assert.ok(area >= 0.59 && area <= 1.0, `area ${area}`);
      assert.ok(ratio >= 0.74 && ratio <= 1.345, `ratio ${ratio}`);
      assert.ok(p.crop.left >= 0 && p.crop.top >= 0 && p.crop.left + p.crop.width <= 400 && p.crop.top + p.crop.height <= 300);
      const small = ((p.angle + 45) % 90) - 45;
      assert.ok(Math.abs(small) <= 15, `small angle ${small}`);
      if (p.angle > 45) quarter++;
      if (p.flip) flips++;
      assert.ok(p.brightness >= 0.8 && p.brightness <= 1.2);
      assert.ok(p.contrast >= 0.8 && p.contrast <= 1.2);
      assert.ok(p.saturation >= 0.8 && p.saturation <= 1.2);
      assert.ok(Math.abs(p.hue) <= 15);
    }
    assert.ok(Math.abs(quarter / n - DEFAULT_AUGMENT.rot90Prob) < 0.04, `rot90 rate ${quarter / n}`);
    assert.ok(Math.abs(flips / n - 0.5) < 0.04, `flip rate ${flips / n}`);
  });

  test('the same rng draws give the same params whatever the probabilities', () => {
    const a = sampleAugmentParams(100, 100, createRng(9), { flipProb: 0 });
    const b = sampleAugmentParams(100, 100, createRng(9), { flipProb: 1 });
    assert.equal(a.flip, false);
    assert.equal(b.flip, true);
    assert.deepEqual({ ...a, flip: true }, b);
  });
});

describe('applyAugment colour and rotation', () => {
  test('brightness scales, contrast pivots on the mean', async () => {
    const gray = paint(20, 20, () => [100, 100, 100]);
    const bright = await applyAugment(gray, 20, { ...identityParams(20, 20), brightness: 1.5 });
    assert.deepEqual(px(bright, 10, 10), [150, 150, 150]);
    // Half 50, half 150 (mean 100); contrast 0.5 -> 75 / 125.
    const two = paint(20, 20, (x) => (x < 10 ? [50, 50, 50] : [150, 150, 150]));
    const flat = await applyAugment(two, 20, { ...identityParams(20, 20), contrast: 0.5 });
    assert.deepEqual(px(flat, 2, 5), [75, 75, 75]);
    assert.deepEqual(px(flat, 17, 5), [125, 125, 125]);
  });

  test('saturation 0 greys, hue 180 moves red towards cyan', async () => {
    const red = paint(16, 16, () => [200, 40, 40]);
    const grey = await applyAugment(red, 16, { ...identityParams(16, 16), saturation: 0 });
    const [r, g, b] = px(grey, 8, 8);
    assert.ok(Math.abs(r - g) <= 1 && Math.abs(g - b) <= 1, `grey: ${[r, g, b]}`);
    assert.ok(Math.abs(r - 88) <= 2, `luma of [200,40,40] ≈ 88, got ${r}`);
    const cyan = await applyAugment(red, 16, { ...identityParams(16, 16), hue: 180 });
    const [cr, cg, cb] = px(cyan, 8, 8);
    assert.ok(cr < 60 && cg > 100 && cb > 100, `hue 180: ${[cr, cg, cb]}`);
  });

  test('small rotation fills the corners with the border colour', async () => {
    // Border ring (3 px) of one colour, inside another.
    const img = paint(40, 40, (x, y) => (x < 3 || y < 3 || x > 36 || y > 36 ? [200, 60, 20] : [20, 60, 200]));
    const out = await applyAugment(img, 40, { ...identityParams(40, 40), angle: 30 });
    assert.deepEqual([out.width, out.height], [40, 40]);
    for (const [x, y] of [[0, 0], [39, 0], [0, 39], [39, 39]] as const) {
      const [r, , b] = px(out, x, y);
      assert.ok(r > 150 && b < 60, `corner (${x},${y}): ${px(out, x, y)}`);
    }
    const [, , cb] = px(out, 20, 20);
    assert.ok(cb > 180, 'centre keeps the interior');
  });

  test('a few views of a 512x384 image at 224 are reasonably fast', async () => {
    const img = pattern(512, 384);
    const rng = createRng(1);
    await augment(img, 224, rng); // warm-up
    const t0 = performance.now();
    const n = 10;
    for (let i = 0; i < n; i++) await augment(img, 224, rng);
    const ms = (performance.now() - t0) / n;
    // Typically 5-15 ms on a shared 2-core box; the bound only catches pathological slowness.
    assert.ok(ms < 150, `${ms.toFixed(1)} ms per view`);
  });
});
