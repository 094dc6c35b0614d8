import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  SplitManifestError,
  applySplitManifest,
  parseSplitManifest,
  splitManifest,
  stratifiedSplit,
  valCount,
} from '../src/data/split.js';
import { sha256Hex } from '../src/util/hash.js';
import { createRng } from '../src/util/rng.js';

interface Item {
  label: string;
  sha256: string;
  relPath: string;
}

function makeItems(counts: Record<string, number>): Item[] {
  const out: Item[] = [];
  for (const [label, n] of Object.entries(counts)) {
    for (let i = 0; i < n; i++) out.push({ label, sha256: sha256Hex(`${label}-${i}`), relPath: `${label}/img${i}.jpg` });
  }
  return out;
}

const shas = (xs: readonly { sha256: string }[]): string[] => xs.map((x) => x.sha256).sort();
const countBy = (xs: readonly Item[]): Record<string, number> => {
  const c: Record<string, number> = {};
  for (const x of xs) c[x.label] = (c[x.label] ?? 0) + 1;
  return c;
};

describe('rng', () => {
  test('deterministic, in range, forks independent of draw position', () => {
    const a = createRng(123);
    const b = createRng(123);
    const xs = Array.from({ length: 100 }, () => a.next());
    assert.deepEqual(xs, Array.from({ length: 100 }, () => b.next()));
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.notDeepEqual(xs.slice(0, 5), Array.from({ length: 5 }, createRng(124).next));
    const r = createRng(5);
    const ints = Array.from({ length: 2000 }, () => r.int(3, 7));
    assert.deepEqual([...new Set(ints)].sort(), [3, 4, 5, 6]);
    assert.throws(() => r.int(2, 2), RangeError);
    // fork() depends on seed + label only.
    const f1 = createRng(9).fork('x').next();
    const g = createRng(9);
    g.next();
    g.next();
    assert.equal(g.fork('x').next(), f1);
    assert.notEqual(createRng(9).fork('y').next(), f1);
    assert.notEqual(createRng(9).fork(1).next(), createRng(9).fork('1').next());
    const arr = Array.from({ length: 50 }, (_, i) => i);
    const sh = createRng(1).shuffle([...arr]);
    assert.notDeepEqual(sh, arr);
    assert.deepEqual([...sh].sort((p, q) => p - q), arr);
  });
});

describe('stratifiedSplit', () => {
  const items = makeItems({ a: 10, b: 5, c: 2, d: 1, e: 23 });

  test('per-class counts: round(n*f), at least 1 when n >= 2, never the whole class', () => {
    const { train, val, seed, valFraction } = stratifiedSplit(items);
    assert.equal(seed, 42);
    assert.equal(valFraction, 0.2);
    assert.deepEqual(countBy(val), { a: 2, b: 1, c: 1, e: 5 });
    assert.deepEqual(countBy(train), { a: 8, b: 4, c: 1, d: 1, e: 18 });
    assert.equal(new Set([...shas(train), ...shas(val)]).size, items.length, 'disjoint and complete');
    assert.deepEqual([valCount(1, 0.2), valCount(2, 0.2), valCount(2, 0.9), valCount(10, 0.5)], [0, 1, 1, 5]);
    assert.equal(stratifiedSplit(items, { valFraction: 0 }).val.length, 0);
    assert.throws(() => stratifiedSplit(items, { valFraction: 1 }), RangeError);
  });

  test('deterministic for a seed, different across seeds', () => {
    const a = stratifiedSplit(items, { seed: 7 });
    const b = stratifiedSplit(items, { seed: 7 });
    assert.deepEqual(a, b);
    const valSets = new Set<string>();
    for (let seed = 0; seed < 6; seed++) valSets.add(shas(stratifiedSplit(items, { seed }).val).join());
    assert.ok(valSets.size >= 5, `seeds give different splits (${valSets.size} distinct of 6)`);
  });

  test('independent of input order and of paths', () => {
    const ref = stratifiedSplit(items, { seed: 3 });
    const shuffled = createRng(99).shuffle(items.map((it) => ({ ...it, relPath: `moved/${it.relPath}` })));
    const again = stratifiedSplit(shuffled, { seed: 3 });
    assert.deepEqual(again.val.map((x) => x.sha256), ref.val.map((x) => x.sha256));
    assert.deepEqual(again.train.map((x) => x.sha256), ref.train.map((x) => x.sha256));
  });

  test("adding a class leaves the other classes' split unchanged", () => {
    const ref = stratifiedSplit(items, { seed: 5 });
    const more = stratifiedSplit([...items, ...makeItems({ f: 12 })], { seed: 5 });
    assert.deepEqual(shas(more.val.filter((x) => x.label !== 'f')), shas(ref.val));
  });
});

describe('split manifest', () => {
  const items = makeItems({ a: 10, b: 7, c: 4 });
  const { train, val } = stratifiedSplit(items, { seed: 11, valFraction: 0.3 });

  test('JSON round trip reproduces the split, even with renamed and reordered files', () => {
    const manifest = splitManifest(train, val, { seed: 11, valFraction: 0.3 });
    assert.equal(manifest.version, 1);
    assert.equal(manifest.seed, 11);
    assert.equal(manifest.valFraction, 0.3);
    assert.equal(manifest.entries.length, items.length);
    assert.equal(manifest.entries.filter((e) => e.split === 'val').length, val.length);
    const parsed = parseSplitManifest(JSON.parse(JSON.stringify(manifest)));
    assert.deepEqual(parsed, manifest);
    const renamed = createRng(1).shuffle(items.map((it) => ({ ...it, relPath: `x/${it.relPath}` })));
    const applied = applySplitManifest(renamed, parsed);
    assert.deepEqual(shas(applied.val), shas(val));
    assert.deepEqual(shas(applied.train), shas(train));
    assert.deepEqual(applied.missing, []);
    assert.deepEqual(applied.unknown, []);
  });

  test('unknown items: error listing them, or put in train on request; missing ones reported', () => {
    const manifest = splitManifest(train, val);
    assert.equal(manifest.seed, null);
    const extra = { label: 'a', sha256: sha256Hex('brand new'), relPath: 'a/new-photo.jpg' };
    const fewer = items.slice(1);
    assert.throws(
      () => applySplitManifest([...fewer, extra], manifest),
      (err: unknown) => err instanceof SplitManifestError && /1 item\(s\)/.test(err.message) && err.message.includes('a/new-photo.jpg'),
    );
    const applied = applySplitManifest([...fewer, extra], manifest, { unknown: 'train' });
    assert.deepEqual(applied.unknown, [extra]);
    assert.ok(applied.train.includes(extra));
    assert.deepEqual(applied.missing.map((m) => m.sha256), [items[0]!.sha256]);
    assert.equal(applied.train.length + applied.val.length, fewer.length + 1);
  });

  test('parseSplitManifest rejects malformed input', () => {
    assert.throws(() => parseSplitManifest({ version: 2, entries: [] }), SplitManifestError);
    assert.throws(() => parseSplitManifest({ version: 1, entries: [{ sha256: 'x', relPath: 'y', label: 'z', split: 'test' }] }), SplitManifestError);
    assert.throws(() => parseSplitManifest(null), SplitManifestError);
  });
});
