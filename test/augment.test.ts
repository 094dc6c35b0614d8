import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AUGMENT_DRAWS,
  DEFAULT_AUGMENT,
  IDENTITY_AUGMENT,
  STRONG_AUGMENT,
  type AugmentConfig,
  type AugmentParams,
  type Mat3,
  type Point,
  applyAugment,
  applyHomography,
  augment,
  colourMatrix,
  cutoutRect,
  homography,
  sampleAugmentParams,
  warpPerspective,
} from '../src/data/augment.js';
import { type RgbImage, rawSharp, resizeRgb } from '../src/data/image.js';
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
  perspective: null,
  grayscale: false,
  blurSigma: 0,
  jpegQuality: 0,
  cutout: null,
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
    assert.ok(countDiff(v1, v2) > 0, 'successive views differ');
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
      assert.ok(p.crop.left >= 0 && p.crop.top >= 0 && p.crop.left + p.crop.width <= 400 && p.crop.top + p.crop.height <= 300, `crop ${JSON.stringify(p.crop)}`);
      const small = ((p.angle + 45) % 90) - 45;
      assert.ok(Math.abs(small) <= 15, `small angle ${small}`);
      if (p.angle > 45) quarter++;
      if (p.flip) flips++;
      assert.ok(p.brightness >= 0.8 && p.brightness <= 1.2, `brightness ${p.brightness}`);
      assert.ok(p.contrast >= 0.8 && p.contrast <= 1.2, `contrast ${p.contrast}`);
      assert.ok(p.saturation >= 0.8 && p.saturation <= 1.2, `saturation ${p.saturation}`);
      assert.ok(Math.abs(p.hue) <= 15, `hue ${p.hue}`);
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

// ---------------------------------------------------------------------------------------------
// Newer ops. (Every assert.ok has a message: without one, node builds it by re-parsing the
// tsx-compiled one-line source, which can take minutes and looks like a hang.): perspective, grayscale, blur, JPEG re-encode, cut-out.

/** Every newer op forced on (probability 1). */
const ALL_ON: Partial<AugmentConfig> = {
  ...STRONG_AUGMENT,
  perspectiveProb: 1,
  grayscaleProb: 1,
  blurProb: 1,
  jpegProb: 1,
  cutoutProb: 1,
};

const NEW_FIELDS = ['perspective', 'grayscale', 'blurSigma', 'jpegQuality', 'cutout'] as const;
const oldFields = (p: AugmentParams): Omit<AugmentParams, (typeof NEW_FIELDS)[number]> => {
  const { perspective: _a, grayscale: _b, blurSigma: _c, jpegQuality: _d, cutout: _e, ...rest } = p;
  return rest;
};

/**
 * The pipeline as it was before the newer ops existed (crop+squash, then one sharp pipeline of
 * flop -> rotate -> extract -> recomb -> linear): the reference for 'newer ops off changes nothing'.
 */
async function legacyApply(img: RgbImage, size: number, p: AugmentParams): Promise<RgbImage> {
  const raw = async (s: ReturnType<typeof rawSharp>): Promise<RgbImage> => {
    const { data, info } = await s.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  };
  const base = await raw(rawSharp(img).extract(p.crop).resize(size, size, { fit: 'fill' }));
  let s = rawSharp(base);
  if (p.flip) s = s.flop();
  const angle = ((p.angle % 360) + 360) % 360;
  if (angle !== 0) {
    const r = (angle * Math.PI) / 180;
    const grown = Math.floor(size * (Math.abs(Math.cos(r)) + Math.abs(Math.sin(r))) + 1e-9);
    const off = Math.max(0, Math.floor((grown - size) / 2));
    const sum = [0, 0, 0];
    let n = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        if (x !== 0 && y !== 0 && x !== size - 1 && y !== size - 1) continue;
        for (let c = 0; c < 3; c++) sum[c]! += base.data[(y * size + x) * 3 + c]!;
        n++;
      }
    }
    const bg = { r: Math.round(sum[0]! / n), g: Math.round(sum[1]! / n), b: Math.round(sum[2]! / n) };
    s = s.rotate(angle, { background: bg }).extract({ left: off, top: off, width: size, height: size });
  }
  if (p.brightness !== 1 || p.saturation !== 1 || p.hue !== 0 || p.contrast !== 1) {
    let sum = 0;
    let n = 0;
    for (let o = 0; o + 2 < base.data.length; o += 21) {
      sum += 0.299 * base.data[o]! + 0.587 * base.data[o + 1]! + 0.114 * base.data[o + 2]!;
      n++;
    }
    const pivot = p.brightness * (sum / n);
    s = s.recomb(colourMatrix(p.brightness * p.contrast, p.saturation, p.hue)).linear(1, (1 - p.contrast) * pivot + 0.5);
  }
  return raw(s);
}

