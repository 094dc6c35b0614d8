import assert from 'node:assert/strict';
import { test } from 'node:test';
import { softmaxWithTemperature } from '../src/eval/calibration.js';
import { combineCvReports } from '../src/eval/cv-ensemble.js';
import { CV_REPORT_SCHEMA, type CvReport } from '../src/eval/cv-report.js';
import { groupedScores } from '../src/eval/group-metrics.js';
import { createRng } from '../src/util/rng.js';

const classes = ['back', 'front', 'none'];

/** A member report over fixed images with random logits (only the fields combining reads). */
function member(seed: number, temperature: number, paths = 40): CvReport {
  const rng = createRng(seed);
  const predictions = Array.from({ length: paths }, (_, i) => {
    const logits = classes.map(() => 4 * rng.next() - 2);
    return { path: `img${i}.jpg`, label: classes[i % 3]!, group: `g${i % 4}`, fold: i % 4, predicted: '', probabilities: [], logits };
  });
  return {
    schema: CV_REPORT_SCHEMA, createdAt: '', dataDir: '/d', groupSpec: 'folder', mode: 'leave-one-group-out', backbone: `b${seed}`, topBlocks: 0,
    classes, folds: [], groups: [], pooled: groupedScores([{ group: 'g', label: 0, probabilities: [1, 0, 0] }], classes).pooled,
    eceAtT1: 0, oofTemperature: temperature, medianBestEpoch: 3,
    abstain: { maxErrorRate: 0.05, fit: undefined!, crossFitted: undefined! }, rotated: null, options: {},
    timings: { featuresSeconds: 1, trainSeconds: 2, totalSeconds: 3 }, predictions, outDir: null,
  };
}

test('combineCvReports averages the members\' calibrated probabilities and scores them', () => {
  const a = member(1, 0.7);
  const b = member(2, 1.3);
  // The same images in another order must not matter.
  const bShuffled = { ...b, predictions: [...b.predictions].reverse() };
  const e = combineCvReports([a, bShuffled]);
  const pa = softmaxWithTemperature(a.predictions.map((p) => p.logits), 0.7);
  const pb = softmaxWithTemperature(b.predictions.map((p) => p.logits), 1.3);
  e.predictions.forEach((p, i) => {
    p.probabilities.forEach((x, c) => assert.ok(Math.abs(x - (pa[i]![c]! + pb[i]![c]!) / 2) < 1e-12));
  });
  const again = groupedScores(e.predictions.map((p) => ({ group: p.group, label: classes.indexOf(p.label), probabilities: p.probabilities })), classes);
  assert.deepEqual(again.pooled, e.pooled);
  assert.equal(e.abstain.maxErrorRate, 0.05);
  assert.ok(e.abstain.fit.errorRate <= 0.05);
  assert.equal(e.backbone, 'ensemble(b1+b2)');
});

test('combineCvReports refuses reports of other images, folds or classes', () => {
  assert.throws(() => combineCvReports([member(1, 1)]), /at least two/);
  assert.throws(() => combineCvReports([member(1, 1), member(2, 1, 39)]), /not of the same images/);
  const moved = member(2, 1);
  moved.predictions[0] = { ...moved.predictions[0]!, fold: 3 };
  assert.throws(() => combineCvReports([member(1, 1), moved]), /same images, groups and folds/);
  assert.throws(() => combineCvReports([member(1, 1), { ...member(2, 1), classes: ['a', 'b', 'c'] }]), /disagree on classes/);
});
