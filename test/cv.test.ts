/**
 * Group cross-validation on real images (a small run: MobileNetV2 head only, 20 images per class,
 * 3 folds; about 30 s on 2 cores), through the CLI as a user runs it, and `train --val-groups`.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli } from './helpers/cli.js';
import { DATA, haveData, MANIFEST, MOBILENET } from './helpers/paths.js';
import { SLOW } from './helpers/slow.js';
import { groupedScores } from '../src/eval/group-metrics.js';
import { parseCsv } from '../src/util/csv.js';
import type { CvReport } from '../src/train/cv.js';
import { softmaxWithTemperature } from '../src/eval/calibration.js';
import type { SplitManifest } from '../src/data/split.js';

const skip = !haveData && 'no ../shared data';
/** The tests that train (cv folds, final models): not in npm run test:fast. */
const training = skip || SLOW;

const run = runCli;

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'phoneside-cv-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const SMALL = ['--backbone', 'mobilenet_v2', '--weights', MOBILENET, '--top-blocks', '0', '--views', '2', '--limit-per-class', '20', '--epochs', '4', '--quiet'];

test('cv: folds never split a group, and every figure equals the one recomputed from the out-of-fold rows', { skip: training, timeout: 300_000 }, async () => {
  const out = join(dir, 'cv');
  const r = await run(['cv', DATA, '--groups', 'manifest.csv:source', '--folds', '3', '--tta', '--out', out, '--cache-dir', join(dir, 'cache'), ...SMALL]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /worst group: \S+ \d+\.\d% \(\d+ images\)/);
  const report = JSON.parse(await readFile(join(out, 'cv.json'), 'utf8')) as CvReport;
  assert.equal(report.schema, 'phoneside.cv-report/1');
  assert.equal(report.mode, 'group-k-fold');
  assert.equal(report.folds.length, 3);
  assert.equal(report.predictions.length, 60);

  // Each image's group, read independently from the manifest.
  const csv = parseCsv(await readFile(MANIFEST, 'utf8'));
  const source = new Map(csv.slice(1).map((row) => [row[0]!, row[2]!]));
  const foldOfGroup = new Map<string, number>();
  for (const p of report.predictions) {
    assert.equal(p.group, source.get(p.path), `${p.path}: group`);
    assert.ok(report.folds[p.fold]!.heldOut.includes(p.group), `${p.path} predicted by a fold that trained on its group`);
    const seen = foldOfGroup.get(p.group);
    assert.ok(seen === undefined || seen === p.fold, `group ${p.group} split over folds ${seen} and ${p.fold}`);
    foldOfGroup.set(p.group, p.fold);
  }
  for (const f of report.folds) {
    assert.equal(f.testImages, report.predictions.filter((p) => p.fold === f.fold).length);
    assert.ok(f.trainImages + f.innerValImages + f.testImages === 60);
  }

  // Figures recomputed from the rows.
  const classes = report.classes;
  const again = groupedScores(report.predictions.map((p) => ({ group: p.group, label: classes.indexOf(p.label), probabilities: p.probabilities })), classes);
  assert.deepEqual(again.groups, report.groups);
  assert.deepEqual(again.pooled, report.pooled);
  const correct = report.predictions.filter((p) => p.predicted === p.label).length;
  assert.equal(report.pooled.accuracy, correct / 60);
  for (const g of report.groups) {
    const rows = report.predictions.filter((p) => p.group === g.group);
    assert.equal(g.accuracy, rows.filter((p) => p.predicted === p.label).length / rows.length, g.group);
  }
  assert.ok(report.pooled.accuracy > 0.5, `a head on ImageNet features beats chance (${report.pooled.accuracy})`);

  const html = await readFile(join(out, 'report.html'), 'utf8');
  assert.match(html, /id="group-table"/);
  for (const g of report.groups) assert.ok(html.includes(`<td>${g.group}</td>`), g.group);
});

