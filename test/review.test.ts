import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { scanDataset } from '../src/data/dataset.js';
import { CV_REPORT_SCHEMA } from '../src/eval/cv-report.js';
import { findDuplicates } from '../src/review/duplicates.js';
import { formatReviewCsv, parseAction, parseReviewCsv, ReviewCsvError, type ReviewCsvRow } from '../src/review/review-csv.js';
import { classThresholds, findSuspects, SuspectInputError, type OutOfFoldRow } from '../src/review/suspects.js';
import { sha256File } from '../src/util/hash.js';
import { parseCsv } from '../src/util/csv.js';
import { createRng } from '../src/util/rng.js';
import { runCli } from './helpers/cli.js';
import { NO_DATA } from './helpers/paths.js';
import { SLOW } from './helpers/slow.js';
import { useSharedMobilenet } from './helpers/infer-fixture.js';

useSharedMobilenet(); // the shipped mobilenet_v2's backbone from ../shared (no download)

const CLASSES = ['back', 'front', 'none'];

/** Out-of-fold rows: most images agree with their labels (p 0.7..0.95); `planted` are labelled wrongly and the model sees their true class. */
function syntheticRows(seed: number, perClass: number, planted: { label: string; truth: string; p: number }[]): OutOfFoldRow[] {
  const rng = createRng(seed);
  const rows: OutOfFoldRow[] = [];
  const probs = (cls: string, p: number): number[] => {
    const rest = (1 - p) / 2;
    return CLASSES.map((c) => (c === cls ? p : rest));
  };
  for (const label of CLASSES) for (let i = 0; i < perClass; i++) rows.push({ path: `${label}/ok${i}.jpg`, label, probabilities: probs(label, rng.uniform(0.7, 0.95)) });
  planted.forEach((x, i) => rows.push({ path: `${x.label}/planted${i}.jpg`, label: x.label, probabilities: probs(x.truth, x.p) }));
  // Shuffled so the ranking, not the input order, puts them on top.
  for (let i = rows.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform(0, i + 1));
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  return rows;
}

describe('findSuspects (confident learning)', () => {
  const planted = [
    { label: 'front', truth: 'none', p: 0.97 },
    { label: 'none', truth: 'front', p: 0.93 },
    { label: 'back', truth: 'front', p: 0.9 },
  ];
  const rows = syntheticRows(7, 40, planted);

  test('planted label errors rank first, with the class the model sees suggested', () => {
    const r = findSuspects(CLASSES, rows);
    assert.deepEqual(
      r.suspects.slice(0, 3).map((s) => [s.path, s.suggested]),
      [
        ['front/planted0.jpg', 'none'],
        ['none/planted1.jpg', 'front'],
        ['back/planted2.jpg', 'front'],
      ],
    );
    assert.equal(r.suspects.length, 3, 'agreeing images are not suspects');
    const s = r.suspects[0]!;
    assert.ok(Math.abs(s.margin - (0.97 - 0.015)) < 1e-9);
    assert.equal(r.images, rows.length);
  });

  test('thresholds are per-class mean out-of-fold probabilities; the joint counts the pairs', () => {
    const t = classThresholds(CLASSES, rows);
    const front = rows.filter((r) => r.label === 'front');
    assert.ok(Math.abs(t[1]! - front.reduce((a, r) => a + r.probabilities[1]!, 0) / front.length) < 1e-12);
    const r = findSuspects(CLASSES, rows);
    assert.equal(r.confidentJoint[1]![2], 1, 'front counted as none');
    assert.equal(r.confidentJoint[2]![1], 1, 'none counted as front');
    assert.equal(r.confidentJoint[0]![1], 1, 'back counted as front');
    assert.deepEqual(r.noise.map((n) => n.suspects), [1, 1, 1]);
    const diag = r.confidentJoint.reduce((a, row, y) => a + row[y]!, 0);
    assert.equal(diag + 3 + r.unconfident, rows.length);
  });

  test('an unsure image (no class clears its threshold) is not a suspect; self-confidence ranking', () => {
    const unsure: OutOfFoldRow = { path: 'front/blurry.jpg', label: 'front', probabilities: [0.34, 0.33, 0.33] };
    // Margin 0.898 (second by margin) but the lowest p(given) of all.
    const lowSelf: OutOfFoldRow = { path: 'back/low.jpg', label: 'back', probabilities: [0.001, 0.899, 0.1] };
    const bySelf = findSuspects(CLASSES, [...rows, unsure, lowSelf], { rankBy: 'self-confidence' });
    assert.ok(!bySelf.suspects.some((s) => s.path === unsure.path));
    assert.equal(bySelf.suspects[0]!.path, 'back/low.jpg', 'lowest p(given) first');
    const byMargin = findSuspects(CLASSES, [...rows, unsure, lowSelf]);
    assert.deepEqual(byMargin.suspects.slice(0, 2).map((s) => s.path), ['front/planted0.jpg', 'back/low.jpg']);
  });

  test('bad input is refused with the image named', () => {
    assert.throws(() => findSuspects(CLASSES, [{ path: 'x/1.jpg', label: 'tablet', probabilities: [0.2, 0.3, 0.5] }]), (e: Error) => e instanceof SuspectInputError && /x\/1\.jpg.*tablet/.test(e.message));
    assert.throws(() => findSuspects(CLASSES, [{ path: 'a.jpg', label: 'back', probabilities: [0.5, 0.5] }]), SuspectInputError);
    assert.throws(() => findSuspects(CLASSES, [{ path: 'a.jpg', label: 'back', probabilities: [NaN, 0.5, 0.5] }]), SuspectInputError);
  });
});