const mean = (img: RgbImage, c: number): number => {
  let s = 0;
  for (let o = c; o < img.data.length; o += 3) s += img.data[o]!;
  return s / (img.data.length / 3);
};

const variance = (img: RgbImage): number => {
  const m = img.data.reduce((a, x) => a + x, 0) / img.data.length;
  return img.data.reduce((a, x) => a + (x - m) ** 2, 0) / img.data.length;
};

const mse = (a: RgbImage, b: RgbImage): number => {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += (a.data[i]! - b.data[i]!) ** 2;
  return s / a.data.length;
};

describe('newer ops off change nothing', () => {
  const img = pattern(160, 120);

  test('old fields: the same values as before the newer ops existed (golden, seeds 9 and 42)', () => {
    // Recorded with the implementation that drew only the original 48 values.
    const near = (a: AugmentParams, b: ReturnType<typeof oldFields>): void => {
      assert.deepEqual(a.crop, b.crop);
      assert.equal(a.flip, b.flip);
      for (const k of ['angle', 'brightness', 'contrast', 'saturation', 'hue'] as const) {
        assert.ok(Math.abs(a[k] - b[k]) < 1e-12, `${k}: ${a[k]} vs ${b[k]}`);
      }
    };
    near(sampleAugmentParams(400, 300, createRng(9)), {
      crop: { left: 1, top: 1, width: 393, height: 297 }, angle: 80.4273086367175, flip: false,
      brightness: 0.8161315657198429, contrast: 1.1408982211723924, saturation: 0.9941996145993471, hue: -13.835940796416253,
    });
    near(sampleAugmentParams(400, 300, createRng(42)), {
      crop: { left: 79, top: 12, width: 285, height: 286 }, angle: 7.472026250325143, flip: true,
      brightness: 0.8264292380772531, contrast: 1.1903961808420718, saturation: 0.9449575013481081, hue: -9.284765962511301,
    });
  });

  test('old fields do not depend on the newer ops\' settings; new ones are neutral when off', () => {
    for (let seed = 0; seed < 20; seed++) {
      const off = sampleAugmentParams(400, 300, createRng(seed));
      const on = sampleAugmentParams(400, 300, createRng(seed), { ...DEFAULT_AUGMENT, ...ALL_ON, cropScale: DEFAULT_AUGMENT.cropScale, rot90Prob: DEFAULT_AUGMENT.rot90Prob });
      assert.deepEqual(oldFields(on), oldFields(off));
      assert.deepEqual(
        { perspective: off.perspective, grayscale: off.grayscale, blurSigma: off.blurSigma, jpegQuality: off.jpegQuality, cutout: off.cutout },
        { perspective: null, grayscale: false, blurSigma: 0, jpegQuality: 0, cutout: null },
      );
      assert.ok(on.perspective && on.grayscale && on.blurSigma > 0 && on.jpegQuality > 0 && on.cutout, `seed ${seed}: all on`);
    }
  });

  test('a fixed number of draws per view, whatever the config', () => {
    for (const cfg of [IDENTITY_AUGMENT, DEFAULT_AUGMENT, STRONG_AUGMENT, ALL_ON]) {
      const rng = createRng(5);
      sampleAugmentParams(300, 200, rng, cfg);
      const ref = createRng(5);
      for (let i = 0; i < AUGMENT_DRAWS; i++) ref.next();
      assert.equal(rng.next(), ref.next());
    }
  });

  test('DEFAULT views are pixel-identical to the original pipeline', async () => {
    for (let seed = 0; seed < 8; seed++) {
      for (const cfg of [DEFAULT_AUGMENT, { ...DEFAULT_AUGMENT, rot90Prob: 1 }]) {
        const p = sampleAugmentParams(img.width, img.height, createRng(seed), cfg);
        const out = await augment(img, 48, createRng(seed), cfg);
        assert.deepEqual(out.data, (await legacyApply(img, 48, p)).data, `seed ${seed}`);
      }
    }
  });

  test('each newer op with probability 0 leaves the view unchanged, whatever its range', async () => {
    const wild: Partial<AugmentConfig> = {
      perspective: 0.3, blurSigma: [3, 5], jpegQuality: [5, 10], cutoutScale: [0.5, 0.9],
    };
    for (let seed = 0; seed < 4; seed++) {
      const ref = await augment(img, 48, createRng(seed), DEFAULT_AUGMENT);
      const out = await augment(img, 48, createRng(seed), { ...DEFAULT_AUGMENT, ...wild });
      assert.deepEqual(out.data, ref.data, `seed ${seed}`);
    }
  });
});

