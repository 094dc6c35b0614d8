import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import {
  ImageDecodeError,
  PAD_GRAY,
  type RgbImage,
  isSupportedImagePath,
  loadForModel,
  loadImage,
  resizeRgb,
} from '../src/data/image.js';

type Rgb = [number, number, number];
const RED: Rgb = [220, 20, 20];
const GREEN: Rgb = [20, 200, 40];
const BLUE: Rgb = [30, 40, 220];
const WHITE: Rgb = [255, 255, 255];

/** Raw RGB image painted by a function of (x, y). */
function paint(width: number, height: number, f: (x: number, y: number) => Rgb): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(f(x, y), (y * width + x) * 3);
  }
  return { data, width, height };
}

const toSharp = (img: RgbImage): sharp.Sharp =>
  sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });

function px(img: RgbImage, x: number, y: number): Rgb {
  const o = (y * img.width + x) * 3;
  return [img.data[o]!, img.data[o + 1]!, img.data[o + 2]!];
}

function assertNear(actual: Rgb, expected: Rgb, tol: number, what: string): void {
  const ok = actual.every((v, i) => Math.abs(v - expected[i]!) <= tol);
  assert.ok(ok, `${what}: got [${actual}] expected ~[${expected}] (±${tol})`);
}

// Quadrants: TL red, TR blue, BL green, BR white.
const quad = (w: number, h: number): RgbImage =>
  paint(w, h, (x, y) => (y < h / 2 ? (x < w / 2 ? RED : BLUE) : x < w / 2 ? GREEN : WHITE));

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'phoneside-image-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('isSupportedImagePath', () => {
  test('by extension, case-insensitive', () => {
    for (const p of ['a.jpg', 'b.JPEG', 'c.png', 'd.WebP', 'e.gif', 'f.avif', 'g.tif', 'h.TIFF', '/x/y.Jpg']) {
      assert.equal(isSupportedImagePath(p), true, p);
    }
    for (const p of ['a.txt', 'b.heic', 'c', 'jpg', 'd.jpg.bak', '.png.txt']) assert.equal(isSupportedImagePath(p), false, p);
  });
});