describe('review.csv', () => {
  test('round trip keeps odd file names, probabilities and actions', () => {
    const rows: ReviewCsvRow[] = [
      { path: 'front/a, "b".jpg', given: 'front', suggested: 'none', pGiven: 0.12345, pSuggested: 0.8, action: 'relabel:none', reason: 'model disagrees', sha256: 'a'.repeat(64) },
      { path: 'back/c.jpg', given: 'back', suggested: 'front', pGiven: null, pSuggested: null, action: '', reason: 'same bytes as front/c.jpg', sha256: 'b'.repeat(64) },
    ];
    const text = formatReviewCsv(rows);
    assert.equal(text.split('\n')[0], 'path,given,suggested,p_given,p_suggested,action,reason,sha256');
    assert.deepEqual(parseCsv(text)[1]!.slice(3, 5), ['0.1235', '0.8000']);
    const d = parseReviewCsv(text, 'review.csv');
    assert.deepEqual(
      d.map((x) => [x.line, x.path, x.given, x.action, x.sha256]),
      [
        [2, 'front/a, "b".jpg', 'front', { kind: 'relabel', to: 'none' }, 'a'.repeat(64)],
        [3, 'back/c.jpg', 'back', { kind: 'none' }, 'b'.repeat(64)],
      ],
    );
  });

  test('actions: relabel:<class>, drop, keep, empty; anything else is refused with its line', () => {
    assert.deepEqual(parseAction(' Relabel : back '), { kind: 'relabel', to: 'back' });
    assert.deepEqual(parseAction('DROP'), { kind: 'drop' });
    assert.deepEqual(parseAction('keep'), { kind: 'keep' });
    assert.equal(parseAction('delete'), undefined);
    const text = 'path,given,action,sha256\nfront/a.jpg,front,delete,x\nfront/b.jpg,front,drop,y\nfront/b.jpg,front,keep,y\n';
    assert.throws(() => parseReviewCsv(text, 'r.csv'), (e: Error) => e instanceof ReviewCsvError && /line 2.*delete/.test(e.message) && /line 4: front\/b\.jpg is also on line 3/.test(e.message));
    assert.throws(() => parseReviewCsv('file,label\na,b\n', 'r.csv'), /not a review\.csv: no column path, given, action, sha256/);
  });
});

/** A smooth photo-like picture of colour blobs (different seeds look nothing alike to a perceptual hash). */
async function pattern(seed: number, size = 96): Promise<Buffer> {
  const rng = createRng(seed);
  const blobs = Array.from({ length: 10 }, () => ({ x: rng.uniform(0, size), y: rng.uniform(0, size), r: rng.uniform(6, 30), c: [rng.uniform(-120, 120), rng.uniform(-120, 120), rng.uniform(-120, 120)] }));
  const data = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++)
      for (let k = 0; k < 3; k++) {
        let v = 128;
        for (const b of blobs) v += b.c[k]! * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.r * b.r));
        data[(y * size + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(v)));
      }
  return sharp(data, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
}

