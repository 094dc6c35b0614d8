import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitTemperature, nllWithTemperature, softmaxWithTemperature } from '../src/eval/calibration.js';
import { expectedCalibrationError } from '../src/eval/metrics.js';
import { createRng } from '../src/util/rng.js';

test('softmax with temperature: rows sum to 1, T=1 is plain softmax, large T flattens', () => {
  const [p] = softmaxWithTemperature([[1, 2, 3]]);
  const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
  const s = e[0]! + e[1]! + e[2]!;
  p!.forEach((v, i) => assert.ok(Math.abs(v - e[i]! / s) < 1e-12));
  const [flat] = softmaxWithTemperature([[1, 2, 3]], 1e6);
  flat!.forEach((v) => assert.ok(Math.abs(v - 1 / 3) < 1e-5));
  const [big] = softmaxWithTemperature([[1000, 0, -1000]]);
  assert.deepEqual(big!.map((v) => Math.round(v)), [1, 0, 0]);
});

test('NLL by hand', () => {
  // logits [0, ln 3] label 1: p = 3/4 -> NLL = ln(4/3); at T = 2 the logits are [0, ln 3 / 2].
  assert.ok(Math.abs(nllWithTemperature([[0, Math.log(3)]], [1], 1) - Math.log(4 / 3)) < 1e-12);
  const p = Math.sqrt(3) / (1 + Math.sqrt(3));
  assert.ok(Math.abs(nllWithTemperature([[0, Math.log(3)]], [1], 2) + Math.log(p)) < 1e-12);
});

test('fitTemperature recovers the temperature that made over-confident logits', () => {
  // Sample labels from softmax(z), then hand the fitter z * 3 (over-confident): it should find T ~ 3.
  const rng = createRng(5);
  const logits: number[][] = [];
  const labels: number[] = [];
  for (let i = 0; i < 4000; i++) {
    const z = [rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-2, 2)];
    const [p] = softmaxWithTemperature([z]);
    const u = rng.next();
    labels.push(u < p![0]! ? 0 : u < p![0]! + p![1]! ? 1 : 2);
    logits.push(z.map((v) => v * 3));
  }
  const t = fitTemperature(logits, labels);
  assert.ok(t > 2.6 && t < 3.4, `T = ${t}`);
  const before = expectedCalibrationError(softmaxWithTemperature(logits), labels);
  const after = expectedCalibrationError(softmaxWithTemperature(logits, t), labels);
  assert.ok(after < before / 2, `ECE ${before} -> ${after}`);
  assert.ok(nllWithTemperature(logits, labels, t) < nllWithTemperature(logits, labels, 1));
});