describe('loadImage formats', () => {
  const img = quad(64, 48);
  const checkQuad = (out: RgbImage, tol: number, what: string): void => {
    assert.equal(out.width, 64, `${what} width`);
    assert.equal(out.height, 48, `${what} height`);
    assert.equal(out.data.length, 64 * 48 * 3, `${what} bytes`);
    assert.equal(Object.getPrototypeOf(out.data), Uint8Array.prototype, `${what}: plain Uint8Array`);
    assertNear(px(out, 8, 8), RED, tol, `${what} TL`);
    assertNear(px(out, 56, 8), BLUE, tol, `${what} TR`);
    assertNear(px(out, 8, 40), GREEN, tol, `${what} BL`);
    assertNear(px(out, 56, 40), WHITE, tol, `${what} BR`);
  };

  test('JPEG from file and from buffer', async () => {
    const file = join(dir, 'q.jpg');
    await toSharp(img).jpeg({ quality: 95 }).toFile(file);
    checkQuad(await loadImage(file), 12, 'jpeg file');
    checkQuad(await loadImage(await sharp(file).toBuffer()), 12, 'jpeg buffer');
  });

  test('PNG, WebP, TIFF, AVIF', async () => {
    checkQuad(await loadImage(await toSharp(img).png().toBuffer()), 0, 'png');
    checkQuad(await loadImage(await toSharp(img).webp({ lossless: true }).toBuffer()), 0, 'webp');
    checkQuad(await loadImage(await toSharp(img).tiff({ compression: 'lzw' }).toBuffer()), 0, 'tiff');
    checkQuad(await loadImage(await toSharp(img).avif({ quality: 90 }).toBuffer()), 20, 'avif');
  });

  test('PNG alpha is flattened onto white', async () => {
    // Left half: fully transparent; right half: 50% red.
    const w = 20;
    const h = 10;
    const rgba = new Uint8Array(w * h * 4);
    for (let i = 0; i < w * h; i++) {
      const x = i % w;
      rgba.set(x < w / 2 ? [0, 0, 0, 0] : [255, 0, 0, 128], i * 4);
    }
    const png = await sharp(rgba, { raw: { width: w, height: h, channels: 4 } }).png().toBuffer();
    const out = await loadImage(png);
    assert.equal(out.data.length, w * h * 3);
    assertNear(px(out, 2, 5), WHITE, 0, 'transparent -> white');
    assertNear(px(out, 15, 5), [255, 127, 127], 2, 'half red over white');
  });

  test('animated GIF: first frame only', async () => {
    const w = 16;
    const h = 8;
    const frames = [RED, BLUE, GREEN].map((c) => paint(w, h, () => c));
    const tall = new Uint8Array(w * h * 3 * 3);
    frames.forEach((f, i) => tall.set(f.data, i * w * h * 3));
    const gif = await sharp(tall, { raw: { width: w, height: h * 3, channels: 3, pageHeight: h } }).gif().toBuffer();
    assert.equal((await sharp(gif).metadata()).pages, 3, 'fixture really is animated');
    const out = await loadImage(gif);
    assert.equal(out.width, w);
    assert.equal(out.height, h);
    assertNear(px(out, 3, 3), RED, 10, 'frame 0');
    assertNear(px(out, 12, 6), RED, 10, 'frame 0');
  });

  test('16-bit PNG -> 8-bit RGB', async () => {
    const png16 = await toSharp(img).toColourspace('rgb16').png().toBuffer();
    assert.equal((await sharp(png16).metadata()).depth, 'ushort', 'fixture really is 16-bit');
    checkQuad(await loadImage(png16), 1, 'png16');
  });

  test('grayscale JPEG -> 3 equal channels', async () => {
    const g = await toSharp(img).toColourspace('b-w').jpeg().toBuffer();
    assert.equal((await sharp(g).metadata()).channels, 1, 'fixture really is 1-channel');
    const out = await loadImage(g);
    assert.equal(out.data.length, 64 * 48 * 3);
    const ref = await toSharp(img).toColourspace('b-w').raw().toBuffer(); // libvips' own grey values
    for (const [x, y] of [[8, 8], [56, 8], [8, 40], [56, 40]] as const) {
      const [r, gg, b] = px(out, x, y);
      assert.equal(r, gg);
      assert.equal(gg, b);
      assert.ok(Math.abs(r - ref[y * 64 + x]!) <= 6, `(${x},${y}): ${r} vs ${ref[y * 64 + x]}`);
    }
    assert.ok(px(out, 56, 40)[0] > 245, 'white stays white');
    assert.ok(px(out, 56, 8)[0] < 100, 'blue is dark');
  });

  test('CMYK JPEG -> sRGB', async () => {
    const cmyk = await toSharp(img).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
    assert.equal((await sharp(cmyk).metadata()).space, 'cmyk', 'fixture really is CMYK');
    const out = await loadImage(cmyk);
    assert.equal(out.data.length, 64 * 48 * 3);
    // A CMYK round trip without an embedded profile is not exact; check the hues survive.
    const [r, g, b] = px(out, 8, 8);
    assert.ok(r > 150 && g < 90 && b < 90, `red quadrant: [${r},${g},${b}]`);
    const [r2, g2, b2] = px(out, 56, 8);
    assert.ok(b2 > 110 && b2 > r2 + 60 && b2 > g2 + 50, `blue quadrant: [${r2},${g2},${b2}]`);
  });

  test('EXIF orientation 6 is applied (rotate 90° clockwise)', async () => {
    // Stored 40x20: TL red, TR blue, BL green, BR white. Displayed: 20x40 with
    // stored-BL at top-left, stored-TL at top-right, stored-BR at bottom-left, stored-TR bottom-right.
    const file = join(dir, 'exif6.jpg');
    await toSharp(quad(40, 20)).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toFile(file);
    assert.equal((await sharp(file).metadata()).orientation, 6, 'fixture has orientation 6');
    const out = await loadImage(file);
    assert.equal(out.width, 20);
    assert.equal(out.height, 40);
    assertNear(px(out, 4, 4), GREEN, 15, 'top-left');
    assertNear(px(out, 15, 4), RED, 15, 'top-right');
    assertNear(px(out, 4, 35), WHITE, 15, 'bottom-left');
    assertNear(px(out, 15, 35), BLUE, 15, 'bottom-right');

    const m = await loadForModel(file, 10, 'squash');
    assert.equal(m.width, 10);
    assert.equal(m.height, 10);
    assertNear(px(m, 1, 1), GREEN, 20, 'model input top-left');
    assertNear(px(m, 8, 1), RED, 20, 'model input top-right');
  });

  test('maxSide downscales big images and never upscales', async () => {
    const big = await toSharp(quad(300, 200)).png().toBuffer();
    const a = await loadImage(big, { maxSide: 100 });
    assert.deepEqual([a.width, a.height], [100, 67]);
    const b = await loadImage(big, { maxSide: 1000 });
    assert.deepEqual([b.width, b.height], [300, 200]);
    const c = await loadImage(big, { maxSide: 0 });
    assert.deepEqual([c.width, c.height], [300, 200]);
    const d = await loadImage(big);
    assert.deepEqual([d.width, d.height], [300, 200], 'default 1024 leaves small images alone');
  });
});

