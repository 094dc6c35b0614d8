/**
 * Bad input (test/helpers/hostile-corpus.ts, made at test time) through every door: `predict` on
 * the command line (JSON lines, CSV and table), the service's decoder (POST /v1/classify), and a
 * dataset scan (scanDataset + checkDecodable, what `train` and `evaluate` run). Each case has one
 * expected outcome per door (EXPECTED below); the format policy (src/data/formats.ts) is one, so
 * a refused format gives the same message in the CLI and over HTTP. Every test is time-bounded:
 * the FIFO and the symbolic link loop used to hang.
 */
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import sharp from 'sharp';
import { checkDecodable, scanDataset } from '../src/data/dataset.js';
import { checkFormat } from '../src/data/formats.js';
import { loadImage } from '../src/data/image.js';
import { expandInputs } from '../src/infer/inputs.js';
import type { PredictionRow } from '../src/infer/predict.js';
import { UNCERTAIN } from '../src/infer/prediction.js';
import { parseCsv } from '../src/util/csv.js';
import { displayPath } from '../src/util/list-dir.js';
import { runCli } from './helpers/cli.js';
import {
  BYTE_CASES,
  COLOURS,
  makeHostileCorpus,
  NAME_CASES,
  NON_UTF8_SHOWN,
  ORIENTATION_TOP_LEFT,
  type HostileCorpus,
  useTempDir,
} from './helpers/hostile-corpus.js';
import { CLASSES, makeBundle, useSharedMobilenet } from './helpers/infer-fixture.js';
import { haveWeights } from './helpers/paths.js';
import { assertError, LIMITS, multipart, useServeFixture } from './helpers/serve.js';

useSharedMobilenet();
const NO_WEIGHTS = !haveWeights && 'needs ../shared MobileNetV2 weights (the fixture model)';

const NOT_IMAGE = 'not an image (JPEG, PNG, WebP, GIF, AVIF or TIFF expected)';
const HEIC = 'HEIC/HEIF is not supported; convert it to JPEG (iPhone: Settings > Camera > Formats > Most Compatible)';
const SVG = 'SVG is not supported (a drawing, not a photo)';
const BMP = 'BMP is not supported';
const PDF = 'PDF is not an image';
const CORRUPT = 'truncated or corrupt';

/** What `predict` prints for a file: a label (any class or uncertain), or this error. */
type PredictOutcome = 'label' | { error: string };
/** What POST /v1/classify answers for the bytes. */
type ServeOutcome = 200 | { status: number; code: string; message: string | RegExp };
/** What a dataset scan does with the file in a class folder: an item, or skipped (by the scan or by checkDecodable) with this reason. */
type ScanOutcome = 'item' | { scan: string } | { decode: string };

interface Expected {
  predict: PredictOutcome;
  serve?: ServeOutcome;
  dataset: ScanOutcome;
}

const refused = (message: string, scan: ScanOutcome): Expected => ({
  predict: { error: message },
  serve: { status: 415, code: 'unsupported_media_type', message },
  dataset: scan,
});
const good: Expected = { predict: 'label', serve: 200, dataset: 'item' };

/** Every corpus case -> its outcome in predict, serve and a dataset scan. */
const EXPECTED: Record<string, Expected> = {
  'zero-byte': { predict: { error: 'empty file' }, serve: { status: 400, code: 'empty_image', message: 'the image is empty (0 bytes)' }, dataset: { decode: 'empty file' } },
  'truncated-jpeg': {
    predict: { error: CORRUPT },
    serve: { status: 422, code: 'corrupt_image', message: `the image could not be decoded: ${CORRUPT}` },
    dataset: { decode: CORRUPT },
  },
  'random-bytes': refused(NOT_IMAGE, { decode: NOT_IMAGE }),
  'text-as-png': refused(NOT_IMAGE, { decode: NOT_IMAGE }),
  'pixel-bomb': {
    predict: { error: 'too many pixels' },
    serve: { status: 413, code: 'too_many_pixels', message: new RegExp(`more than ${LIMITS.maxPixels} pixels`) },
    dataset: { decode: 'too many pixels' },
  },
  'cmyk-jpeg': good,
  'png-16bit': good,
  grayscale: good,
  '1x1': good,
  '10000x100': good,
  'alpha-png': good,
  'animated-gif': good,
  webp: good,
  avif: good,
  tiff: good,
  svg: refused(SVG, { scan: 'unsupported file type ".svg"' }),
  heic: refused(HEIC, { scan: 'unsupported file type ".heic"' }),
  bmp: refused(BMP, { scan: 'unsupported file type ".bmp"' }),
  pdf: refused(PDF, { scan: 'unsupported file type ".pdf"' }),
  ...Object.fromEntries([1, 2, 3, 4, 5, 6, 7, 8].map((o) => [`exif-${o}`, good])),
  ...Object.fromEntries(Object.keys(NAME_CASES).map((id) => [id, { predict: 'label', dataset: 'item' } satisfies Expected])),
  'name-non-utf8': { predict: 'label', dataset: { scan: 'file name is not valid UTF-8 (rename it)' } },
  fifo: { predict: { error: 'not a regular file (FIFO)' }, dataset: { scan: 'not a regular file (FIFO)' } },
  'loop-inner': { predict: 'label', dataset: 'item' },
};

