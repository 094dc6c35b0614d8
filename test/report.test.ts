/**
 * Report building blocks (curves, calibration bins, confused pairs) against scikit-learn's
 * definitions, and the evaluation / comparison reports built from a fixture run.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { softmaxWithTemperature } from '../src/eval/calibration.js';
import { mostConfusedPairs, precisionRecallCurve, reliabilityDiagram, uncalibrate } from '../src/eval/curves.js';
import { EVALUATION_REPORT_SCHEMA, reportToJSON } from '../src/eval/evaluation-report.js';
import { evaluationHtml } from '../src/eval/html-report.js';
import { renderComparisonHtml } from '../src/eval/html/compare-page.js';
import { bestIndex, comparisonRows, formatComparisonTable } from '../src/eval/compare-format.js';
import { COMPARISON_SCHEMA, type ComparisonReport, type ModelComparison } from '../src/eval/compare.js';
import { expectedCalibrationError } from '../src/eval/metrics.js';
import { readRunArtifacts } from '../src/eval/run-folder.js';
import { CLASSES, EPOCHS, fixtureReport, makeFixtureRun, PREDICTIONS } from './helpers/report-fixture.js';

test('precision-recall curve and average precision match scikit-learn', () => {
  // sklearn docs: average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.8333...
  const c = precisionRecallCurve([0.1, 0.4, 0.35, 0.8], [false, false, true, true]);
  assert.ok(Math.abs(c.averagePrecision - 0.8333333333) < 1e-9);
  assert.deepEqual(c.points.map((p) => p.threshold), [0.8, 0.4, 0.35, 0.1]);
  assert.deepEqual(c.points.map((p) => p.recall), [0.5, 0.5, 1, 1]);
  assert.deepEqual(c.points.map((p) => +p.precision.toFixed(4)), [1, 0.5, 0.6667, 0.5]);
  // Tied scores form one threshold; a perfect ranking has AP 1; no positives: NaN.
  const tie = precisionRecallCurve([0.5, 0.5, 0.2], [true, false, false]);
  assert.equal(tie.points.length, 2);
  assert.equal(tie.points[0]!.precision, 0.5);
  assert.equal(precisionRecallCurve([0.9, 0.8, 0.1], [true, true, false]).averagePrecision, 1);
  assert.ok(Number.isNaN(precisionRecallCurve([0.3], [false]).averagePrecision));
  assert.throws(() => precisionRecallCurve([NaN], [true]), /finite/);
});

test('reliability bins agree with ECE and put each sample in one (lo, hi] bin', () => {
  const probs = [[0.95, 0.05], [0.6, 0.4], [0.55, 0.45], [0.2, 0.8]];
  const y = [0, 1, 0, 1];
  const r = reliabilityDiagram(probs, y, 10);
  assert.equal(r.bins.reduce((a, b) => a + b.count, 0), 4);
  assert.equal(r.bins[9]!.count, 1); // 0.95 in (0.9, 1]
  assert.equal(r.bins[5]!.count, 2); // 0.6 and 0.55 in (0.5, 0.6]
  assert.equal(r.bins[5]!.accuracy, 0.5);
  assert.ok(Math.abs(r.bins[5]!.confidence - 0.575) < 1e-12);
  assert.ok(Number.isNaN(r.bins[0]!.accuracy));
  assert.equal(r.ece, expectedCalibrationError(probs, y, 10));
  // |1-.95|*1/4 + |.5-.575|*2/4 + |1-.8|*1/4
  assert.ok(Math.abs(r.ece - (0.05 / 4 + 0.075 / 2 + 0.2 / 4)) < 1e-12);
});

test('uncalibrate undoes temperature scaling', () => {
  const logits = [[2, -1, 0.5], [0.1, 0.2, 3], [-40, 0, 1]];
  for (const t of [0.5, 0.8, 1.7]) {
    const back = uncalibrate(softmaxWithTemperature(logits, t), t);
    const want = softmaxWithTemperature(logits, 1);
    back.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - want[i]![k]!) < 1e-9, `T ${t} row ${i}`)));
  }
  assert.throws(() => uncalibrate([[1]], 0), /positive/);
});

test('most-confused pairs: off-diagonal cells, most frequent first', () => {
  const pairs = mostConfusedPairs([[5, 2, 0], [1, 9, 3], [0, 3, 7]], CLASSES);
  assert.deepEqual(pairs.map((p) => `${p.trueClass}>${p.predicted}:${p.count}`), ['none>front:3', 'front>none:3', 'back>front:2', 'front>back:1']);
  assert.equal(pairs[0]!.rate, 0.3);
});

test('evaluation report from a fixture run: data, JSON and a self-contained HTML page', async () => {
  const root = await mkdtemp(join(tmpdir(), 'phoneside-report-'));
  try {
    const { runDir, dataDir } = await makeFixtureRun(root);
    const run = await readRunArtifacts(join(runDir, 'model')); // the model/ folder inside a run finds the run
    assert.ok(run);
    assert.equal(run.epochs.length, 4);
    assert.equal(run.bestEpoch, 3);
    const report = fixtureReport(runDir, dataDir, run);
    assert.equal(report.schema, EVALUATION_REPORT_SCHEMA);
    assert.equal(report.metrics.accuracy, 9 / 12);
    assert.deepEqual(report.metrics.confusion, [[3, 1, 0], [0, 3, 1], [0, 1, 3]]);
    // Mistakes, most confident first: f4 (0.85), b4 (0.6), n4 (0.5).
    assert.deepEqual(report.mistakes.map((m) => m.path), ['front/f4.jpg', 'back/b4 <odd> & "name".jpg', 'none/n4.jpg']);
    assert.equal(report.mistakes[0]!.trueClassProbability, 0.1);
    assert.equal(report.prCurves.length, 3);
    assert.ok(report.macroAveragePrecision! > 0.5 && report.macroAveragePrecision! <= 1);
    assert.equal(report.calibration.after.ece, expectedCalibrationError(PREDICTIONS.map((p) => p.probabilities), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], 15));
    assert.notEqual(report.calibration.before.ece, report.calibration.after.ece);
    assert.equal(report.training!.epochs.length, EPOCHS.length);
    assert.equal(report.dataSummary!.nearDuplicatesAcrossSplit.length, 1);
    const json = JSON.parse(reportToJSON(report)) as Record<string, unknown>;
    for (const key of ['schema', 'model', 'data', 'metrics', 'prCurves', 'calibration', 'confusedPairs', 'mistakes', 'training', 'dataSummary', 'predictions']) assert.ok(key in json, key);

    const html = await evaluationHtml(report, { dataDir });
    for (const id of ['confusion-matrix', 'per-class', 'pr-curves', 'reliability', 'gallery', 'confused-pairs', 'training', 'data']) {
      assert.match(html, new RegExp(`<section id="${id}"`), id);
    }
    assert.equal((html.match(/<figure class="mistake"/g) ?? []).length, 3);
    assert.equal((html.match(/src="data:image\/jpeg;base64,/g) ?? []).length, 3, 'every mistake has an embedded thumbnail');
    assert.ok(!html.includes('<odd>'), 'file names are escaped');
    assert.ok(html.includes('b4 &lt;odd&gt; &amp; &quot;name&quot;.jpg'));
    // Self-contained: no scripts, no URL other than SVG's namespace identifier.
    assert.ok(!/<script/i.test(html));
    const urls = (html.match(/https?:\/\/[^\s"')]+/g) ?? []).filter((u) => u !== 'http://www.w3.org/2000/svg');
    assert.deepEqual(urls, []);
    assert.match(html, /corrupt JPEG data/); // training's skipped files
    assert.match(html, /front\/t9\.jpg/); // near-duplicate across the split
    assert.match(html, /kept: 3/); // best-epoch marker on the curves
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

function fakeModel(name: string, accuracy: number, latency: number): ModelComparison {
  return {
    name, path: `/models/${name}`, backbone: name, accuracy, macroF1: accuracy - 0.01, weightedF1: accuracy,
    perClassF1: { back: accuracy, front: accuracy - 0.02, none: accuracy + 0.01 }, macroAveragePrecision: accuracy + 0.02,
    ece: 0.03, eceAtT1: 0.04, temperature: 0.8, mistakes: Math.round((1 - accuracy) * 100),
    parameters: { total: 2.5e7, trained: 1e6 }, sizeBytes: { bundle: 1e7, onnx: 1e8 },
    latency: { singleImageMsP50: latency, singleImageMsP90: latency * 1.2, throughputImagesPerSecond: 1000 / latency, threads: null },
  };
}

test('comparison: table marks the best of ranked rows, HTML page renders without remote URLs', () => {
  const report: ComparisonReport = {
    schema: COMPARISON_SCHEMA,
    createdAt: '2026-01-01T00:00:00Z',
    data: { dir: 'data', subset: 'all', images: 100, perClass: { back: 30, front: 40, none: 30 }, skipped: [] },
    classes: CLASSES,
    models: [fakeModel('big', 0.95, 40), fakeModel('small', 0.91, 9)],
    agreement: { disagreements: 6, allWrong: ['front/x.jpg'] },
  };
  const rows = comparisonRows(report);
  assert.equal(bestIndex(rows.find((r) => r.label === 'accuracy')!), 0);
  assert.equal(bestIndex(rows.find((r) => r.label === 'latency p50, 1 image (ms)')!), 1);
  assert.equal(bestIndex(rows.find((r) => r.label === 'ECE (as deployed)')!), undefined, 'a tie has no best');
  const text = formatComparisonTable(report);
  assert.match(text, /accuracy\s+0\.9500 \*\s+0\.9100\n/);
  assert.match(text, /latency p50, 1 image \(ms\)\s+40\.0\s+9\.0 \*/);
  assert.match(text, /disagree on 6 images; 1 images every model gets wrong/);
  const html = renderComparisonHtml(report);
  assert.match(html, /id="comparison-table"/);
  assert.ok(!/<script/i.test(html));
  assert.deepEqual((html.match(/https?:\/\/[^\s"')]+/g) ?? []).filter((u) => u !== 'http://www.w3.org/2000/svg'), []);
});