describe('loadImage errors', () => {
  const expectDecodeError = async (p: Promise<unknown>, path: string, reason: string): Promise<void> => {
    await assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof ImageDecodeError, `expected ImageDecodeError, got ${String(err)}`);
      assert.equal(err.name, 'ImageDecodeError');
      assert.equal(err.path, path);
      assert.equal(err.reason, reason);
      assert.ok(err.message.includes(reason));
      return true;
    });
  };

  test('truncated JPEG', async () => {
    const noisy = await sharp({
      create: { width: 128, height: 128, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } },
    }).jpeg().toBuffer();
    const file = join(dir, 'truncated.jpg');
    await writeFile(file, noisy.subarray(0, Math.floor(noisy.length * 0.6)));
    await expectDecodeError(loadImage(file), file, 'truncated or corrupt');
    await expectDecodeError(loadForModel(file, 32, 'squash'), file, 'truncated or corrupt');
  });

  test('text file named .jpg', async () => {
    const file = join(dir, 'notes.jpg');
    await writeFile(file, 'this is not an image\n');
    await expectDecodeError(loadImage(file), file, 'not an image (JPEG, PNG, WebP, GIF, AVIF or TIFF expected)');
    await expectDecodeError(loadImage(new TextEncoder().encode('nope')), '<buffer>', 'not an image (JPEG, PNG, WebP, GIF, AVIF or TIFF expected)');
  });

  test('missing file, empty file, too many pixels', async () => {
    const missing = join(dir, 'missing.png');
    await expectDecodeError(loadImage(missing), missing, 'file not found');
    const empty = join(dir, 'empty.png');
    await writeFile(empty, new Uint8Array(0));
    await expectDecodeError(loadImage(empty), empty, 'empty file');
    const file = join(dir, 'big.png');
    await toSharp(quad(100, 100)).png().toFile(file);
    await expectDecodeError(loadImage(file, { limitInputPixels: 5000 }), file, 'too many pixels');
    await expectDecodeError(loadForModel(file, 8, 'pad', { limitInputPixels: 5000 }), file, 'too many pixels');
  });
});

describe('resizeRgb / loadForModel policies', () => {
  // 40x20, vertical stripes: x<10 green, 10<=x<30 red, x>=30 blue.
  const stripes = paint(40, 20, (x) => (x < 10 ? GREEN : x < 30 ? RED : BLUE));

  test('squash keeps everything, stretched', async () => {
    const out = await resizeRgb(stripes, 10, 'squash');
    assert.deepEqual([out.width, out.height, out.data.length], [10, 10, 300]);
    assertNear(px(out, 0, 5), GREEN, 10, 'left');
    assertNear(px(out, 5, 5), RED, 10, 'middle');
    assertNear(px(out, 9, 5), BLUE, 10, 'right');
  });

  test('center-crop keeps the centre only', async () => {
    const out = await resizeRgb(stripes, 10, 'center-crop');
    assert.deepEqual([out.width, out.height], [10, 10]);
    // ±15: lanczos rings a little next to the cut-off stripes.
    for (const x of [0, 5, 9]) assertNear(px(out, x, 5), RED, 15, `x=${x}`);
  });

  test('pad letterboxes onto gray', async () => {
    const out = await resizeRgb(stripes, 10, 'pad');
    assert.deepEqual([out.width, out.height], [10, 10]);
    const gray: Rgb = [PAD_GRAY, PAD_GRAY, PAD_GRAY];
    assertNear(px(out, 5, 0), gray, 0, 'top band');
    assertNear(px(out, 5, 9), gray, 0, 'bottom band');
    assertNear(px(out, 0, 5), GREEN, 15, 'content left');
    assertNear(px(out, 9, 5), BLUE, 15, 'content right');
  });

  test('loadForModel matches load + resizeRgb', async () => {
    const png = await toSharp(stripes).png().toBuffer();
    for (const policy of ['squash', 'center-crop', 'pad'] as const) {
      const one = await loadForModel(png, 10, policy);
      const two = await resizeRgb(await loadImage(png), 10, policy);
      assert.deepEqual([one.width, one.height], [10, 10]);
      let maxDiff = 0;
      for (let i = 0; i < one.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(one.data[i]! - two.data[i]!));
      assert.ok(maxDiff <= 2, `${policy}: max diff ${maxDiff}`);
    }
  });

  test('pad with a transparent PNG: content on white, border gray', async () => {
    const rgba = new Uint8Array(40 * 20 * 4); // fully transparent
    const png = await sharp(rgba, { raw: { width: 40, height: 20, channels: 4 } }).png().toBuffer();
    const out = await loadForModel(png, 10, 'pad');
    assertNear(px(out, 5, 5), WHITE, 0, 'content');
    assertNear(px(out, 5, 0), [PAD_GRAY, PAD_GRAY, PAD_GRAY], 0, 'border');
  });

  test('rejects a bad size or a wrong-length buffer', async () => {
    await assert.rejects(resizeRgb(stripes, 0, 'squash'), RangeError);
    await assert.rejects(resizeRgb({ data: new Uint8Array(5), width: 2, height: 2 }, 4, 'squash'), RangeError);
  });
});