/**
 * A small data set: 6 images per class, plus front/dup.png (a byte copy of back/img0.png),
 * none/near.jpg (back/img1.png re-encoded smaller) and front/img0-copy.png (a copy inside front).
 */
async function makeDataset(root: string): Promise<void> {
  let seed = 100;
  for (const c of CLASSES) {
    await mkdir(join(root, c), { recursive: true });
    for (let i = 0; i < 6; i++) await writeFile(join(root, c, `img${i}.png`), await pattern(seed++));
  }
  await writeFile(join(root, 'front', 'dup.png'), await readFile(join(root, 'back', 'img0.png')));
  await writeFile(join(root, 'none', 'near.jpg'), await sharp(await readFile(join(root, 'back', 'img1.png'))).resize(80, 80).jpeg({ quality: 90 }).toBuffer());
  await writeFile(join(root, 'front', 'img0-copy.png'), await readFile(join(root, 'front', 'img0.png')));
  const manifest = ['file,label,source'];
  for (const c of CLASSES) for (const f of (await readdir(join(root, c))).sort()) manifest.push(`${c}/${f},${c},src${f.length % 2}`);
  await writeFile(join(root, 'manifest.csv'), manifest.join('\n') + '\n');
}

/** A cv report whose out-of-fold predictions agree with every label except front/img1.png (the model sees none). */
async function writeCvJson(file: string, root: string): Promise<void> {
  const predictions = [];
  for (const c of CLASSES) {
    for (const f of (await readdir(join(root, c))).sort()) {
      const path = `${c}/${f}`;
      const seen = path === 'front/img1.png' ? 'none' : c;
      const probabilities = CLASSES.map((k) => (k === seen ? 0.9 : 0.05));
      predictions.push({ path, label: c, group: 'g', fold: 0, predicted: seen, probabilities, logits: probabilities.map(Math.log) });
    }
  }
  await writeFile(file, JSON.stringify({ schema: CV_REPORT_SCHEMA, dataDir: root, backbone: 'test-model', classes: CLASSES, predictions }));
}

