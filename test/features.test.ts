/** The trunk feature store: per-view determinism, the disk cache, and what the cache key covers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBackbone } from '../src/backbones/load.js';
import { normalizeToCHW } from '../src/backbones/preprocess.js';
import { cutLayer, getBackbone } from '../src/backbones/registry.js';
import { DEFAULT_AUGMENT } from '../src/data/augment.js';
import { loadForModel, type RgbImage } from '../src/data/image.js';
import { Trunk } from '../src/model/trunk.js';
import { FeatureStore, flipRgb, rotateRgb90 } from '../src/train/features.js';
import { sha256File } from '../src/util/hash.js';
import { envWithMobilenet } from './helpers/infer-fixture.js';
import { haveData, IMAGES as FILES } from './helpers/paths.js';

const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test('feature store: views, determinism and disk cache', { skip: !haveData && 'no shared data' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-features-'));
  try {
    const spec = getBackbone('mobilenet_v2');
    const backbone = await loadBackbone(spec, { env: envWithMobilenet() });
    const trunk = await Trunk.create(backbone, { cut: cutLayer(spec, 2), pool: false });
    const sources = await Promise.all(FILES.map(async (path) => ({ path, sha256: await sha256File(path) })));
    const make = (seed: number) =>
      new FeatureStore({ trunk, preprocessing: spec.preprocessing, augment: DEFAULT_AUGMENT, seed, trunkKey: 'test', cacheDir: dir });

    const first = await make(1).extract(sources, 3);
    assert.equal(first.stats.computed, 6);
    assert.equal(first.stats.fromDisk, 0);
    assert.deepEqual(trunk.outputShape, [7, 7, 56]);

    // View 0 is the plain resized image through the trunk.
    const pre = spec.preprocessing;
    const x = new Float32Array(3 * pre.size * pre.size);
    normalizeToCHW((await loadForModel(FILES[0]!, pre.size, pre.resize)).data, pre, x);
    assert.ok(maxDiff(first.features[0]![0]!, await trunk.run(x, 1)) < 1e-5);
    // Augmented views differ from the clean one and from each other.
    assert.ok(maxDiff(first.features[0]![0]!, first.features[0]![1]!) > 0.1);
    assert.ok(maxDiff(first.features[0]![1]!, first.features[0]![2]!) > 0.1);

    // Same settings again: everything comes from disk, bit for bit.
    const again = await make(1).extract(sources, 3);
    assert.equal(again.stats.fromDisk, 6);
    assert.equal(again.stats.computed, 0);
    assert.equal(maxDiff(again.features[1]![2]!, first.features[1]![2]!), 0);

    // Another seed: the clean views are shared, the augmented ones are recomputed and differ.
    const other = await make(2).extract(sources, 3);
    assert.equal(other.stats.fromDisk, 2);
    assert.equal(other.stats.computed, 4);
    assert.ok(maxDiff(other.features[0]![1]!, first.features[0]![1]!) > 0.1);

    // Test-time views: the clean image mirrored / turned, through the trunk; cached apart from view numbers.
    const test = await make(1).extract(sources, ['hflip', 'rot90']);
    assert.equal(test.stats.computed, 4);
    const clean = await loadForModel(FILES[0]!, pre.size, pre.resize);
    normalizeToCHW(flipRgb(clean).data, pre, x);
    assert.ok(maxDiff(test.features[0]![0]!, await trunk.run(x, 1)) < 1e-5);
    normalizeToCHW(rotateRgb90(clean).data, pre, x);
    assert.ok(maxDiff(test.features[0]![1]!, await trunk.run(x, 1)) < 1e-5);
    assert.equal((await make(3).extract(sources, ['hflip'])).stats.fromDisk, 2, 'test views do not depend on the seed');
    await trunk.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('flipRgb mirrors and rotateRgb90 turns clockwise; four turns are the identity', () => {
  // 2x2: a b / c d, each pixel a distinct colour.
  const px = (v: number): number[] => [v, v + 1, v + 2];
  const img = { width: 2, height: 2, data: new Uint8Array([...px(10), ...px(20), ...px(30), ...px(40)]) };
  assert.deepEqual([...flipRgb(img).data], [...px(20), ...px(10), ...px(40), ...px(30)]);
  // Clockwise: the left column (a, c) becomes the top row read right to left: c a / d b.
  assert.deepEqual([...rotateRgb90(img).data], [...px(30), ...px(10), ...px(40), ...px(20)]);
  const big = { width: 5, height: 5, data: Uint8Array.from({ length: 75 }, (_, i) => (i * 37) % 251) };
  let r: RgbImage = big;
  for (let k = 0; k < 4; k++) r = rotateRgb90(r);
  assert.deepEqual(r.data, big.data);
  assert.notDeepEqual(rotateRgb90(big).data, big.data);
  assert.throws(() => rotateRgb90({ width: 2, height: 3, data: new Uint8Array(18) }), /must be square/);
});
