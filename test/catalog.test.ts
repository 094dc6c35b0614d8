/**
 * `phoneside catalog`: the resumable output (index, torn and bad lines, lock), the glob
 * matcher, the walk, resuming after deletions, a torn line and a SIGKILL, --sort-into
 * (copy, link, move, clashes, idempotence), bad inputs and the index's memory on a million records.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { appendFile, copyFile, mkdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { catalog, type CatalogOptions, type CatalogSummary } from '../src/catalog/catalog.js';
import { DigestSet } from '../src/catalog/digest-set.js';
import { compileGlob, GlobError } from '../src/catalog/glob.js';
import { CatalogLockedError } from '../src/catalog/lock.js';
import { CatalogFileError, openCatalogOutput } from '../src/catalog/output.js';
import { Placer, suffixed } from '../src/catalog/place.js';
import { walkSources } from '../src/catalog/walk.js';
import { Classifier } from '../src/infer/classifier.js';
import { sha256Hex } from '../src/util/hash.js';
import { distinctPhotos, fillFolder, readRecords, sha256Of, syntheticLine, syntheticRecord, tempDir } from './helpers/catalog-fixture.js';
import { runCli } from './helpers/cli.js';
import { useSharedMobilenet } from './helpers/infer-fixture.js';
import { MOBILENET, NO_DATA } from './helpers/paths.js';
import { SLOW } from './helpers/slow.js';

useSharedMobilenet();
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const temps: string[] = [];
after(async () => {
  await clfPromise?.then((c) => c.dispose());
  for (const d of temps) await rm(d, { recursive: true, force: true });
});
const temp = async (tag: string): Promise<string> => {
  const d = await tempDir(tag);
  temps.push(d);
  return d;
};

let clfPromise: Promise<Classifier> | undefined;
/** The shipped MobileNetV2 model, loaded once for the in-process runs. */
const model = (): Promise<Classifier> => (clfPromise ??= Classifier.load('mobilenet_v2'));
const run = async (sources: string[], opts: CatalogOptions): Promise<CatalogSummary> => catalog(sources, { classifier: await model(), ...opts });

test('DigestSet: 8-byte prefixes, growth, the all-zero prefix', () => {
  const s = new DigestSet(4);
  const shas = Array.from({ length: 5000 }, (_, i) => sha256Hex(String(i)));
  for (const h of shas) assert.equal(s.add(h), true);
  assert.equal(s.add(shas[7]!), false);
  assert.equal(s.size, 5000);
  assert.ok(shas.every((h) => s.has(h)));
  assert.equal(s.has(sha256Hex('absent')), false);
  const zero = '0'.repeat(64);
  assert.equal(s.has(zero), false);
  assert.equal(s.add(zero), true);
  assert.equal(s.has(zero), true);
  assert.throws(() => s.has('xyz'), /not a sha256/);
});

test('glob patterns: names at any depth, anchored paths, **, classes, braces; malformed ones refused', () => {
  const m = (p: string, path: string): boolean => compileGlob(p).test(path);
  assert.equal(m('*.png', 'a/b/c.png'), true);
  assert.equal(m('*.png', 'c.jpg'), false);
  assert.equal(m('thumbs', 'x/thumbs'), true);
  assert.equal(m('a/*.jpg', 'a/x.jpg'), true);
  assert.equal(m('a/*.jpg', 'b/a/x.jpg'), false, 'a pattern with / is anchored at SRC');
  assert.equal(m('a/**/x.jpg', 'a/x.jpg'), true);
  assert.equal(m('a/**/x.jpg', 'a/1/2/x.jpg'), true);
  assert.equal(m('**/x.jpg', 'x.jpg'), true);
  assert.equal(m('a/**', 'a/1/2.jpg'), true);
  assert.equal(m('img-00[0-4].jpg', 'img-003.jpg'), true);
  assert.equal(m('img-00[!0-4].jpg', 'img-003.jpg'), false);
  assert.equal(m('*.{jpg,png}', 'q.png'), true);
  assert.equal(m('?.jpg', 'ab.jpg'), false);
  assert.equal(m('*.JPG', 'x.jpg'), false, 'case-sensitive');
  assert.equal(m('a.b', 'axb'), false, 'dots are literal');
  for (const bad of ['[abc', '{a,b', 'a**', '']) assert.throws(() => compileGlob(bad), GlobError);
});