describe('newer ops: sampling', () => {
  test('deterministic per seed, including the new fields', () => {
    for (const seed of [1, 2, 3]) {
      assert.deepEqual(sampleAugmentParams(640, 480, createRng(seed), STRONG_AUGMENT), sampleAugmentParams(640, 480, createRng(seed), STRONG_AUGMENT));
    }
    assert.notDeepEqual(sampleAugmentParams(640, 480, createRng(1), ALL_ON), sampleAugmentParams(640, 480, createRng(2), ALL_ON));
  });

  test('STRONG_AUGMENT: rates and ranges', () => {
    const rng = createRng(17);
    const n = 3000;
    const count = { perspective: 0, grayscale: 0, blur: 0, jpeg: 0, cutout: 0 };
    const qualities = new Set<number>();
    for (let i = 0; i < n; i++) {
      const p = sampleAugmentParams(640, 480, rng, STRONG_AUGMENT);
      if (p.perspective) {
        count.perspective++;
        assert.equal(p.perspective.length, 8);
        assert.ok(p.perspective.every((d) => Math.abs(d) <= 0.1), `offsets ${p.perspective}`);
      }
      if (p.grayscale) count.grayscale++;
      if (p.blurSigma > 0) {
        count.blur++;
        assert.ok(p.blurSigma >= 0.3 && p.blurSigma <= 1.5, `sigma ${p.blurSigma}`);
      }
      if (p.jpegQuality > 0) {
        count.jpeg++;
        assert.ok(Number.isInteger(p.jpegQuality) && p.jpegQuality >= 30 && p.jpegQuality <= 90, `quality ${p.jpegQuality}`);
        qualities.add(p.jpegQuality);
      }
      if (p.cutout) {
        count.cutout++;
        const { left, top, width, height } = p.cutout;
        const area = width * height;
        const ratio = width / height;
        assert.ok(area >= 0.02 - 1e-12 && area <= 0.15 + 1e-12, `cut-out area ${area}`);
        assert.ok(ratio >= 0.5 - 1e-9 && ratio <= 2 + 1e-9, `cut-out ratio ${ratio}`);
        assert.ok(left >= 0 && top >= 0 && left + width <= 1 + 1e-12 && top + height <= 1 + 1e-12, `cut-out ${JSON.stringify(p.cutout)}`);
      }
    }
    const expected = { perspective: 0.5, grayscale: 0.1, blur: 0.2, jpeg: 0.3, cutout: 0.3 };
    for (const k of Object.keys(expected) as (keyof typeof expected)[]) {
      assert.ok(Math.abs(count[k] / n - expected[k]) < 0.035, `${k} rate ${count[k] / n}`);
    }
    assert.ok(qualities.has(30) && qualities.has(90), 'both quality ends occur');
  });

  test('STRONG_AUGMENT is DEFAULT_AUGMENT plus the study settings', () => {
    assert.deepEqual(STRONG_AUGMENT, {
      ...DEFAULT_AUGMENT,
      cropScale: [0.35, 1],
      rot90Prob: 0.5,
      perspective: 0.1,
      perspectiveProb: 0.5,
      grayscaleProb: 0.1,
      blurProb: 0.2,
      blurSigma: [0.3, 1.5],
      jpegProb: 0.3,
      jpegQuality: [30, 90],
      cutoutProb: 0.3,
      cutoutScale: [0.02, 0.15],
    });
    for (const k of ['perspectiveProb', 'grayscaleProb', 'blurProb', 'jpegProb', 'cutoutProb'] as const) {
      assert.equal(DEFAULT_AUGMENT[k], 0, `DEFAULT ${k}`);
      assert.equal(IDENTITY_AUGMENT[k], 0, `IDENTITY ${k}`);
    }
  });

  test('invalid configs throw a RangeError naming the field', () => {
    const bad: [Partial<AugmentConfig>, RegExp][] = [
      [{ perspectiveProb: 1.5 }, /perspectiveProb/],
      [{ grayscaleProb: -0.1 }, /grayscaleProb/],
      [{ blurProb: Number.NaN }, /blurProb/],
      [{ perspective: 0.5 }, /perspective must/],
      [{ perspective: -0.01 }, /perspective must/],
      [{ blurProb: 0.5, blurSigma: [0.1, 1] }, /blurSigma/],
      [{ blurProb: 0.5, blurSigma: [1, 0.5] }, /blurSigma/],
      [{ jpegProb: 0.5, jpegQuality: [0, 50] }, /jpegQuality/],
      [{ jpegProb: 0.5, jpegQuality: [50, 101] }, /jpegQuality/],
      [{ jpegProb: 0.5, jpegQuality: [10.5, 50] }, /jpegQuality/],
      [{ jpegProb: 0.5, jpegQuality: [60, 50] }, /jpegQuality/],
      [{ cutoutProb: 0.5, cutoutScale: [0.1, 1.5] }, /cutoutScale/],
      [{ cutoutProb: 0.5, cutoutScale: [0, 0] }, /cutoutScale/],
    ];
    for (const [cfg, re] of bad) {
      assert.throws(() => sampleAugmentParams(100, 100, createRng(1), cfg), (e: unknown) => e instanceof RangeError && re.test(e.message), JSON.stringify(cfg));
    }
    // A disabled op may carry a placeholder range.
    assert.doesNotThrow(() => sampleAugmentParams(100, 100, createRng(1), { blurSigma: [0, 0], jpegQuality: [0, 0], cutoutScale: [0, 0] }));
  });
});

