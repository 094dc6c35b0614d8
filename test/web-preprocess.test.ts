/**
 * The page's preprocessing (web/resize.js, plain browser JS) against phoneside's Node pipeline
 * (sharp): from the same decoded pixels it must give the same model input, bit for bit, for the
 * three resize policies, shrinking, enlarging and mixed; plus the normalisation and the
 * 'uncertain' rule.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { getBackbone, listBackbones, type Preprocessing } from '../src/backbones/registry.js';
import { normalizeToCHW } from '../src/backbones/preprocess.js';
import { loadForModel, loadImage, resizeRgb, RESIZE_POLICIES, type ResizePolicy, type RgbImage } from '../src/data/image.js';
import { decide } from '../src/infer/prediction.js';
import { webDir } from '../src/web/assets.js';
import { DATA as PHONES, havePhotos as haveData } from './helpers/paths.js';
import { SLOW } from './helpers/slow.js';

interface ResizeModule {
  resizeForModel(img: RgbImage, size: number, policy: ResizePolicy, jpeg: boolean): RgbImage;
  normalizeToCHW(rgb: Uint8Array, pre: Preprocessing): Float32Array;
  planResize(w: number, h: number, size: number, policy: ResizePolicy, jpeg: boolean): { jpegShrink: number };
  checkPreprocessing(p: unknown): Preprocessing;
}
interface PreprocessModule {
  isJpeg(bytes: Uint8Array): boolean;
  jpegIsTruncated(bytes: Uint8Array): boolean;
}
interface DeviceModule {
  decide(classes: string[], probs: ArrayLike<number>, thresholds: Record<string, number>): { label: string; predicted: string; confidence: number };
}

// The browser modules are plain JS, shipped as-is; load them as the browser would, by URL.
const web = (name: string): Promise<unknown> => import(pathToFileURL(join(webDir(), name)).href);
const resize = (await web('resize.js')) as ResizeModule;
const device = (await web('device-mode.js')) as DeviceModule;
const preprocess = (await web('preprocess.js')) as PreprocessModule;


/** Deterministic noise with some structure (edges and gradients make resampling differences show). */
function synthetic(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let s = seed >>> 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      const i = (y * width + x) * 3;
      data[i] = (x * 255) / width;
      data[i + 1] = ((x >> 3) + (y >> 3)) % 2 ? 230 : 20;
      data[i + 2] = s >>> 24;
    }
  }
  return { data, width, height };
}

function diff(a: Uint8Array, b: Uint8Array): { max: number; mean: number } {
  assert.equal(a.length, b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    sum += d;
    if (d > max) max = d;
  }
  return { max, mean: sum / a.length };
}