test('output: a new file, appends with the index, records of a content kept once', async () => {
  const dir = await temp('out');
  const path = join(dir, 'c.jsonl');
  const o = await openCatalogOutput(path);
  assert.equal(o.done, 0);
  await o.append([syntheticRecord(1), syntheticRecord(2), syntheticRecord(1)]);
  await o.append([syntheticRecord(2), syntheticRecord(3)]);
  assert.equal(o.done, 3);
  assert.equal(o.has(syntheticRecord(3).sha256), true);
  await o.close();
  assert.equal(existsSync(`${path}.lock`), false, 'the lock goes with close');
  assert.equal(readFileSync(path, 'utf8'), [1, 2, 3].map(syntheticLine).join(''));
  const again = await openCatalogOutput(path);
  assert.deepEqual([again.done, again.tornLines, again.models], [3, 0, [syntheticRecord(1).model]]);
  assert.equal(again.has(syntheticRecord(2).sha256), true);
  assert.equal(again.has(syntheticRecord(4).sha256), false);
  await again.close();
});

test('output: a torn last line (half a record, or NULs) is cut off; a bad middle line or a foreign file is an error that changes nothing', async () => {
  const dir = await temp('torn');
  const path = join(dir, 'c.jsonl');
  const whole = [1, 2, 3].map(syntheticLine).join('');
  for (const tail of [syntheticLine(4).slice(0, 40), '{"pa', '\0\0\0\0', `${syntheticLine(4).slice(0, 60)}\n`]) {
    await writeFile(path, whole + tail);
    const o = await openCatalogOutput(path);
    assert.deepEqual([o.done, o.tornLines], [3, 1], JSON.stringify(tail));
    await o.close();
    assert.equal(readFileSync(path, 'utf8'), whole);
  }
  const refuse = async (text: string, re: RegExp): Promise<void> => {
    await writeFile(path, text);
    await assert.rejects(openCatalogOutput(path), (err: unknown) => err instanceof CatalogFileError && re.test(err.message));
    assert.equal(readFileSync(path, 'utf8'), text, 'nothing cut');
    assert.equal(existsSync(`${path}.lock`), false, 'the lock is released on failure');
  };
  await refuse(`${syntheticLine(1)}{"path": broken\n${syntheticLine(2)}`, /line 2 is not a catalog record/);
  await refuse('# my notes\nkeep these\n', /line 1 is not a catalog record/);
  await refuse('hello', /line 1 is not a catalog record \(no newline/);
  await refuse(syntheticLine(1) + syntheticLine(1), /line 2 repeats the sha256/);
  await refuse(`${syntheticLine(1)}{"path":"${'x'.repeat(1 << 20)}`, /line 2 is not a catalog record \(longer than 1048576 bytes\)/);
  await refuse(`{"path":"${'x'.repeat(1 << 20)}"}\n${syntheticLine(1)}`, /line 1 is not a catalog record \(longer than 1048576 bytes\)/);
});

test('output: a second writer is refused while the first holds the lock; a stale lock (dead pid) is taken over', async () => {
  const dir = await temp('lock');
  const path = join(dir, 'c.jsonl');
  const first = await openCatalogOutput(path);
  await assert.rejects(openCatalogOutput(path), (err: unknown) => err instanceof CatalogLockedError && err.message.includes(`process ${process.pid}`));
  await first.close();
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  await writeFile(`${path}.lock`, JSON.stringify({ pid: Number(dead), host: (await import('node:os')).hostname() }));
  const o = await openCatalogOutput(path);
  assert.equal(JSON.parse(readFileSync(`${path}.lock`, 'utf8')).pid, process.pid);
  await o.close();
});

test('walk: recursive, image names only, hidden skipped, --include / --exclude, an excluded folder not entered', async () => {
  const dir = await temp('walk');
  for (const f of ['a/x.jpg', 'a/y.png', 'a/notes.txt', 'b/z.jpg', 'b/thumbs/t.jpg', '.hidden/h.jpg', 'top.JPG']) {
    await mkdir(join(dir, f, '..'), { recursive: true });
    await writeFile(join(dir, f), 'x');
  }
  const walk = async (opts: { include?: string[]; exclude?: string[] } = {}): Promise<string[]> => {
    const out: string[] = [];
    const skipped: string[] = [];
    const w = walkSources([dir], { include: (opts.include ?? []).map(compileGlob), exclude: (opts.exclude ?? []).map(compileGlob), onSkip: (p) => skipped.push(p) });
    for await (const f of w) out.push(f.path.slice(dir.length + 1));
    return out;
  };
  assert.deepEqual(await walk(), ['a/x.jpg', 'a/y.png', 'b/thumbs/t.jpg', 'b/z.jpg', 'top.JPG']);
  assert.deepEqual(await walk({ include: ['*.jpg'] }), ['a/x.jpg', 'b/thumbs/t.jpg', 'b/z.jpg']);
  assert.deepEqual(await walk({ include: ['a/*', 'top.*'] }), ['a/x.jpg', 'a/y.png', 'top.JPG']);
  assert.deepEqual(await walk({ exclude: ['thumbs', '*.png'] }), ['a/x.jpg', 'b/z.jpg', 'top.JPG']);
  assert.deepEqual(await walk({ include: ['**/*.jpg'], exclude: ['b/**'] }), ['a/x.jpg']);
});

test('Placer: name clashes get -1, -2; nothing is overwritten; placing the same bytes again adds nothing', async () => {
  const dir = await temp('place');
  const sorted = join(dir, 'sorted');
  await mkdir(join(sorted, 'front'), { recursive: true });
  await writeFile(join(sorted, 'front', 'x.jpg'), 'someone else’s file');
  const srcs = ['one', 'two'].map((t) => ({ path: join(dir, `${t}.jpg`), text: `bytes of ${t}` }));
  for (const s of srcs) await writeFile(s.path, s.text);
  const placer = new Placer(sorted, 'copy');
  const req = (s: { path: string; text: string }) => ({ source: s.path, name: 'x.jpg', label: 'front', sha256: sha256Hex(s.text), size: Buffer.byteLength(s.text) });
  assert.deepEqual(await placer.place(req(srcs[0]!)), { target: join(sorted, 'front', 'x-1.jpg'), fresh: true });
  assert.deepEqual(await placer.place(req(srcs[1]!)), { target: join(sorted, 'front', 'x-2.jpg'), fresh: true });
  assert.deepEqual(await placer.place(req(srcs[0]!)), { target: join(sorted, 'front', 'x-1.jpg'), fresh: false }, 'already there');
  await placer.flush();
  assert.equal(readFileSync(join(sorted, 'front', 'x.jpg'), 'utf8'), 'someone else’s file');
  assert.equal(readFileSync(join(sorted, 'front', 'x-2.jpg'), 'utf8'), 'bytes of two');
  assert.deepEqual(readdirSync(join(sorted, 'front')).sort(), ['x-1.jpg', 'x-2.jpg', 'x.jpg'], 'no temp files left');
  assert.equal(await placer.findPlaced({ ...req(srcs[1]!) }, ['back', 'front']), join(sorted, 'front', 'x-2.jpg'));
  assert.deepEqual([suffixed('a.tar.gz', 1), suffixed('noext', 2), suffixed('.rc', 1)], ['a.tar-1.gz', 'noext-2', '.rc-1']);
});

/** SRC with 12 distinct photos (batch1/img-*.jpg, batch2/pic-*.jpg), a copy of one under another name, and a corrupt .jpg. */
async function smallCollection(tag: string): Promise<{ dir: string; src: string; photos: string[] }> {
  const dir = await temp(tag);
  const src = join(dir, 'src');
  const photos = distinctPhotos(12, 200);
  await fillFolder(join(src, 'batch1'), photos.slice(0, 6));
  await fillFolder(join(src, 'batch2'), photos.slice(6), 'copy', 'pic');
  await copyFile(photos[0]!, join(src, 'batch2', 'same-as-first.jpg'));
  await writeFile(join(src, 'corrupt.jpg'), 'not a JPEG');
  return { dir, src, photos };
}

test('catalog: one record per content; a rerun classifies nothing; deleted and torn last lines are redone exactly', { skip: NO_DATA }, async () => {
  const { dir, src } = await smallCollection('resume');
  const out = join(dir, 'results.jsonl');
  const first = await run([src], { out, batchSize: 4, syncEvery: 4 });
  assert.deepEqual([first.files, first.classified, first.errors, first.duplicates, first.alreadyDone], [14, 13, 1, 1, 0]);
  const recs = readRecords(out);
  assert.equal(recs.length, 13);
  assert.equal(new Set(recs.map((r) => r.sha256)).size, 13);
  assert.equal(recs.find((r) => r.path.endsWith('corrupt.jpg'))?.error, 'not an image (JPEG, PNG, WebP, GIF, AVIF or TIFF expected)');
  assert.ok(recs.every((r) => r.model.id === 'mobilenet_v2' && /^\d{8}-[0-9a-f]{12}$/.test(r.model.version)));
  assert.equal(Object.values(first.labels).reduce((a, b) => a + b, 0), 12);

  const again = await run([src], { out });
  assert.deepEqual([again.classified, again.alreadyDone, again.records], [0, 14, 13], 'nothing new; the error record is final');
  assert.equal(readRecords(out).length, 13);

  const text = readFileSync(out, 'utf8');
  const lines = text.split('\n').filter((l) => l !== '');
  await writeFile(out, lines.slice(0, -3).join('\n') + '\n');
  const redo = await run([src], { out });
  assert.equal(redo.classified, 3, 'exactly the 3 deleted lines are redone');
  assert.deepEqual(new Set(readRecords(out).map((r) => r.sha256)), new Set(recs.map((r) => r.sha256)));

  const now = readFileSync(out);
  await truncate(out, now.length - 50); // the last record torn in the middle
  const torn = await run([src], { out });
  assert.deepEqual([torn.tornLines, torn.classified, torn.records], [1, 1, 13]);
  assert.equal(readRecords(out).length, 13);
});

test('catalog: another model than the one in --out is refused', { skip: NO_DATA }, async () => {
  const dir = await temp('model');
  const out = join(dir, 'c.jsonl');
  await writeFile(out, syntheticLine(1));
  const { src } = await smallCollection('model-src');
  await assert.rejects(run([src], { out }), (err: unknown) => err instanceof CatalogFileError && /holds results of model synthetic/.test(err.message));
  assert.equal(readFileSync(out, 'utf8'), syntheticLine(1));
});

test('catalog --sort-into: copy places each labelled image once, clashes get suffixes, nothing is overwritten, sources stay', { skip: NO_DATA }, async () => {
  const { dir, src } = await smallCollection('sort-copy');
  const sorted = join(dir, 'sorted');
  const out = join(dir, 'c.jsonl');
  const s = await run([src], { out, sortInto: sorted });
  const placedFiles = (): string[] => ['back', 'front', 'none', 'uncertain'].flatMap((l) => (existsSync(join(sorted, l)) ? readdirSync(join(sorted, l)).map((f) => join(sorted, l, f)) : []));
  const recs = readRecords(out).filter((r) => r.label !== null);
  assert.equal(s.placed, 12);
  assert.deepEqual(new Set(placedFiles().map(sha256Of)), new Set(recs.map((r) => r.sha256)));
  for (const r of recs) assert.ok(existsSync(join(sorted, r.label!, r.path.split('/').pop()!)), r.path);
  assert.equal(existsSync(join(sorted, 'error')), false);
  assert.equal(readdirSync(join(src, 'batch1')).length, 6, 'sources untouched');
  const before = new Map(placedFiles().map((f) => [f, sha256Of(f)]));
  // The same names with other photos: every clash gets a suffix, no earlier file changes.
  const src2 = join(dir, 'src2');
  await fillFolder(src2, distinctPhotos(6, 100)); // backs, like batch1: the same names clash
  const s2 = await run([src2], { out, sortInto: sorted });
  assert.equal(s2.placed, s2.classified - s2.errors);
  for (const [f, sha] of before) assert.equal(sha256Of(f), sha, `${f} unchanged`);
  assert.equal(placedFiles().length, 12 + s2.placed);
  const clashes = readRecords(out)
    .filter((r) => r.path.startsWith(src2) && r.label !== null)
    .filter((r) => before.has(join(sorted, r.label!, r.path.split('/').pop()!)));
  assert.ok(clashes.length > 0, 'the test meets name clashes (same name, same label)');
  for (const r of clashes) assert.equal(sha256Of(join(sorted, r.label!, r.path.split('/').pop()!.replace('.jpg', '-1.jpg'))), r.sha256);
});

test('catalog --sort-into --link makes hard links; --move removes sources only with their copy and record, and finishes an interrupted move', { skip: NO_DATA }, async () => {
  const { dir, src } = await smallCollection('sort-move');
  const linked = join(dir, 'linked');
  const l = await run([join(src, 'batch1')], { out: join(dir, 'l.jsonl'), sortInto: linked, placement: 'link' });
  assert.equal(l.placed, 6);
  for (const r of readRecords(join(dir, 'l.jsonl'))) assert.equal(statSync(join(linked, r.label!, r.path.split('/').pop()!)).ino, statSync(r.path).ino);

  const sorted = join(dir, 'sorted');
  const out = join(dir, 'm.jsonl');
  const m = await run([src], { out, sortInto: sorted, placement: 'move' });
  assert.deepEqual([m.placed, m.moved], [12, 12]);
  const left = ['batch1', 'batch2'].flatMap((d) => readdirSync(join(src, d)));
  assert.deepEqual(left, ['same-as-first.jpg'], 'a duplicate is neither placed nor moved');
  assert.ok(existsSync(join(src, 'corrupt.jpg')), 'a failed image stays');
  const recs = readRecords(out);
  for (const r of recs.filter((x) => x.label !== null)) assert.equal(sha256Of(join(sorted, r.label!, r.path.split('/').pop()!)), r.sha256);

  // A kill after the append but before the removals leaves a source whose record exists: the rerun removes it.
  const r0 = recs.find((r) => r.label !== null)!;
  await copyFile(join(sorted, r0.label!, r0.path.split('/').pop()!), r0.path);
  const again = await run([src], { out, sortInto: sorted, placement: 'move' });
  assert.deepEqual([again.classified, again.placed, again.moved], [0, 0, 1]);
  assert.equal(existsSync(r0.path), false);
  assert.equal(sha256Of(join(sorted, r0.label!, r0.path.split('/').pop()!)), r0.sha256);
});

test('catalog CLI: bad inputs get clear errors and exit 2 or 1, touching nothing', { skip: NO_DATA }, async () => {
  const { dir, src } = await smallCollection('cli');
  const notes = join(dir, 'notes.txt');
  await writeFile(notes, 'my notes\n');
  const cases: [string[], number, RegExp][] = [
    [['catalog', join(dir, 'nope'), '--out', join(dir, 'o.jsonl')], 2, /nope: no such file or folder/],
    [['catalog', src, '--out', join(dir, 'missing', 'o.jsonl')], 2, /the folder .*missing does not exist/],
    [['catalog', src], 2, /catalog needs --out/],
    [['catalog', src, '--out', join(dir, 'o.jsonl'), '--move'], 2, /--move needs --sort-into/],
    [['catalog', src, '--out', join(dir, 'o.jsonl'), '--sort-into', join(dir, 's'), '--copy', '--move'], 2, /--copy and --move: give one/],
    [['catalog', src, '--out', join(dir, 'o.jsonl'), '--include', '[abc'], 2, /--include: bad pattern '\[abc'/],
    [['catalog', src, '--out', join(dir, 'o.jsonl'), '--batch-size', '0'], 2, /--batch-size must be an integer >= 1/],
    [['catalog', src, '--out', notes, '--model', 'mobilenet_v2'], 1, /notes\.txt: line 1 is not a catalog record/],
  ];
  for (const [args, code, re] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
  }
  assert.equal(readFileSync(notes, 'utf8'), 'my notes\n');
  assert.equal(existsSync(join(dir, 'o.jsonl')), false);
  // A file that cannot be read (a FIFO named as SRC) gets no record and exit 1: the next run retries it.
  const fifo = join(dir, 'pipe.jpg');
  execFileSync('mkfifo', [fifo]);
  const r = await runCli(['catalog', fifo, join(src, 'batch1'), '--out', join(dir, 'f.jsonl'), '--model', 'mobilenet_v2', '--json']);
  assert.equal(r.code, 1, r.err);
  assert.match(r.err, /pipe\.jpg: not a regular file \(FIFO\)/);
  const summary = JSON.parse(r.out) as CatalogSummary;
  assert.deepEqual([summary.unreadable, summary.classified, summary.records], [1, 6, 6]);
  assert.match(r.err, /catalog 7\/7 \(100%\) [\d.]+ img\/s in \d+s 6 new/, 'the progress bar counted the files found first');
  const text = await runCli(['catalog', join(src, 'batch1'), '--out', join(dir, 'f.jsonl'), '--model', 'mobilenet_v2', '--quiet']);
  assert.deepEqual([text.code, text.out, text.err], [0, '', ''], '--quiet: nothing new, nothing said');
  const plain = await runCli(['catalog', join(src, 'batch1'), '--out', join(dir, 'f.jsonl'), '--model', 'mobilenet_v2']);
  assert.match(plain.out, /^6 image files found: 0 classified .*, 6 already in .*f\.jsonl, 0 duplicates, 0 unreadable\n.* holds 6 records \(model mobilenet_v2 \d{8}-[0-9a-f]{12}\)/);
  const help = await runCli(['catalog', '--help']);
  assert.match(help.out, /--sort-into DIR/);
});

test('catalog CLI: SIGKILL mid-run, then a rerun: every content exactly once, no torn line', { skip: NO_DATA || SLOW }, async (t) => {
  const dir = await temp('kill');
  const src = join(dir, 'src');
  const photos = distinctPhotos(150);
  await fillFolder(src, photos, 'symlink');
  const out = join(dir, 'results.jsonl');
  const env = { ...process.env, PHONESIDE_WEIGHTS_MOBILENET_V2_035: MOBILENET };
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', 'catalog', src, '--out', out, '--model', 'mobilenet_v2', '--batch-size', '4', '--sync-every', '4', '--quiet'], { cwd: ROOT, env, stdio: 'ignore' });
  const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  let killedAt = -1;
  for (;;) {
    await new Promise((r) => setTimeout(r, 5));
    if (child.exitCode !== null) break;
    const text = existsSync(out) ? await readFile(out, 'utf8') : '';
    const n = text.split('\n').length - 1;
    if (n >= 30) {
      child.kill('SIGKILL');
      killedAt = n;
      break;
    }
  }
  await exited;
  assert.ok(killedAt > 0, 'killed before it finished');
  const raw = readFileSync(out, 'utf8');
  const linesAtKill = raw.split('\n').length - 1;
  const tornAtKill = !raw.endsWith('\n') && raw !== '';
  assert.ok(linesAtKill < 150, `killed mid-run (${linesAtKill} lines)`);
  assert.ok(existsSync(`${out}.lock`), 'the killed run left its lock');

  const r = await runCli(['catalog', src, '--out', out, '--model', 'mobilenet_v2', '--json']);
  assert.equal(r.code, 0, r.err);
  const summary = JSON.parse(r.out) as CatalogSummary;
  const recs = readRecords(out); // throws on a torn or bad line
  const expected = new Set(photos.map(sha256Of));
  assert.equal(recs.length, 150);
  assert.deepEqual(new Set(recs.map((x) => x.sha256)), expected, 'every content exactly once');
  assert.equal(summary.classified, 150 - linesAtKill, 'the rerun did exactly what was missing');
  assert.equal(summary.alreadyDone, linesAtKill);
  const figures = `kill test: ${linesAtKill} whole lines at SIGKILL (torn tail: ${tornAtKill}), rerun classified ${summary.classified}, skipped ${summary.alreadyDone}, cut ${summary.tornLines} torn line; ${recs.length} records after resume`;
  t.diagnostic(figures);
  console.log(figures);
});

test('output index over 1,000,000 records: has() right, memory flat', { skip: SLOW }, async (t) => {
  const dir = await temp('million');
  const path = join(dir, 'million.jsonl');
  const n = 1_000_000;
  const ws = createWriteStream(path);
  for (let i = 0; i < n; i += 10_000) {
    let chunk = '';
    for (let j = i; j < i + 10_000; j++) chunk += syntheticLine(j);
    if (!ws.write(chunk)) await new Promise<void>((r) => ws.once('drain', () => r()));
  }
  await new Promise<void>((res, rej) => ws.end((err?: Error | null) => (err ? rej(err) : res())));
  await appendFile(path, syntheticLine(n).slice(0, 33)); // and a torn tail
  const size = statSync(path).size;
  const res = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', resolve(ROOT, 'test/helpers/catalog-index-rss.ts'), path, String(n)], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
  const m = JSON.parse(res.stdout) as { records: number; present: number; presentChecked: number; absent: number; last: boolean; rssBeforeMiB: number; rssAfterMiB: number; openSeconds: number };
  assert.equal(m.records, n);
  assert.equal(m.present, m.presentChecked);
  assert.equal(m.absent, 1000);
  assert.equal(m.last, true);
  const grew = m.rssAfterMiB - m.rssBeforeMiB;
  const figures = `index of ${n} records (${(size / 2 ** 20).toFixed(0)} MiB file): opened in ${m.openSeconds}s, RSS ${m.rssBeforeMiB} -> ${m.rssAfterMiB} MiB (+${grew.toFixed(1)})`;
  t.diagnostic(figures);
  console.log(figures);
  assert.ok(grew < 100, `RSS grew ${grew} MiB for ${n} records`);
  writeFileSync(path, ''); // 200+ MiB: gone before the next test
});