/** The same bytes renamed .jpg: the scan takes them by name, the format policy refuses them by content. */
const DISGUISED: Record<string, string> = { svg: SVG, heic: HEIC, bmp: BMP, pdf: PDF };

function assertRow(row: PredictionRow | undefined, path: string, want: PredictOutcome, what: string): void {
  assert.ok(row, `${what}: no row`);
  assert.equal(row.path, path, `${what}: path`);
  if (want === 'label') {
    assert.equal(row.error, undefined, `${what}: ${row.error}`);
    assert.ok(row.label === UNCERTAIN || CLASSES.includes(row.label!), `${what}: label ${row.label}`);
    const sum = Object.values(row.probabilities!).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-4, `${what}: probabilities sum to ${sum}`);
  } else {
    assert.deepEqual(
      { label: row.label, predicted: row.predicted, confidence: row.confidence, probabilities: row.probabilities, error: row.error },
      { label: null, predicted: null, confidence: null, probabilities: null, error: want.error },
      what,
    );
  }
}

const jsonRows = (out: string): PredictionRow[] =>
  out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as PredictionRow);

describe('hostile files', () => {
  const dir = useTempDir('phoneside-hostile-');
  let corpus: HostileCorpus;
  let model = '';

  before(async () => {
    corpus = await makeHostileCorpus(dir.path('corpus'));
    if (haveWeights) model = await makeBundle(dir.path('model'));
  });

  describe('hostile corpus', () => {
    test('every case has an expected outcome, and the platform made every case', () => {
      assert.deepEqual(corpus.unavailable, [], 'cases this platform could not make');
      const ids = corpus.cases.map((c) => c.id).filter((id) => id !== 'alias' && id !== 'symlink-loop');
      assert.deepEqual(ids.filter((id) => !(id in EXPECTED)), []);
      assert.deepEqual(Object.keys(EXPECTED).filter((id) => !ids.includes(id)), []);
    });

    test('the generated bytes are what they claim', async () => {
      const meta = async (id: string): Promise<sharp.Metadata> => sharp(corpus.get(id).bytes!).metadata();
      assert.equal((await meta('cmyk-jpeg')).space, 'cmyk');
      assert.equal((await meta('png-16bit')).depth, 'ushort');
      assert.equal((await meta('grayscale')).channels, 1);
      assert.equal((await meta('animated-gif')).pages, 3);
      assert.equal((await meta('alpha-png')).hasAlpha, true);
      assert.deepEqual([(await meta('10000x100')).width, (await meta('10000x100')).height], [10_000, 100]);
      const bomb = corpus.get('pixel-bomb').bytes!;
      assert.ok(bomb.length < 1024, `bomb is ${bomb.length} bytes`);
      assert.deepEqual([bomb.readUInt32BE(16), bomb.readUInt32BE(20)], [100_000, 100_000], 'bomb claims 10^10 pixels');
      for (let o = 1; o <= 8; o++) assert.equal((await meta(`exif-${o}`)).orientation, o);
    });
  });

  describe('format policy: one check, one message, CLI and service', () => {
    test('checkFormat on each byte case', () => {
      const types: Record<string, string> = {
        'cmyk-jpeg': 'jpeg', 'png-16bit': 'png', grayscale: 'jpeg', '1x1': 'png', '10000x100': 'png', 'alpha-png': 'png',
        'animated-gif': 'gif', webp: 'webp', avif: 'avif', tiff: 'tiff', 'truncated-jpeg': 'jpeg', 'pixel-bomb': 'png',
      };
      for (const id of Object.keys(BYTE_CASES)) {
        const c = checkFormat(corpus.get(id).bytes!);
        const want = id.startsWith('exif-') ? 'jpeg' : types[id];
        if (want) assert.deepEqual(c, { ok: true, type: want }, id);
        else assert.equal(c.ok ? c.type : c.message, id === 'zero-byte' ? 'empty file' : (EXPECTED[id]!.predict as { error: string }).error, id);
      }
    });

    test('EXIF orientations 1-8 are applied', async () => {
      for (let o = 1; o <= 8; o++) {
        const img = await loadImage(corpus.get(`exif-${o}`).path);
        assert.deepEqual([img.width, img.height], o >= 5 ? [20, 40] : [40, 20], `orientation ${o}: size`);
        const want = COLOURS[ORIENTATION_TOP_LEFT[o]!];
        const got = [img.data[3 * (2 * img.width + 2)]!, img.data[3 * (2 * img.width + 2) + 1]!, img.data[3 * (2 * img.width + 2) + 2]!];
        assert.ok(got.every((v, i) => Math.abs(v - want[i]!) <= 20), `orientation ${o}: top-left [${got}] ~ ${ORIENTATION_TOP_LEFT[o]}`);
      }
    });
  });

  describe('predict on the command line', { skip: NO_WEIGHTS }, () => {
    test('each file named explicitly: one row each, in order, with its exact outcome; exit 1', { timeout: 60_000 }, async () => {
      // Everything that can be named on a command line (a non-UTF-8 name cannot: Node decodes argv as UTF-8).
      const named = corpus.cases.filter((c) => c.id in EXPECTED && typeof c.fsPath === 'string' && c.id !== 'loop-inner');
      const r = await runCli(['predict', '--model', model, '--format', 'jsonl', ...named.map((c) => c.path)]);
      assert.equal(r.code, 1, r.err);
      const rows = jsonRows(r.out);
      assert.equal(rows.length, named.length, r.out);
      named.forEach((c, i) => assertRow(rows[i], c.path, EXPECTED[c.id]!.predict, c.id));
      const errors = named.filter((c) => EXPECTED[c.id]!.predict !== 'label').length;
      assert.match(r.err, new RegExp(`^${named.length} images in .*; ${errors} errors\\n$`));
    });

    test('a FIFO named x.jpg: an error row at once, and the files after it are still classified', { timeout: 20_000 }, async () => {
      const fifo = corpus.get('fifo').path;
      const after = corpus.get('1x1').path;
      const r = await runCli(['predict', '--model', model, '--format', 'jsonl', fifo, after]);
      assert.equal(r.code, 1, r.err);
      const [a, b] = jsonRows(r.out);
      assertRow(a, fifo, { error: 'not a regular file (FIFO)' }, 'fifo');
      assertRow(b, after, 'label', 'the file after the FIFO');
    });

    test('the corpus folder: the link loop ends, each file once (links and aliases too), non-UTF-8 names read', { timeout: 60_000 }, async () => {
      const t0 = performance.now();
      const expanded = await expandInputs([corpus.dir, corpus.get('alias').path, corpus.get('1x1').path]);
      assert.ok(performance.now() - t0 < 10_000, 'expansion is quick');
      const walked = corpus.cases.filter((c) => c.id in EXPECTED && /\.(jpe?g|png|webp|gif|avif|tiff?)$/i.test(c.name));
      const byPath = new Map(walked.map((c) => [c.path, c]));
      const shown = expanded.files.map(displayPath);
      assert.deepEqual(expanded.problems, []);
      assert.deepEqual([...shown].sort(), [...byPath.keys()].sort(), 'exactly the image-named files, each once (the alias and the explicit 1x1.png add nothing)');
      assert.equal(shown.filter((p) => p.endsWith('inner.jpg')).length, 1, 'loop/inner.jpg once, whatever the links');
      assert.ok(Buffer.isBuffer(expanded.files[shown.indexOf(corpus.get('name-non-utf8').path)]), 'a non-UTF-8 name stays a Buffer path');
      // `**` through the loop ends too, each file once.
      const globbed = (await expandInputs([`${corpus.dir}/**/*.jpg`])).files.map(displayPath);
      assert.deepEqual([...globbed].sort(), [...byPath.keys()].filter((p) => p.endsWith('.jpg')).sort());

      const r = await runCli(['predict', '--model', model, '--format', 'jsonl', '--batch-size', '7', corpus.dir]);
      assert.equal(r.code, 1, r.err);
      const rows = jsonRows(r.out);
      assert.deepEqual(rows.map((x) => x.path), shown, 'rows in walk order');
      for (const row of rows) assertRow(row, row.path, EXPECTED[byPath.get(row.path)!.id]!.predict, byPath.get(row.path)!.id);
      assert.ok(rows.some((x) => x.path.endsWith(NON_UTF8_SHOWN) && x.error === undefined), 'the non-UTF-8 name is classified, shown with \\xHH');
    });

    test('odd names: the table escapes control characters, JSON lines and CSV carry names exactly', { timeout: 60_000 }, async () => {
      const odd = Object.keys(NAME_CASES).map((id) => corpus.get(id));
      const paths = odd.map((c) => c.path);

      const t = await runCli(['predict', '--model', model, '--format', 'table', ...paths]);
      assert.equal(t.code, 0, t.err);
      const lines = t.out.split('\n');
      // header, one line per file, blank line, summary, final newline
      assert.equal(lines.length, 1 + odd.length + 3, t.out);
      assert.ok(!/[\t\x1b\r]/.test(t.out), 'no raw tab, escape or carriage return in the table');
      assert.match(t.out, /new\\nline\.jpg\s+(back|front|none|uncertain)\s/);
      assert.match(t.out, /tab\\there\.jpg\s+(back|front|none|uncertain)\s/);
      assert.match(t.out, /ansi-\\x1b\[31mred\\x1b\[0m\.jpg\s/);
      assert.match(t.out, /…l+\.jpg\s/, 'a long name is cut at the front');

      const j = await runCli(['predict', '--model', model, '--format', 'jsonl', ...paths]);
      assert.equal(j.code, 0, j.err);
      assert.deepEqual(jsonRows(j.out).map((r) => r.path), paths);
      assert.equal(j.out.split('\n').length, odd.length + 1, 'one JSON line per file');

      const c = await runCli(['predict', '--model', model, '--format', 'csv', ...paths]);
      assert.equal(c.code, 0, c.err);
      const table = parseCsv(c.out);
      assert.equal(table.length, odd.length + 1);
      assert.deepEqual(table.slice(1).map((row) => row[0]), paths, 'CSV round-trips every name');
      assert.ok(table.every((row) => row.length === table[0]!.length));
    });

    test('a name with a leading dash inside a path is a file, not a flag', { timeout: 30_000 }, async () => {
      const dash = corpus.get('name-dash').path;
      const r = await runCli(['predict', '--model', model, '--format', 'jsonl', dash]);
      assert.equal(r.code, 0, r.err);
      assertRow(jsonRows(r.out)[0], dash, 'label', 'leading dash');
    });
  });

  describe('the service decoder: POST /v1/classify (multipart, one file)', { skip: NO_WEIGHTS }, () => {
    const s = useServeFixture({ app: true });
    for (const id of Object.keys(BYTE_CASES)) {
      test(`${id}: ${JSON.stringify(EXPECTED[id]!.serve)}`, { timeout: 30_000 }, async () => {
        const want = EXPECTED[id]!.serve!;
        // Multipart with the file's name (a 0-byte raw body would be 'no image in the request', not an empty image).
        const c = corpus.get(id);
        const res = await s.app.inject({ method: 'POST', url: '/v1/classify', ...multipart([{ filename: c.name, data: c.bytes! }]) });
        if (want === 200) {
          assert.equal(res.statusCode, 200, res.body);
          const body = res.json() as { results: { label: string }[] };
          assert.equal(body.results.length, 1);
          assert.ok(body.results[0]!.label === UNCERTAIN || CLASSES.includes(body.results[0]!.label));
        } else {
          const e = assertError(res, want.status, want.code);
          assert.equal(e.file, c.name);
          if (typeof want.message === 'string') assert.equal(e.message, want.message);
          else assert.match(e.message, want.message);
        }
      });
    }

    test('a refused format gives the same message in predict and over HTTP', () => {
      for (const id of Object.keys(BYTE_CASES)) {
        const e = EXPECTED[id]!;
        if (typeof e.serve === 'object' && e.serve.status === 415) assert.deepEqual(e.predict, { error: e.serve.message }, id);
      }
    });
  });

  describe('dataset scan (train, evaluate): scanDataset + checkDecodable', () => {
    let ds = '';
    let front = '';
    before(async () => {
      ds = dir.path('dataset');
      front = join(ds, 'front');
      await makeHostileCorpus(front);
      for (const id of Object.keys(DISGUISED)) await writeFile(join(front, `${id}-disguised.jpg`), BYTE_CASES[id]!.make() as Buffer);
      // One more way up: a link from inside the class to the dataset root (must not pull in back/).
      await symlink('../../..', join(front, 'loop', 'sub', 'top'));
      await mkdir(join(ds, 'back'), { recursive: true });
      for (const [i, colour] of ['#102030', '#405060'].entries()) {
        await sharp({ create: { width: 16, height: 12, channels: 3, background: colour } }).jpeg().toFile(join(ds, 'back', `b${i}.jpg`));
      }
    });

    test('the scan ends, skips what it cannot take with a reason, and counts each file once', { timeout: 60_000 }, async () => {
      const scan = await scanDataset(ds);
      const rel = (p: string): string => p.slice(ds.length + 1);
      const skipped = new Map(scan.skipped.map((x) => [rel(x.path), x.reason]));
      const c = (id: string): string => `front/${corpus.get(id).name}`;
      const wantSkipped = new Map<string, string>([
        ...Object.entries(EXPECTED)
          .filter(([, e]) => typeof e.dataset === 'object' && 'scan' in e.dataset)
          .map(([id, e]): [string, string] => [c(id), (e.dataset as { scan: string }).scan]),
        ['front/alias-of-1x1.png', 'same file as front/1x1.png (a second link to it)'],
        ['front/loop/sub/top', 'folder already scanned (a symbolic link loop, or a second link to it)'],
        ['front/loop/sub/up1', 'folder already scanned (a symbolic link loop, or a second link to it)'],
        ['front/loop/sub/up2', 'folder already scanned (a symbolic link loop, or a second link to it)'],
      ]);
      assert.deepEqual(Object.fromEntries([...skipped].sort()), Object.fromEntries([...wantSkipped].sort()));

      assert.deepEqual(scan.classes, ['back', 'front']);
      const items = scan.items.map((it) => it.relPath);
      assert.equal(new Set(items).size, items.length, 'no file twice');
      const wantItems = [
        'back/b0.jpg',
        'back/b1.jpg',
        ...Object.entries(EXPECTED)
          .filter(([, e]) => e.dataset === 'item' || (typeof e.dataset === 'object' && 'decode' in e.dataset))
          .map(([id]) => c(id)),
        ...Object.keys(DISGUISED).map((id) => `front/${id}-disguised.jpg`),
      ];
      assert.deepEqual([...items].sort(), [...wantItems].sort());
      assert.deepEqual(scan.duplicates, [], 'no byte-identical files: every file above counts once');

      const checked = await checkDecodable(scan.items);
      const undecodable = Object.fromEntries(checked.skipped.map((x) => [rel(x.path), x.reason]).sort());
      const wantUndecodable = Object.fromEntries(
        [
          ...Object.entries(EXPECTED)
            .filter(([, e]) => typeof e.dataset === 'object' && 'decode' in e.dataset)
            .map(([id, e]): [string, string] => [c(id), (e.dataset as { decode: string }).decode]),
          ...Object.entries(DISGUISED).map(([id, why]): [string, string] => [`front/${id}-disguised.jpg`, why]),
        ].sort(),
      );
      assert.deepEqual(undecodable, wantUndecodable);
      assert.equal(checked.ok.length, scan.items.length - Object.keys(wantUndecodable).length);
    });

    test('evaluate on the same folder ends and lists what it skipped', { skip: NO_WEIGHTS, timeout: 120_000 }, async () => {
      const r = await runCli(['evaluate', '--model', model, ds, '--json']);
      assert.equal(r.code, 0, r.err);
      const report = JSON.parse(r.out) as { images?: number; n?: number; metrics?: { support?: number[] } };
      assert.ok(report, 'a JSON report');
      assert.match(r.err, /skipped .*fifo\.jpg: not a regular file \(FIFO\)/);
      assert.match(r.err, /skipped .*loop\/sub\/up1: folder already scanned/);
      assert.match(r.err, /skipped .*bomb\.png: too many pixels/);
    });
  });
});
