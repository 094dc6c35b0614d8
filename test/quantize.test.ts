/**
 * Static int8 quantization (src/onnx/quantize.ts, src/onnx/calibrate.ts, src/infer/quantize.ts):
 * the arithmetic against a float64 reference, a tiny Conv + Gemm graph quantized and run by ONNX
 * Runtime within the quantization error bound, the fixture model exported int8 agreeing with
 * fp32, and the gate refusing a bad calibration without --force.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import sharp from 'sharp';
import { cmdExport } from '../src/cli/export.js';
import { cmdPredict } from '../src/cli/predict.js';
import { Classifier } from '../src/infer/classifier.js';
import { exportClassifier } from '../src/infer/export.js';
import { readOnnxMetadata } from '../src/infer/onnx-meta.js';
import { resolveModelPath } from '../src/infer/load.js';
import { applyInt8Recipe, INT8_RECIPE_FILE, listLabelledImages, QuantizationGateError, type Int8Recipe, type QuantizationRecord } from '../src/infer/quantize.js';
import { OnnxGraphBuilder } from '../src/onnx/builder.js';
import { calibrateRanges } from '../src/onnx/calibrate.js';
import { activationParams, dequantizeValue, quantizeModel, quantizeValue, quantizeWeightsPerChannel, roundHalfEven, tensorsToCalibrate } from '../src/onnx/quantize.js';
import { createRng } from '../src/util/rng.js';
import { CLASSES, makeBundle, useSharedMobilenet } from './helpers/infer-fixture.js';
import { fakeIO } from './helpers/cli.js';
import { withEnv } from './helpers/env.js';
import { seededData } from './helpers/numeric.js';
import { DATA, IMAGES, NO_DATA } from './helpers/paths.js';
import { SLOW } from './helpers/slow.js';

useSharedMobilenet();

test('quantize / dequantize arithmetic matches a float64 reference', () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6].map(roundHalfEven), [0, 2, 2, -0, -2, 2, -3]);
  for (const [min, max] of [[-1.3, 4.7], [0, 6], [0.2, 3], [-5, -1], [-2e-3, 1e-3]] as const) {
    const p = activationParams({ min, max }, 'uint8');
    const lo = Math.min(0, min);
    const hi = Math.max(0, max);
    // float64 reference: scale = range / 255, zero point = round(-lo / scale).
    assert.ok(Math.abs(p.scale - (hi - lo) / 255) <= 1e-7 * (hi - lo), `scale ${p.scale}`);
    assert.ok(Number.isInteger(p.zeroPoint) && p.zeroPoint >= 0 && p.zeroPoint <= 255);
    assert.equal(dequantizeValue(quantizeValue(0, p, 0, 255), p), 0, '0.0 is exact');
    if (min >= 0) assert.equal(p.zeroPoint, 0, 'a non-negative range has zero point 0 (ReLU fuses)');
    const rng = createRng(3);
    for (let i = 0; i < 1000; i++) {
      const x = rng.uniform(lo, hi);
      const q = quantizeValue(x, p, 0, 255);
      assert.equal(q, Math.min(255, Math.max(0, roundHalfEven(x / p.scale) + p.zeroPoint)));
      assert.ok(Math.abs(dequantizeValue(q, p) - x) <= p.scale / 2 + 1e-9, `x ${x} -> ${q}`);
    }
    // Outside the range: saturates.
    assert.equal(quantizeValue(hi + 100 * p.scale, p, 0, 255), 255);
  }
  const int8 = activationParams({ min: -1, max: 3 }, 'int8');
  assert.ok(int8.zeroPoint >= -128 && int8.zeroPoint <= 127);

  // Per-channel symmetric weights: channel c has scale max|w_c| / 127, error <= scale / 2.
  const dims = [4, 3, 2, 2];
  const w = seededData(48, 5, -2, 2);
  w.fill(0, 36, 48); // channel 3 all zero
  const { q, scales } = quantizeWeightsPerChannel(w, dims, 0);
  for (let c = 0; c < 4; c++) {
    const ch = Array.from(w.subarray(c * 12, (c + 1) * 12));
    const m = Math.max(...ch.map(Math.abs));
    assert.ok(Math.abs(scales[c]! - (m > 0 ? m / 127 : 1)) < 1e-7);
    ch.forEach((v, j) => {
      const k = q[c * 12 + j]!;
      assert.ok(k >= -127 && k <= 127);
      assert.ok(Math.abs(k * scales[c]! - v) <= scales[c]! / 2 + 1e-7);
    });
  }
  // Gemm B [K, N]: channels along axis 1.
  const b = Float32Array.of(1, -100, 2, 50, -3, 25);
  const r = quantizeWeightsPerChannel(b, [3, 2], 1);
  assert.deepEqual(Array.from(r.scales, (s) => +s.toFixed(6)), [+(3 / 127).toFixed(6), +(100 / 127).toFixed(6)]);
});

test('a tiny Conv + Gemm graph quantized to QDQ runs in ONNX Runtime within the error bound of fp32', async () => {
  const ci = 4, co = 6, hw = 8, units = 5, n = 16;
  const b = new OnnxGraphBuilder({ name: 'tiny' });
  b.input('input', ['N', ci, hw, hw]);
  const cw = seededData(co * ci * 9, 1, -0.5, 0.5);
  const cb = seededData(co, 2, -0.2, 0.2);
  const conv = b.node('Conv', ['input', b.initializer('conv/W', cw, [co, ci, 3, 3]), b.initializer('conv/B', cb, [co])], 'conv', { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  const relu = b.node('Relu', [conv], 'relu');
  const gap = b.node('Flatten', [b.node('GlobalAveragePool', [relu], 'gap')], 'flat', { axis: 1 });
  const gw = seededData(co * units, 3, -1, 1);
  const gb = seededData(units, 4, -0.1, 0.1);
  b.node('Gemm', [gap, b.initializer('fc/W', gw, [co, units]), b.initializer('fc/B', gb, [units])], 'output');
  b.output('output', ['N', units]);
  const fp32 = b.toBytes();

  const x = seededData(n * ci * hw * hw, 7, -1, 1);
  const feed = { input: new ort.Tensor('float32', x, [n, ci, hw, hw]) };
  const opts = { ops: ['Conv', 'Gemm'], exclude: () => false };
  const tensors = tensorsToCalibrate(fp32, opts);
  assert.deepEqual(tensors, ['input', 'relu', 'flat', 'output']);
  const ranges = await calibrateRanges(fp32, tensors, [feed]);
  const { bytes, summary } = quantizeModel(fp32, ranges, opts);
  assert.deepEqual(summary.quantized, { Conv: 1, Gemm: 1 });
  const model = onnxProto.onnx.ModelProto.decode(bytes);
  const ops = model.graph!.node!.map((nd) => nd.opType);
  assert.equal(ops.filter((o) => o === 'QuantizeLinear').length, 4);
  assert.equal(ops.filter((o) => o === 'DequantizeLinear').length, 4 + 4, 'activations + weights and biases');
  const types = new Map(model.graph!.initializer!.map((t) => [t.name, t.dataType]));
  assert.equal(types.get('conv/W/quantized'), onnxProto.onnx.TensorProto.DataType.INT8);
  assert.equal(types.get('conv/B/quantized'), onnxProto.onnx.TensorProto.DataType.INT32);
  assert.ok(!types.has('conv/W'), 'the float weights are gone');

  const run = async (m: Uint8Array): Promise<Float32Array> => {
    const s = await ort.InferenceSession.create(m, { graphOptimizationLevel: 'all' });
    try {
      return (await s.run(feed))['output']!.data as Float32Array;
    } finally {
      await s.release();
    }
  };
  const y32 = await run(fp32);
  const y8 = await run(bytes);

  // First-order worst-case bound of the QDQ arithmetic, from the scales actually used.
  const sx = activationParams(ranges.get('input')!).scale;
  const sRelu = activationParams(ranges.get('relu')!).scale;
  const sFlat = activationParams(ranges.get('flat')!).scale;
  const sOut = activationParams(ranges.get('output')!).scale;
  const cq = quantizeWeightsPerChannel(cw, [co, ci, 3, 3], 0);
  const gq = quantizeWeightsPerChannel(gw, [co, units], 1);
  const maxAbs = (a: ArrayLike<number>): number => Math.max(...Array.from(a, Math.abs));
  const kConv = ci * 9;
  const eConv =
    kConv * (maxAbs(cw) * sx / 2 + maxAbs(x) * maxAbs(cq.scales) / 2 + (sx / 2) * (maxAbs(cq.scales) / 2)) + (sx * maxAbs(cq.scales)) / 2 + sRelu / 2;
  const eA = eConv + sFlat / 2;
  const maxA = ranges.get('flat')!.max;
  const eOut = co * (maxAbs(gw) * eA + maxA * maxAbs(gq.scales) / 2 + eA * maxAbs(gq.scales) / 2) + (sFlat * maxAbs(gq.scales)) / 2 + sOut / 2;
  let worst = 0;
  for (let i = 0; i < y32.length; i++) worst = Math.max(worst, Math.abs(y32[i]! - y8[i]!));
  assert.ok(worst <= eOut, `max |int8 - fp32| ${worst} within the bound ${eOut}`);
  assert.ok(worst > 0, 'the int8 graph really is quantized');
  assert.ok(worst < 0.05 * maxAbs(y32), `and close: ${worst} vs outputs up to ${maxAbs(y32)}`);
});

/** A folder of symlinks to the first `perClass` photos of each class of the phones set. */
async function subset(dir: string, perClass: number): Promise<string> {
  const all = await listLabelledImages(DATA);
  for (const label of ['back', 'front', 'none']) {
    await mkdir(join(dir, label), { recursive: true });
    for (const im of all.filter((x) => x.label === label).slice(0, perClass)) await symlink(im.path, join(dir, label, basename(im.path)));
  }
  return dir;
}

