import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { DatasetError, checkDecodable, scanDataset } from '../src/data/dataset.js';
import { sha256File } from '../src/util/hash.js';

let tmp = '';
let n = 0;

/** A tiny distinct image (colour derived from a counter) in the given format. */
async function img(format: 'jpeg' | 'png' | 'webp' = 'jpeg'): Promise<Buffer> {
  n++;
  return sharp({ create: { width: 8, height: 8, channels: 3, background: { r: (n * 37) % 256, g: (n * 91) % 256, b: n % 256 } } })
    .toFormat(format)
    .toBuffer();
}

async function put(root: string, rel: string, data: Uint8Array | string): Promise<string> {
  const p = join(root, ...rel.split('/'));
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, data);
  return p;
}

async function freshDir(name: string): Promise<string> {
  const d = join(tmp, name);
  await mkdir(d, { recursive: true });
  return d;
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'phoneside-dataset-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('scanDataset: one folder per class', () => {
  test('classes, items, recursion, skipped files, duplicates and conflicts', async () => {
    const root = await freshDir('flat');
    const shared = await img();
    const dup = await img('png');
    await put(root, 'front/a.jpg', shared);
    await put(root, 'front/b.PNG', await img('png'));
    await put(root, 'front/nested/deeper/c.webp', await img('webp'));
    await put(root, 'front/.hidden.jpg', await img());
    await put(root, 'front/.git/config', 'x');
    await put(root, 'front/notes.txt', 'hello');
    await put(root, 'front/LICENSE', 'mit');
    await put(root, 'back/d.png', dup);
    await put(root, 'back/zz/e.png', dup); // same bytes, same class -> dropped
    await put(root, 'back/f.jpeg', await img());
    await put(root, 'none/g.jpg', shared); // same bytes as front/a.jpg -> conflict
    await put(root, 'none/h.tif', await sharp(await img('png')).tiff().toBuffer());
    await put(root, 'README.md', '# data'); // notes beside the class folders are normal: not reported
    await put(root, 'stray.jpg', await img()); // an image outside any class folder is reported

    const scan = await scanDataset(root);
    assert.equal(scan.layout, 'classes');
    assert.deepEqual(scan.classes, ['back', 'front', 'none']);
    assert.deepEqual(
      scan.items.map((it) => [it.relPath, it.label, it.classIndex]),
      [
        ['back/d.png', 'back', 0],
        ['back/f.jpeg', 'back', 0],
        ['front/a.jpg', 'front', 1],
        ['front/b.PNG', 'front', 1],
        ['front/nested/deeper/c.webp', 'front', 1],
        ['none/g.jpg', 'none', 2],
        ['none/h.tif', 'none', 2],
      ],
    );
    for (const it of scan.items) {
      assert.equal(it.path, join(root, ...it.relPath.split('/')));
      assert.equal(it.sha256, await sha256File(it.path));
      assert.equal(it.split, undefined);
    }
    const skipped = new Map(scan.skipped.map((s) => [s.path.slice(root.length + 1).split('\\').join('/'), s.reason]));
    assert.deepEqual([...skipped.keys()].sort(), ['front/LICENSE', 'front/notes.txt', 'stray.jpg']);
    assert.match(skipped.get('front/notes.txt')!, /\.txt/);
    assert.match(skipped.get('stray.jpg')!, /class folder/);
    assert.deepEqual(scan.duplicates.map((d) => [d.label, d.kept, d.dropped]), [['back', 'back/d.png', ['back/zz/e.png']]]);
    assert.equal(scan.conflicts.length, 1);
    assert.deepEqual(scan.conflicts[0]!.files, [
      { relPath: 'front/a.jpg', label: 'front' },
      { relPath: 'none/g.jpg', label: 'none' },
    ]);
    assert.deepEqual(scan.warnings, []);
  });

  test('clear errors: missing folder, a file, fewer than 2 classes, empty class', async () => {
    await assert.rejects(scanDataset(join(tmp, 'nope')), (e: unknown) => e instanceof DatasetError && /not found/.test(e.message));
    const file = await put(tmp, 'plain.txt', 'x');
    await assert.rejects(scanDataset(file), (e: unknown) => e instanceof DatasetError && /not a folder/.test(e.message));

    const one = await freshDir('one-class');
    await put(one, 'only/a.jpg', await img());
    await assert.rejects(scanDataset(one), (e: unknown) => e instanceof DatasetError && /at least 2 class folders.*found 1 \(only\)/.test(e.message));

    const empty = await freshDir('empty-class');
    await put(empty, 'cats/a.jpg', await img());
    await put(empty, 'dogs/readme.txt', 'no images here');
    await assert.rejects(scanDataset(empty), (e: unknown) => e instanceof DatasetError && /"dogs" contains no images/.test(e.message));
  });
});