test('train --from-cv: the final model on all images, with the cv epochs, temperature and thresholds', { skip: training, timeout: 300_000 }, async () => {
  const cvDir = join(dir, 'cv');
  const report = JSON.parse(await readFile(join(cvDir, 'cv.json'), 'utf8')) as CvReport;
  const out = join(dir, 'final');
  const r = await run(['train', DATA, '--from-cv', cvDir, '--out', out, '--cache-dir', join(dir, 'cache'), ...SMALL.filter((a, i, all) => a !== '--epochs' && all[i - 1] !== '--epochs')]);
  assert.equal(r.code, 0, r.err);
  const manifest = JSON.parse(await readFile(join(out, 'model', 'manifest.json'), 'utf8')) as {
    temperature: number; thresholds: Record<string, number>; tta?: string; info: { groupCv: { pooled: { accuracy: number } }; trainImages: number };
  };
  assert.equal(manifest.temperature, report.oofTemperature);
  assert.equal(manifest.tta, 'hflip', 'cross-validated with --tta: the final model averages over the mirror image too');
  assert.deepEqual(manifest.thresholds, report.abstain.fit.thresholds);
  assert.equal(manifest.info.groupCv.pooled.accuracy, report.pooled.accuracy);
  assert.equal(manifest.info.trainImages, 60, 'trained on every image');
  const epochs = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  assert.equal(epochs.length, report.medianBestEpoch);

  const wrong = await run(['train', DATA, '--from-cv', cvDir, '--backbone', 'resnet50', '--top-blocks', '0', '--quiet', '--limit-per-class', '5']);
  assert.equal(wrong.code, 2, 'a recipe other than the cross-validated one is a usage error');
  assert.match(wrong.err, /--from-cv: the cv report is of mobilenet_v2_0\.35 with 0 top block\(s\), this run is resnet50 with 0/);
  const notCv = await run(['train', DATA, '--from-cv', join(out, 'config.json'), '--quiet']);
  assert.equal(notCv.code, 1);
  assert.match(notCv.err, /not a phoneside\.cv-report\/1 report/);
});

test('ensemble --from-cv --link: thresholds fitted on the members\' combined out-of-fold predictions', { skip: training, timeout: 300_000 }, async () => {
  const cvDir = join(dir, 'cv');
  const final = join(dir, 'final');
  const out = join(dir, 'ens');
  const r = await run(['ensemble', final, final, '--names', 'a,b', '--link', '--from-cv', `${cvDir},${cvDir}`, '--out', out]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /group cross-validation of the ensemble/);
  const ens = JSON.parse(await readFile(join(out, 'ensemble.json'), 'utf8')) as { members: string[]; thresholds: Record<string, number>; tta?: string };
  assert.deepEqual(ens.members, ['../final/model', '../final/model'], 'members referred to in place');
  const member = JSON.parse(await readFile(join(cvDir, 'cv.json'), 'utf8')) as CvReport;
  const combined = JSON.parse(await readFile(join(out, 'cv.json'), 'utf8')) as CvReport;
  // Two copies of one member: the mean is that member's calibrated probabilities, so its figures.
  assert.equal(combined.pooled.accuracy, groupedScores(member.predictions.map((p) => ({ group: p.group, label: member.classes.indexOf(p.label), probabilities: softmaxWithTemperature([p.logits], member.oofTemperature)[0]! })), member.classes).pooled.accuracy);
  assert.deepEqual(ens.thresholds, combined.abstain.fit.thresholds);
  assert.equal(ens.tta, 'hflip');
  const predicted = await run(['predict', '--model', out, '--weights', MOBILENET, '--format', 'jsonl', '--quiet', join(DATA, 'front', 'photo__1.jpg')]);
  assert.equal(predicted.code, 0, predicted.err);
  const notFinal = await run(['ensemble', final, final, '--names', 'c,d', '--from-cv', `${cvDir},${join(dir, 'run')}`, '--out', join(dir, 'ens2')]);
  assert.equal(notFinal.code, 1);
  assert.match(notFinal.err, /cannot read the cv report/);
});

test('train --val-groups holds out exactly the named groups', { skip: training, timeout: 300_000 }, async () => {
  const out = join(dir, 'run');
  const r = await run(['train', DATA, '--groups', 'manifest.csv:source', '--val-groups', 'photo,hand_crops', '--out', out, '--cache-dir', join(dir, 'cache'), ...SMALL, '--json']);
  assert.equal(r.code, 0, r.err);
  const split = JSON.parse(await readFile(join(out, 'split.json'), 'utf8')) as SplitManifest;
  const val = split.entries.filter((e) => e.split === 'val');
  assert.ok(val.length > 0);
  for (const e of split.entries) {
    const heldOut = /(^|\/)(photo|hand_crops)__/.test(e.relPath);
    assert.equal(e.split === 'val', heldOut, e.relPath);
  }
});

test('cv and --val-groups: usage errors are clear', { skip }, async () => {
  let r = await run(['cv', DATA]);
  assert.equal(r.code, 2);
  assert.match(r.err, /cv needs --groups/);
  r = await run(['cv', DATA, '--groups', 'source']);
  assert.equal(r.code, 2);
  assert.match(r.err, /group spec 'source' not understood/);
  r = await run(['train', DATA, '--val-groups', 'photo']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--val-groups needs --groups/);
  r = await run(['train', DATA, '--groups', 'manifest.csv:source', '--val-groups', 'nowhere', '--quiet', '--weights', MOBILENET, '--backbone', 'mobilenet_v2', '--limit-per-class', '5']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--val-groups: no images in group\(s\) nowhere \(groups: /);
});