describe('phoneside review', () => {
  let tmp: string;
  let data: string;
  let cvJson: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'phoneside-review-'));
    data = join(tmp, 'data');
    await makeDataset(data);
    cvJson = join(tmp, 'cv.json');
    await writeCvJson(cvJson, data);
  });
  after(() => rm(tmp, { recursive: true, force: true }));

  test('duplicates: a byte copy and a resized copy across classes, a copy inside a class', async () => {
    const d = await findDuplicates(await scanDataset(data), { maxDistance: 4 });
    assert.deepEqual(d.crossClassExact.map((g) => g.files.map((f) => f.relPath).sort()), [['back/img0.png', 'front/dup.png']]);
    assert.deepEqual(d.crossClassNear.map((p) => [p.a.relPath, p.b.relPath].sort()), [['back/img1.png', 'none/near.jpg']]);
    assert.deepEqual(d.sameClassExact.map((g) => g.files.map((f) => f.relPath).sort()), [['front/img0-copy.png', 'front/img0.png']], 'same-class copies listed');
    assert.deepEqual(d.unhashed, []);
  });

  test('writes a self-contained page, the CSV and the JSON; the suspect and the duplicates are listed', async () => {
    const out = join(tmp, 'out');
    const r = await runCli(['review', data, '--from-cv', cvJson, '--out', out]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /1 suspects/);
    assert.match(r.out, /1 byte-identical and 1 near-identical/);
    const html = await readFile(join(out, 'review.html'), 'utf8');
    assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//i, 'nothing fetched');
    assert.doesNotMatch(html, /<script/i);
    assert.match(html, /data-rank="1"[^]*front\/img1\.png/);
    assert.match(html, /<img src="data:image\/jpeg;base64,/);
    assert.match(html, /id="cross-exact"[^]*front\/dup\.png/);
    assert.match(html, /id="cross-near"[^]*none\/near\.jpg/);
    const csv = parseCsv(await readFile(join(out, 'review.csv'), 'utf8'));
    assert.deepEqual(csv[1]!.slice(0, 3), ['front/img1.png', 'front', 'none']);
    assert.equal(csv[1]![7], await sha256File(join(data, 'front/img1.png')));
    assert.deepEqual(csv.slice(2).map((row) => row[0]).sort(), ['back/img0.png', 'back/img1.png', 'front/dup.png', 'none/near.jpg']);
    const json = JSON.parse(await readFile(join(out, 'review.json'), 'utf8')) as { schema: string; suspects: { suspects: unknown[] } };
    assert.equal(json.schema, 'phoneside.review/1');
    assert.equal(json.suspects.suspects.length, 1);
  });

  test('heat maps: the suspect gets an overlay for its suggested class from --model', { skip: NO_DATA || SLOW }, async () => {
    const out = join(tmp, 'out-heat');
    const r = await runCli(['review', data, '--from-cv', cvJson, '--out', out, '--model', 'models/mobilenet_v2']);
    assert.equal(r.code, 0, r.err);
    const html = await readFile(join(out, 'review.html'), 'utf8');
    const figure = /<figure class="suspect" data-rank="1">([^]*?)<\/figure>/.exec(html)![1]!;
    assert.equal(figure.match(/<img src="data:image\/jpeg;base64,/g)?.length, 2, 'thumbnail and overlay');
    assert.match(figure, /alt="heat map for none: front\/img1\.png"/);
    assert.match(html, /id="heatmap-note">Heat maps: (grad-cam|occlusion) of /);
    // Without a model (the cv report's folder is none) the page says why there are no maps.
    const plain = await readFile(join(tmp, 'out', 'review.html'), 'utf8');
    assert.match(plain, /id="heatmap-note">No heat maps: the folder of the cv report/);
  });

  test('--groups runs group cross-validation first and keeps its report in OUT/cv', { skip: NO_DATA || SLOW }, async () => {
    const out = join(tmp, 'out-cv');
    const r = await runCli(['review', data, '--groups', 'manifest.csv:source', '--backbone', 'mobilenet_v2', '--epochs', '2', '--out', out]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /20 images reviewed with the out-of-fold predictions of mobilenet_v2/);
    const cv = JSON.parse(await readFile(join(out, 'cv', 'cv.json'), 'utf8')) as { schema: string; predictions: unknown[] };
    assert.equal(cv.schema, CV_REPORT_SCHEMA);
    assert.equal(cv.predictions.length, 20);
    assert.ok(existsSync(join(out, 'review.html')) && existsSync(join(out, 'review.csv')));
  });

  test('--apply moves (never deletes), logs, updates manifest.csv, is idempotent and refuses changed files', async () => {
    const work = join(tmp, 'apply-data');
    await makeDataset(work);
    // A name clash in the target class: back/img1.png exists, so front/img1.png becomes back/img1-1.png.
    const rows = async (actions: Record<string, string>): Promise<string> => {
      const lines = ['path,given,suggested,p_given,p_suggested,action,reason,sha256'];
      for (const [path, action] of Object.entries(actions)) lines.push(`${path},${path.split('/')[0]},,,,${action},,${await sha256File(join(work, path))}`);
      return lines.join('\n') + '\n';
    };
    const csvFile = join(tmp, 'decisions.csv');
    await writeFile(csvFile, await rows({ 'front/img1.png': 'relabel:back', 'front/dup.png': 'drop', 'none/img2.png': 'keep', 'none/img3.png': '' }));

    const dry = await runCli(['review', work, '--apply', csvFile, '--dry-run']);
    assert.equal(dry.code, 0, dry.err);
    assert.match(dry.out, /would move front\/img1\.png -> back\/img1-1\.png/);
    assert.ok(existsSync(join(work, 'front', 'img1.png')) && !existsSync(join(work, '_review-log.jsonl')), 'a dry run changes nothing');

    const first = await runCli(['review', work, '--apply', csvFile]);
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, /2 move\(s\), 0 already done, 2 without action or kept, 0 refused/);
    assert.ok(!existsSync(join(work, 'front', 'img1.png')));
    assert.ok(existsSync(join(work, 'back', 'img1.png')) && existsSync(join(work, 'back', 'img1-1.png')), 'the file already there is kept');
    assert.ok(existsSync(join(work, '.dropped', 'front', 'dup.png')), 'dropped files are kept aside');
    const log = (await readFile(join(work, '_review-log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    assert.deepEqual(log.map((m) => [m['from'], m['to'], m['action']]), [
      ['front/img1.png', 'back/img1-1.png', 'relabel'],
      ['front/dup.png', '.dropped/front/dup.png', 'drop'],
    ]);
    assert.ok(log.every((m) => /^[0-9a-f]{64}$/.test(m['sha256']!) && !Number.isNaN(Date.parse(m['time']!))));
    const manifest = parseCsv(await readFile(join(work, 'manifest.csv'), 'utf8'));
    assert.ok(manifest.some((r) => r[0] === 'back/img1-1.png' && r[1] === 'back'), 'relabelled: new path and label');
    assert.ok(manifest.some((r) => r[0] === '.dropped/front/dup.png' && r[1] === 'front'), 'dropped: new path, label kept');
    assert.ok(!manifest.some((r) => r[0] === 'front/img1.png'));

    const again = await runCli(['review', work, '--apply', csvFile]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /0 move\(s\), 2 already done/);
    assert.equal((await readFile(join(work, '_review-log.jsonl'), 'utf8')).trim().split('\n').length, 2, 'nothing logged twice');

    // A file changed after the review is refused; the rest still goes through.
    const changed = join(tmp, 'changed.csv');
    await writeFile(changed, await rows({ 'none/img4.png': 'relabel:front', 'none/img5.png': 'drop' }));
    await writeFile(join(work, 'none', 'img4.png'), await pattern(999));
    const refused = await runCli(['review', work, '--apply', changed]);
    assert.equal(refused.code, 1);
    assert.match(refused.out, /refused line 2 none\/img4\.png: the file changed since the review/);
    assert.ok(existsSync(join(work, 'none', 'img4.png')));
    assert.ok(existsSync(join(work, '.dropped', 'none', 'img5.png')));
  });

  test('bad input: clear errors, exit 2 for usage, nothing moved', async () => {
    const usage = async (args: string[], pattern: RegExp): Promise<void> => {
      const r = await runCli(['review', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, pattern);
    };
    await usage([data, '--out', join(tmp, 'x')], /--from-cv CV\.json .* or --groups SPEC/);
    await usage([data, '--from-cv', cvJson, '--groups', 'folder', '--out', join(tmp, 'x')], /not both/);
    await usage([data, '--from-cv', cvJson], /needs --out DIR/);
    await usage([data, '--from-cv', cvJson, '--out', join(tmp, 'x'), '--top', '0'], /--top must be/);
    await usage([data, '--groups', 'nonsense', '--out', join(tmp, 'x')], /group spec 'nonsense' not understood/);
    await usage([data, '--apply', cvJson, '--out', join(tmp, 'x')], /--apply does not take --out/);
    await usage([data, '--from-cv', cvJson, '--out', join(tmp, 'x'), '--dry-run'], /--dry-run goes with --apply/);
    const badCsv = join(tmp, 'bad.csv');
    await writeFile(badCsv, `path,given,action,sha256\nfront/img2.png,front,drop,${await sha256File(join(data, 'front/img2.png'))}\nfront/img3.png,front,burn,x\n`);
    await usage([data, '--apply', badCsv], /line 3 \(front\/img3\.png\): action 'burn'/);
    assert.ok(existsSync(join(data, 'front', 'img2.png')), 'a bad row stops the whole file before any move');
    await usage([data, '--apply', join(tmp, 'missing.csv')], /cannot read/);

    // A review.csv holding decisions is never overwritten.
    const out = join(tmp, 'filled');
    await mkdir(out);
    await writeFile(join(out, 'review.csv'), 'path,given,suggested,p_given,p_suggested,action,reason,sha256\nfront/img1.png,front,none,,,drop,,x\n');
    await usage([data, '--from-cv', cvJson, '--out', out], /holds 1 decision/);

    // Failures (exit 1) that name the file.
    const notJson = join(tmp, 'not.json');
    await writeFile(notJson, '{ nope');
    let r = await runCli(['review', data, '--from-cv', notJson, '--out', join(tmp, 'y')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot read the cv report .*not\.json.*not valid JSON/);
    const other = join(tmp, 'other.json');
    await writeFile(other, JSON.stringify({ schema: CV_REPORT_SCHEMA, dataDir: '/elsewhere', backbone: 'm', classes: CLASSES, predictions: [{ path: 'front/zzz.jpg', label: 'front', probabilities: [0, 1, 0] }] }));
    r = await runCli(['review', data, '--from-cv', other, '--out', join(tmp, 'y')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /names none of the images .*\/elsewhere/);
    r = await runCli(['review', join(tmp, 'no-such-dir'), '--from-cv', cvJson, '--out', join(tmp, 'y')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /dataset folder not found/);
  });
});
