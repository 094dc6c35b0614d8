import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { assignGroups, groupFolds, groupSizes, parseGroupSpec, GroupSpecError } from '../src/data/groups.js';
import { formatGroupTable, groupedScores } from '../src/eval/group-metrics.js';
import { expectedCalibrationError } from '../src/eval/metrics.js';
import { parseCsv, csvField } from '../src/util/csv.js';
import { createRng } from '../src/util/rng.js';

test('parseGroupSpec reads the three kinds and rejects the rest', () => {
  assert.deepEqual(parseGroupSpec('manifest.csv:source'), { kind: 'csv', file: 'manifest.csv', column: 'source' });
  assert.deepEqual(parseGroupSpec('/data/x:y/list.CSV:shop'), { kind: 'csv', file: '/data/x:y/list.CSV', column: 'shop' });
  assert.deepEqual(parseGroupSpec('prefix:__'), { kind: 'prefix', separator: '__' });
  assert.deepEqual(parseGroupSpec('folder'), { kind: 'folder' });
  for (const bad of ['', 'prefix:', 'manifest.csv', 'manifest.csv:', 'source', 'list.txt:col']) {
    assert.throws(() => parseGroupSpec(bad), GroupSpecError, bad);
  }
});

test('parseCsv handles quotes, CRLF, a BOM and a missing final newline; csvField round-trips', () => {
  assert.deepEqual(parseCsv('\ufeffa,b\r\n"x, y","he said ""hi"""\nlast,'), [['a', 'b'], ['x, y', 'he said "hi"'], ['last', '']]);
  assert.deepEqual(parseCsv('a\n'), [['a']]);
  assert.throws(() => parseCsv('"open'), /not closed/);
  const fields = ['plain', 'a,b', 'q"uote', ' lead', 'line\nbreak'];
  assert.deepEqual(parseCsv(fields.map(csvField).join(',')), [fields]);
});