// Slow (about a minute): the fixture's random head fails the gate, so each of its three
// quantizations runs the whole fallback search.
test('int8 export of the fixture model: QDQ file, gate figures, same answers as fp32', { skip: NO_DATA || SLOW }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-int8-'));
  try {
    await withEnv({ cacheDir: join(dir, 'cache') }, async () => {
      const bundle = await makeBundle(join(dir, 'model'));
      const calib = await subset(join(dir, 'calib'), 16);
      const gate = await subset(join(dir, 'gate'), 20);
      const out = join(dir, 'int8.onnx');
      const f = fakeIO();
      // The fixture's head is random (accuracy near chance, top two classes close), so its
      // answers flip more easily than a trained model's: --force, and the figures are checked
      // for form; the shipped models' gate figures are in the README.
      const code = await cmdExport([bundle, '--out', out, '--precision', 'int8', '--calibration', calib, '--gate-data', gate, '--force'], f.io);
      assert.equal(code, 0, f.err());
      assert.match(f.out(), /int8: \d+ Conv quantized \(\d+ kept fp32\), calibrated on 48 images/);
      assert.match(f.out(), /int8 gate (passed|FAILED \(written because of --force\)): agreement with fp32 \d+\.\d+% of 60 images .*max \|Δp\| \d\.\d+, accuracy fp32 .* int8 /);
      const meta = await readOnnxMetadata(out);
      assert.equal(meta['precision'], 'int8');
      const record = JSON.parse(meta['quantization']!) as { gate: { agreement: number; maxAbsDelta: number } };
      assert.ok(record.gate.agreement >= 0.85 && record.gate.maxAbsDelta < 0.3, JSON.stringify(record.gate));

      const argmax = (p: number[]): number => p.indexOf(Math.max(...p));
      const int8 = await Classifier.load(out);
      assert.equal(int8.info.precision, 'int8');
      const p8 = await int8.probabilities(IMAGES);
      await int8.dispose();
      const fp32 = await Classifier.load(bundle);
      const p32 = await fp32.probabilities(IMAGES);
      await fp32.dispose();
      p32.forEach((p, i) => {
        assert.equal(argmax(p8[i]!), argmax(p), `image ${i}: same top class`);
        p.forEach((v, k) => assert.ok(Math.abs(v - p8[i]![k]!) < 0.15, `image ${i} class ${k}: fp32 ${v} int8 ${p8[i]![k]}`));
      });
      await assert.rejects(Classifier.load(out, { precision: 'fp32' }), /exported ONNX file in int8; export it again with --precision fp32/);
      const pf = fakeIO();
      assert.equal(await cmdPredict(['--model', out, '--precision', 'int8', '--format', 'jsonl', '--quiet', IMAGES[0]!], pf.io), 0, pf.err());
      assert.equal((JSON.parse(pf.out().trim()) as { predicted: string }).predicted, CLASSES[argmax(p8[0]!)]);

      // Classifier.load quantizes a bundle itself and caches the result, keyed by the calibration set.
      const opts = { precision: 'int8', calibration: calib, gateData: gate, force: true } as const;
      const a = await Classifier.load(bundle, opts);
      assert.equal(a.source.cacheHit, false);
      assert.match(a.source.cachedOnnx ?? '', /\.int8\.onnx$/);
      const pa = await a.probabilities(IMAGES);
      await a.dispose();
      const again = await Classifier.load(bundle, opts);
      assert.equal(again.source.cacheHit, true);
      assert.equal(again.info.precision, 'int8');
      assert.deepEqual(await again.probabilities(IMAGES), pa);
      await again.dispose();
      const other = await Classifier.load(bundle, { ...opts, calibration: gate });
      assert.equal(other.source.cacheHit, false, 'another calibration set is another cache entry');
      await other.dispose();
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the gate refuses a bad quantization (calibrated on one black image) unless --force', { skip: NO_DATA }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-int8-bad-'));
  try {
    await withEnv({ cacheDir: join(dir, 'cache') }, async () => {
      const bundle = await makeBundle(join(dir, 'model'));
      const black = join(dir, 'black');
      await mkdir(black);
      await writeFile(join(black, 'black.png'), await sharp({ create: { width: 224, height: 224, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png().toBuffer());
      const gate = await subset(join(dir, 'gate'), 15);
      const out = join(dir, 'bad.onnx');
      await assert.rejects(
        exportClassifier({ model: bundle, out, precision: 'int8', calibration: black, gateData: gate }),
        (err: unknown) => err instanceof QuantizationGateError && /fails the accuracy gate/.test(err.message) && err.record?.gate?.passed === false,
      );
      const f = fakeIO();
      await assert.rejects(cmdExport([bundle, '--out', out, '--precision', 'int8', '--calibration', black, '--gate-data', gate], f.io), /agreement with fp32 .*% of 45 images/);
      await assert.rejects(readOnnxMetadata(out), 'nothing written');
      const forced = await exportClassifier({ model: bundle, out, precision: 'int8', calibration: black, gateData: gate, force: true });
      assert.equal(forced.quantization?.forced, true);
      assert.equal(forced.quantization?.gate?.passed, false);
      // Failing with every convolution in int8, it kept more of the most sensitive ones in fp32
      // (0, 4, 8, 12) and wrote the try closest to fp32.
      const attempts = forced.quantization?.attempts ?? [];
      assert.deepEqual(attempts.map((a) => a.keptFp32), [0, 4, 8, 12]);
      assert.equal(forced.quantization?.gate?.agreement, Math.max(...attempts.map((a) => a.agreement)));
      assert.equal(forced.quantization?.keptFp32?.length ?? 0, attempts.find((a) => a.agreement === forced.quantization?.gate?.agreement)!.keptFp32);
      // Loading with int8 applies the same gate.
      await assert.rejects(Classifier.load(bundle, { precision: 'int8', calibration: black, gateData: gate }), QuantizationGateError);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a shipped model's int8 recipe: int8 without photos, the graph its gate was measured on, refused for another graph", { skip: NO_DATA }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-int8-recipe-'));
  try {
    await withEnv({ cacheDir: join(dir, 'cache') }, async () => {
      // No calibration data is read: the recipe's ranges and kept-fp32 list make the graph.
      const t0 = performance.now();
      const int8 = await Classifier.load('mobilenet_v2', { precision: 'int8', threads: 1 });
      const ms = performance.now() - t0;
      assert.equal(int8.info.precision, 'int8');
      const meta = await readOnnxMetadata(int8.source.cachedOnnx!);
      const record = JSON.parse(meta['quantization']!) as QuantizationRecord;
      assert.match(record.recipe ?? '', /models[/\\]mobilenet_v2[/\\]int8\.json$/);
      assert.ok(record.gate!.passed && record.gate!.agreement >= 0.995 && record.gate!.images === 1285, JSON.stringify(record.gate));
      assert.equal(record.keptFp32?.length, record.summary.keptFloat - 1, 'the stem conv and the recipe’s kept convolutions stay fp32');
      // Deterministic: these photos keep fp32's top label (the gate allows 0.5% to change).
      const fp32 = await Classifier.load('mobilenet_v2', { threads: 1 });
      const [p8, p32] = [await int8.probabilities(IMAGES), await fp32.probabilities(IMAGES)];
      p32.forEach((p, i) => assert.equal(p8[i]!.indexOf(Math.max(...p8[i]!)), p.indexOf(Math.max(...p)), IMAGES[i]));
      console.log(`mobilenet_v2 int8 from its recipe in ${Math.round(ms)} ms`);

      // The recipe names the fp32 graph it was made for; any other graph is refused by it.
      const recipe = JSON.parse(await readFile(join(resolveModelPath('mobilenet_v2'), INT8_RECIPE_FILE), 'utf8')) as Int8Recipe;
      const otherModel = await Classifier.load(await makeBundle(join(dir, 'other')), { threads: 1 }); // same backbone, another head
      await otherModel.dispose();
      const other = await readFile(otherModel.source.cachedOnnx!);
      assert.throws(() => applyInt8Recipe(new Uint8Array(other), recipe, 'int8.json'), /int8\.json was made for another fp32 graph/);
      await int8.dispose();
      await fp32.dispose();
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