describe('scanDataset: train/ and val/ layout', () => {
  test('items carry their split; train/val duplicates keep the train copy; missing val class warns', async () => {
    const root = await freshDir('tv');
    const leak = await img();
    await put(root, 'train/x/1.jpg', await img());
    await put(root, 'train/x/2.jpg', leak);
    await put(root, 'train/y/3.jpg', await img());
    await put(root, 'train/z/4.jpg', await img());
    await put(root, 'val/x/5.jpg', await img());
    await put(root, 'val/x/6.jpg', leak);
    await put(root, 'val/y/7.jpg', await img());
    const scan = await scanDataset(root);
    assert.equal(scan.layout, 'train-val');
    assert.deepEqual(scan.classes, ['x', 'y', 'z']);
    assert.deepEqual(
      scan.items.map((it) => [it.relPath, it.label, it.split]),
      [
        ['train/x/1.jpg', 'x', 'train'],
        ['train/x/2.jpg', 'x', 'train'],
        ['train/y/3.jpg', 'y', 'train'],
        ['train/z/4.jpg', 'z', 'train'],
        ['val/x/5.jpg', 'x', 'val'],
        ['val/y/7.jpg', 'y', 'val'],
      ],
    );
    assert.deepEqual(scan.duplicates.map((d) => [d.kept, d.dropped]), [['train/x/2.jpg', ['val/x/6.jpg']]]);
    assert.equal(scan.warnings.length, 1);
    assert.match(scan.warnings[0]!, /"z" has no validation images/);
  });

  test('errors: class without training images; extra top-level folders', async () => {
    const root = await freshDir('tv-bad');
    await put(root, 'train/x/1.jpg', await img());
    await put(root, 'train/y/2.jpg', await img());
    await put(root, 'val/w/3.jpg', await img());
    await assert.rejects(scanDataset(root), (e: unknown) => e instanceof DatasetError && /"w" has no training images/.test(e.message));
    await put(root, 'train/w/4.jpg', await img());
    await put(root, 'extra/5.jpg', await img());
    await assert.rejects(scanDataset(root), (e: unknown) => e instanceof DatasetError && /extra\//.test(e.message));
  });
});

describe('checkDecodable', () => {
  test('keeps decodable files, skips broken ones with a reason, reports progress', async () => {
    const root = await freshDir('decode');
    const good1 = await put(root, 'good1.jpg', await img());
    const good2 = await put(root, 'good2.png', await img('png'));
    const noisy = await sharp({
      create: { width: 96, height: 96, channels: 3, background: '#888', noise: { type: 'gaussian', mean: 128, sigma: 40 } },
    }).jpeg().toBuffer();
    const trunc = await put(root, 'trunc.jpg', noisy.subarray(0, Math.floor(noisy.length * 0.6)));
    const text = await put(root, 'text.jpg', 'not really a jpeg');
    const items = [good1, trunc, good2, text].map((path, i) => ({ path, tag: i }));
    const progress: [number, number][] = [];
    const { ok, skipped } = await checkDecodable(items, (d, t) => progress.push([d, t]));
    assert.deepEqual(ok.map((o) => o.tag), [0, 2]);
    assert.deepEqual(skipped, [
      { path: trunc, reason: 'truncated or corrupt' },
      { path: text, reason: 'not an image (JPEG, PNG, WebP, GIF, AVIF or TIFF expected)' },
    ]);
    assert.equal(progress.length, 4);
    assert.deepEqual(progress.at(-1), [4, 4]);
  });
});