test('assignGroups: CSV column (data folder first), prefix and folder; images without a group are listed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-groups-'));
  try {
    await writeFile(join(dir, 'm.csv'), 'label,file,source\nfront,front/a__1.jpg,shopA\nback,"back/b__2.jpg",shopB\n');
    const items = [{ relPath: 'front/a__1.jpg' }, { relPath: 'back/b__2.jpg' }];
    assert.deepEqual(await assignGroups(items, parseGroupSpec('m.csv:source'), dir), ['shopA', 'shopB']);
    assert.deepEqual(await assignGroups(items, parseGroupSpec('prefix:__'), dir), ['a', 'b']);
    assert.deepEqual(await assignGroups([{ relPath: 'front/s1/x.jpg' }, { relPath: 'train/back/s2/deep/y.jpg' }], parseGroupSpec('folder'), dir), ['s1', 's2']);
    await assert.rejects(assignGroups([...items, { relPath: 'none/c.jpg' }], parseGroupSpec('m.csv:source'), dir), /1 image\(s\) have no group:\n {2}none\/c\.jpg: not listed in m\.csv/);
    await assert.rejects(assignGroups([{ relPath: 'none/c.jpg' }], parseGroupSpec('prefix:__'), dir), /file name has no '__'/);
    await assert.rejects(assignGroups([{ relPath: 'none/c.jpg' }], parseGroupSpec('folder'), dir), /not inside a sub-folder/);
    await assert.rejects(assignGroups(items, parseGroupSpec('m.csv:shop'), dir), /no column 'shop' \(columns: label, file, source\)/);
    await assert.rejects(assignGroups(items, parseGroupSpec('absent.csv:source'), dir), /group file not found/);
    await writeFile(join(dir, 'bad.csv'), 'file,source\nfront/a__1.jpg,\n');
    await assert.rejects(assignGroups(items, parseGroupSpec('bad.csv:source'), dir), /line 2 \(front\/a__1\.jpg\) has an empty 'source'/);
    await writeFile(join(dir, 'twice.csv'), 'file,source\nfront/a__1.jpg,x\nfront/a__1.jpg,y\n');
    await assert.rejects(assignGroups(items, parseGroupSpec('twice.csv:source'), dir), /listed in two groups/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('groupFolds: leave-one-group-out, and k folds that never split a group and balance sizes', () => {
  const groups = ['b', 'a', 'c', 'a', 'd', 'a', 'b', 'e'];
  assert.deepEqual(groupFolds(groups), [['a'], ['b'], ['c'], ['d'], ['e']]);
  const rng = createRng(7);
  for (let trial = 0; trial < 20; trial++) {
    const n = 50 + rng.int(0, 200);
    const names = Array.from({ length: 3 + rng.int(0, 10) }, (_, i) => `g${i}`);
    const gs = Array.from({ length: n }, () => names[Math.floor(rng.next() ** 2 * names.length)]!);
    const present = groupSizes(gs).size;
    if (present < 2) continue;
    const k = 2 + rng.int(0, Math.min(4, present - 1));
    const folds = groupFolds(gs, { folds: k });
    assert.equal(folds.length, k);
    const all = folds.flat();
    assert.equal(new Set(all).size, all.length, 'a group in two folds');
    assert.deepEqual([...all].sort(), [...groupSizes(gs).keys()].sort(), 'every group in some fold');
    // Greedy balancing: no fold is heavier than the lightest by more than the largest group.
    const sizes = groupSizes(gs);
    const loads = folds.map((f) => f.reduce((a, g) => a + sizes.get(g)!, 0));
    assert.ok(Math.max(...loads) - Math.min(...loads) <= Math.max(...sizes.values()));
  }
  assert.throws(() => groupFolds(['a', 'a']), /at least 2 groups/);
  assert.throws(() => groupFolds(groups, { folds: 6 }), /only 5 groups/);
  assert.throws(() => groupFolds(groups, { folds: 1 }), /integer >= 2/);
});

test('groupedScores: per-group and pooled figures, worst group, table', () => {
  const classes = ['back', 'front', 'none'];
  const rows = [
    { group: 'A', label: 0, probabilities: [0.9, 0.05, 0.05] },
    { group: 'A', label: 1, probabilities: [0.6, 0.3, 0.1] }, // wrong
    { group: 'A', label: 1, probabilities: [0.1, 0.8, 0.1] },
    { group: 'B', label: 2, probabilities: [0.1, 0.2, 0.7] },
    { group: 'B', label: 2, probabilities: [0.2, 0.5, 0.3] }, // wrong
    { group: 'C', label: 2, probabilities: [0.0, 0.1, 0.9] },
  ];
  const s = groupedScores(rows, classes);
  assert.deepEqual(s.groups.map((g) => [g.group, g.images, g.errors]), [['A', 3, 1], ['B', 2, 1], ['C', 1, 0]]);
  assert.equal(s.groups[0]!.accuracy, 2 / 3);
  // Group B has only 'none' images: its macro F1 is none's F1 (precision 1, recall 0.5).
  assert.ok(Math.abs(s.groups[1]!.macroF1 - 2 / 3) < 1e-12);
  assert.deepEqual(s.groups[0]!.perClass, { back: 1, front: 2, none: 0 });
  assert.equal(s.pooled.accuracy, 4 / 6);
  assert.deepEqual(s.pooled.worstGroup, { group: 'B', accuracy: 0.5, images: 2 });
  assert.ok(Math.abs(s.pooled.meanGroupAccuracy - (2 / 3 + 0.5 + 1) / 3) < 1e-12);
  assert.equal(s.pooled.ece, expectedCalibrationError(rows.map((r) => r.probabilities), rows.map((r) => r.label)));
  const text = formatGroupTable(s, classes);
  assert.match(text, /^group\s+images\s+back\s+front\s+none\s+accuracy/);
  assert.match(text, /\nB\s+2\s+0\s+0\s+2\s+50\.0%\s+1/);
  assert.match(text, /pooled\s+6\s+66\.7%\s+2/);
  assert.match(text, /worst group: B 50\.0% \(2 images\)/);
  assert.throws(() => groupedScores([], classes), /no predictions/);
});