describe('web preprocessing (web/resize.js) matches sharp', () => {
  it('is bit-identical to sharp on raw pixels: shrink, enlarge, mixed, all policies', async () => {
    const sizes: [number, number][] = [[640, 306], [333, 640], [256, 256], [95, 95], [136, 252], [241, 209], [3000, 2000], [1001, 1777], [224, 224], [640, 160]];
    for (const [w, h] of sizes) {
      const img = synthetic(w, h, w * 31 + h);
      for (const policy of RESIZE_POLICIES) {
        const ref = await resizeRgb(img, 224, policy);
        const got = resize.resizeForModel(img, 224, policy, false);
        assert.equal(got.width, ref.width);
        assert.equal(got.height, ref.height);
        const d = diff(got.data, ref.data);
        assert.equal(d.max, 0, `${w}x${h} ${policy}: max difference ${d.max}, mean ${d.mean.toFixed(4)}`);
      }
    }
  });

  it('is bit-identical to loadForModel on real photos (same decoded pixels)', { skip: (!haveData && 'needs ../shared/datasets/phones') || SLOW }, async () => {
    const files = ['front', 'back', 'none'].flatMap((c) =>
      readdirSync(join(PHONES, c)).sort().filter((_, i) => i % 40 === 0).map((f) => join(PHONES, c, f)),
    );
    assert.ok(files.length >= 15);
    for (const f of files) {
      const full = await loadImage(f, { maxSide: 0 });
      for (const policy of RESIZE_POLICIES) {
        const ref = await loadForModel(f, 224, policy);
        const got = resize.resizeForModel(full, 224, policy, true);
        const d = diff(got.data, ref.data);
        assert.equal(d.max, 0, `${f} ${policy}: max difference ${d.max}, mean ${d.mean.toFixed(4)}`);
      }
    }
  });

  it('stays close to sharp on a large JPEG, which sharp shrinks inside the decoder', async () => {
    const src = synthetic(2400, 1800, 7);
    const jpeg = new Uint8Array(await sharp(src.data, { raw: { width: src.width, height: src.height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
    assert.equal(resize.planResize(2400, 1800, 224, 'squash', true).jpegShrink, 4);
    const full = await loadImage(jpeg, { maxSide: 0 });
    const ref = await loadForModel(jpeg, 224, 'squash');
    const d = diff(resize.resizeForModel(full, 224, 'squash', true).data, ref.data);
    // The decoder's scaled IDCT is emulated by a box average, so some difference remains:
    // measured max 11 / mean 0.87 levels on this noisy image, max 2-8 / mean 0.3-1.2 on
    // upscaled photos; the bounds leave room for other JPEG encoders' output.
    const plain = diff(resize.resizeForModel(full, 224, 'squash', false).data, ref.data);
    console.log(`large JPEG (shrink-on-load 4): max ${d.max}, mean ${d.mean.toFixed(3)} levels (without the emulation: mean ${plain.mean.toFixed(3)})`);
    assert.ok(d.mean < 2, `mean difference ${d.mean}`);
    assert.ok(d.max <= 16, `max difference ${d.max}`);
    assert.ok(plain.mean > d.mean, `the shrink-on-load emulation should help (${plain.mean} vs ${d.mean})`);
  });

  it('refuses truncated JPEGs as sharp does, and no complete one', { skip: !haveData && 'needs ../shared/datasets/phones' }, async () => {
    const files = ['front', 'back', 'none'].flatMap((c) => readdirSync(join(PHONES, c)).map((f) => join(PHONES, c, f)));
    let jpegs = 0;
    for (const f of files) {
      const bytes = new Uint8Array(readFileSync(f));
      if (!preprocess.isJpeg(bytes)) continue;
      jpegs++;
      assert.equal(preprocess.jpegIsTruncated(bytes), false, `${f} is complete`);
      const cut = bytes.subarray(0, Math.floor(bytes.length * 0.6));
      assert.equal(preprocess.jpegIsTruncated(cut), true, `${f} cut at 60%`);
      if (jpegs <= 3) await assert.rejects(loadForModel(cut, 224, 'squash'), /truncated or corrupt/, 'sharp refuses it too');
    }
    assert.ok(jpegs > 700, `${jpegs} JPEGs`);
  });

  it('normalises exactly as src/backbones/preprocess.ts for every backbone', () => {
    for (const b of listBackbones()) {
      const pre = b.preprocessing;
      const rgb = synthetic(pre.size, pre.size, 3).data;
      const want = new Float32Array(3 * pre.size * pre.size);
      normalizeToCHW(rgb, pre, want);
      assert.deepEqual(resize.normalizeToCHW(rgb, pre), want, b.id);
    }
  });

  it('gives the same Prediction as src/infer/prediction.ts decide(): label (uncertain below a class threshold), predicted, confidence, probabilities', () => {
    const classes = ['back', 'front', 'none'];
    const thresholds = { front: 0.7 };
    for (const probs of [[0.1, 0.65, 0.25], [0.1, 0.8, 0.1], [0.5, 0.2, 0.3], [1 / 3, 1 / 3, 1 / 3]]) {
      const want = decide(classes, probs, 0, thresholds);
      const got = device.decide(classes, probs, thresholds);
      assert.deepEqual(got, want, JSON.stringify(probs));
    }
  });

  it('rejects a preprocessing block it cannot follow', () => {
    const good = getBackbone('mobilenet_v2').preprocessing;
    assert.deepEqual(resize.checkPreprocessing(good), good);
    assert.throws(() => resize.checkPreprocessing({ ...good, resize: 'stretch' }), /resize must be one of/);
    assert.throws(() => resize.checkPreprocessing({ ...good, std: [1, 0, 1] }), /std/);
    assert.throws(() => resize.checkPreprocessing({ ...good, channelOrder: 'RGBA' }), /channelOrder/);
    assert.throws(() => resize.checkPreprocessing(undefined), /size/);
  });
});