describe('perspective', () => {
  test('homography maps the 4 point pairs, and recovers a known matrix', () => {
    const known: Mat3 = [[1.1, 0.2, 5], [-0.1, 0.9, 3], [0.001, -0.002, 1]];
    const from: Point[] = [[0, 0], [100, 0], [100, 80], [0, 80]];
    const to = from.map((q) => applyHomography(known, q));
    const h = homography(from, to);
    for (let i = 0; i < 4; i++) {
      const [x, y] = applyHomography(h, from[i]!);
      assert.ok(Math.abs(x - to[i]![0]) < 1e-9 && Math.abs(y - to[i]![1]) < 1e-9, `corner ${i}: ${[x, y]} vs ${to[i]}`);
    }
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) assert.ok(Math.abs(h[r]![c]! - known[r]![c]!) < 1e-9, `h[${r}][${c}]`);
    // A fifth point, not used for the fit, maps as the known matrix says.
    const [x, y] = applyHomography(h, [37, 61]);
    const [ex, ey] = applyHomography(known, [37, 61]);
    assert.ok(Math.abs(x - ex) < 1e-9 && Math.abs(y - ey) < 1e-9, `fifth point ${[x, y]} vs ${[ex, ey]}`);
    assert.throws(() => homography([[0, 0], [1, 1], [2, 2], [0, 5]], from), RangeError);
  });

  test('zero offsets give the image back exactly', () => {
    const img = pattern(37, 29);
    const out = warpPerspective(img, [0, 0, 0, 0, 0, 0, 0, 0], { r: 1, g: 2, b: 3 });
    assert.deepEqual(out.data, img.data);
  });

  test('equal corner offsets translate by whole pixels, filling what comes in', () => {
    const img = pattern(20, 20);
    const fill = { r: 7, g: 8, b: 9 };
    const dx = 3;
    const dy = -2;
    const off = Array.from({ length: 4 }, () => [dx / 20, dy / 20]).flat();
    const out = warpPerspective(img, off, fill);
    for (let y = 0; y < 20; y++) {
      for (let x = 0; x < 20; x++) {
        const sx = x - dx;
        const sy = y - dy;
        const want: Rgb = sx >= 0 && sy >= 0 && sx < 20 && sy < 20 ? px(img, sx, sy) : [7, 8, 9];
        assert.deepEqual(px(out, x, y), want, `(${x},${y})`);
      }
    }
  });

  test('corners pulled in: the view shrinks to the middle, the border colour fills around it', async () => {
    const size = 40;
    const ring = paint(size, size, (x, y) => (x < 3 || y < 3 || x > 36 || y > 36 ? [200, 60, 20] : [20, 60, 200]));
    const q = 0.25;
    const p: AugmentParams = { ...identityParams(size, size), perspective: [q, q, -q, q, -q, -q, q, -q] };
    const out = await applyAugment(ring, size, p);
    for (const [x, y] of [[0, 0], [39, 0], [0, 39], [39, 39], [20, 2], [2, 20], [5, 5]] as const) {
      assert.deepEqual(px(out, x, y), [200, 60, 20], `fill at (${x},${y})`);
    }
    assert.deepEqual(px(out, 20, 20), [20, 60, 200], 'centre keeps the interior');
    // The whole image now spans [10, 30): its own ring sits just inside that edge.
    const [r, , b] = px(out, 20, 10);
    assert.ok(r > 150 && b < 80, `shrunken ring at (20,10): ${px(out, 20, 10)}`);
    const [, , b2] = px(out, 20, 13);
    assert.ok(b2 > 150, `interior at (20,13): ${px(out, 20, 13)}`);
  });
});

describe('colour, blur, JPEG, cut-out', () => {
  test('grayscale: R = G = B = luma', async () => {
    const img = pattern(50, 40);
    const ref = await resizeRgb(img, 32, 'squash');
    const out = await applyAugment(img, 32, { ...identityParams(50, 40), grayscale: true });
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const [r, g, b] = px(out, x, y);
        assert.ok(r === g && g === b, `(${x},${y}): ${[r, g, b]}`);
        const [R, G, B] = px(ref, x, y);
        assert.ok(Math.abs(r - (0.299 * R + 0.587 * G + 0.114 * B)) <= 1.5, `luma at (${x},${y})`);
      }
    }
    // Hue and saturation do not matter once grey.
    const out2 = await applyAugment(img, 32, { ...identityParams(50, 40), grayscale: true, hue: 40, saturation: 1.3 });
    assert.deepEqual(out2.data, out.data);
  });

  test('blur flattens a 1-px checkerboard, more with a larger sigma; the mean stays', async () => {
    const checker = paint(32, 32, (x, y) => ((x + y) % 2 ? [255, 255, 255] : [0, 0, 0]));
    const v0 = variance(checker);
    const soft = await applyAugment(checker, 32, { ...identityParams(32, 32), blurSigma: 0.5 });
    const blurred = await applyAugment(checker, 32, { ...identityParams(32, 32), blurSigma: 1.5 });
    // (With sharp's default mask cut-off, sigma 0.5 would leave the pattern untouched.)
    assert.ok(variance(soft) < 0.5 * v0, `sigma 0.5: ${variance(soft)} vs ${v0}`);
    assert.ok(variance(blurred) < 0.02 * v0, `sigma 1.5: ${variance(blurred)} vs ${v0}`);
    assert.ok(Math.abs(mean(blurred, 0) - 127.5) < 3, `mean ${mean(blurred, 0)}`);
  });

  test('JPEG quality 10 changes pixels but keeps the mean colour; quality 95 changes less', async () => {
    const img = pattern(96, 96);
    const clean = await applyAugment(img, 64, identityParams(96, 96));
    const q10 = await applyAugment(img, 64, { ...identityParams(96, 96), jpegQuality: 10 });
    const q95 = await applyAugment(img, 64, { ...identityParams(96, 96), jpegQuality: 95 });
    assert.deepEqual([q10.width, q10.height, q10.data.length], [64, 64, 64 * 64 * 3]);
    assert.ok(countDiff(clean, q10) > clean.data.length / 2, `changed ${countDiff(clean, q10)} of ${clean.data.length}`);
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(mean(q10, c) - mean(clean, c)) < 3, `channel ${c} mean ${mean(q10, c)} vs ${mean(clean, c)}`);
    assert.ok(mse(clean, q95) < mse(clean, q10) / 4, `mse q95 ${mse(clean, q95)} vs q10 ${mse(clean, q10)}`);
  });

  test('cut-out fills exactly its box with the mean colour, nothing else changes', async () => {
    const img = pattern(50, 40);
    const clean = await applyAugment(img, 32, identityParams(50, 40));
    const want: Rgb = [0, 1, 2].map((c) => Math.round(mean(clean, c))) as Rgb;
    const cutout = { left: 0.25, top: 0.5, width: 0.25, height: 0.125 };
    assert.deepEqual(cutoutRect(cutout, 32), { x0: 8, y0: 16, x1: 16, y1: 20 });
    const out = await applyAugment(img, 32, { ...identityParams(50, 40), cutout });
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const inside = x >= 8 && x < 16 && y >= 16 && y < 20;
        assert.deepEqual(px(out, x, y), inside ? want : px(clean, x, y), `(${x},${y})`);
      }
    }
  });

  test('a sampled cut-out covers its sampled box and about the sampled area', async () => {
    const img = pattern(120, 90);
    const size = 64;
    const clean = await resizeRgb(img, size, 'squash');
    for (let seed = 0; seed < 6; seed++) {
      const cfg = { ...IDENTITY_AUGMENT, cutoutProb: 1, cutoutScale: [0.05, 0.2] as [number, number] };
      const p = sampleAugmentParams(120, 90, createRng(seed), cfg);
      const out = await augment(img, size, createRng(seed), cfg);
      const box = cutoutRect(p.cutout!, size);
      const fill = px(out, box.x0, box.y0);
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const inside = x >= box.x0 && x < box.x1 && y >= box.y0 && y < box.y1;
          assert.deepEqual(px(out, x, y), inside ? fill : px(clean, x, y), `seed ${seed} (${x},${y})`);
        }
      }
      const area = ((box.x1 - box.x0) * (box.y1 - box.y0)) / (size * size);
      assert.ok(area > 0.05 * 0.7 && area < 0.2 * 1.3, `seed ${seed}: pixel area ${area}`);
    }
  });

  test('everything on: size x size, deterministic, and the input is left alone', async () => {
    const img = pattern(160, 120);
    const before = img.data.slice();
    for (const seed of [1, 2, 3]) {
      const a = await augment(img, 56, createRng(seed), ALL_ON);
      const b = await augment(img, 56, createRng(seed), ALL_ON);
      assert.deepEqual([a.width, a.height, a.data.length], [56, 56, 56 * 56 * 3]);
      assert.deepEqual(a.data, b.data);
      // Grayscale before JPEG: chroma stays near zero.
      for (let o = 0; o < a.data.length; o += 3 * 17) assert.ok(Math.abs(a.data[o]! - a.data[o + 2]!) <= 6, `seed ${seed}: not grey at ${o}`);
    }
    assert.deepEqual(img.data, before);
  });
});
