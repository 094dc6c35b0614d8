/**
 * `phoneside explain` and src/explain: on a synthetic classifier whose answer depends on one
 * region only, both methods put the map's maximum in that region; the finite-difference
 * gradients against the analytic ones; the shipped MobileNetV2 on real photos; the CLI's files,
 * error lines and exit statuses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { explainImages, heatmapOverlayPng, MethodUnavailableError, type Explanation } from '../src/explain/explain.js';
import { camStructure } from '../src/explain/graph.js';
import { gradCamMap, scoreGradients, type HeadRunner } from '../src/explain/gradient.js';
import { mirrorColumns, peak, rectifyAndScale, resizeBilinear } from '../src/explain/heatmap.js';
import { occlusionMap, occlusionPlan } from '../src/explain/occlusion.js';
import { blendHeat } from '../src/explain/colormap.js';
import { normalizeToCHW } from '../src/backbones/preprocess.js';
import type { Preprocessing } from '../src/backbones/registry.js';
import { webDir } from '../src/web/assets.js';
import { Classifier } from '../src/infer/classifier.js';
import { OptionError } from '../src/options/schema.js';
import { classifierMetadata } from '../src/infer/onnx-meta.js';
import { OnnxGraphBuilder } from '../src/onnx/builder.js';
import { renderEvaluationHtml } from '../src/eval/html/evaluation-page.js';
import { reportHeatmaps } from '../src/explain/report-heatmaps.js';
import { startServer } from '../src/serve/server.js';
import { chromiumPath, launchChromium, trackForeignRequests } from './helpers/browser.js';
import { runCli } from './helpers/cli.js';
import { SLOW } from './helpers/slow.js';
import { fixtureReport, makeFixtureRun } from './helpers/report-fixture.js';
import { useSharedMobilenet } from './helpers/infer-fixture.js';
import { seededData } from './helpers/numeric.js';
import { IMAGES, NO_DATA } from './helpers/paths.js';

useSharedMobilenet();

const SIZE = 32;
const HALF = SIZE / 2;
const CLASSES = ['back', 'front', 'none'];

/**
 * A classifier of raw 32x32 RGB pixels that only looks at the top-left quadrant (a fixed 0/1 mask
 * multiplies the input before the convolution): channel 0 = relu(R - G) -> 'back', channel 1 =
 * relu(G - R) -> 'front', pooled, a linear layer, softmax. `softmax: false` ends with a sigmoid
 * instead, a graph Grad-CAM does not recognise.
 */
function regionClassifier(opts: { softmax?: boolean } = {}): Uint8Array {
  const b = new OnnxGraphBuilder({ name: 'region' });
  b.input('input', ['N', 3, SIZE, SIZE]);
  const mask = new Float32Array(SIZE * SIZE);
  for (let y = 0; y < HALF; y++) for (let x = 0; x < HALF; x++) mask[y * SIZE + x] = 1;
  const masked = b.node('Mul', ['input', b.initializer('mask', mask, [1, 1, SIZE, SIZE])], 'masked');
  const w = Float32Array.of(1, -1, 0, -1, 1, 0); // [2 out, 3 in, 1, 1]
  const conv = b.node('Conv', [masked, b.initializer('conv/W', w, [2, 3, 1, 1]), b.initializer('conv/B', new Float32Array(2), [2])], 'conv', { kernel_shape: [1, 1] });
  const relu = b.node('Relu', [conv], 'features');
  const flat = b.node('Flatten', [b.node('GlobalAveragePool', [relu], 'pool')], 'flat', { axis: 1 });
  const fc = Float32Array.of(0.1, 0, 0, 0, 0.1, 0); // [2, 3]
  const logits = b.node('Gemm', [flat, b.initializer('fc/W', fc, [2, 3]), b.initializer('fc/B', Float32Array.of(0, 0, 0.5), [3])], 'logits');
  const probs = opts.softmax === false ? b.node('Sigmoid', [logits], 'probs') : b.node('Softmax', [logits], 'probs', { axis: 1 });
  b.node('Identity', [probs], 'output');
  b.output('output', ['N', 3]);
  const meta = classifierMetadata({
    classes: CLASSES,
    preprocessing: { size: SIZE, channelOrder: 'RGB', mean: [0, 0, 0], std: [1, 1, 1], resize: 'squash' },
    temperature: 1,
    thresholds: {},
    backbone: { id: 'synthetic', weightsSha256: '0'.repeat(64) },
    createdAt: '2026-01-01T00:00:00.000Z',
  });
  for (const [k, v] of Object.entries(meta)) b.metadata(k, v);
  return b.toBytes();
}

/**
 * Grey 32x32 PNG with a red square in the top-left quadrant (the evidence) and a larger green one
 * in the bottom-right quadrant (a decoy the model cannot see: it would say 'front' if it could).
 */
async function regionImage(): Promise<Buffer> {
  const px = new Uint8Array(SIZE * SIZE * 3).fill(128);
  const paint = (x0: number, y0: number, side: number, rgb: [number, number, number]): void => {
    for (let y = y0; y < y0 + side; y++) for (let x = x0; x < x0 + side; x++) px.set(rgb, (y * SIZE + x) * 3);
  };
  paint(4, 5, 7, [230, 30, 30]);
  paint(18, 18, 12, [30, 230, 30]);
  return sharp(px, { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toBuffer();
}

async function fixture(): Promise<{ dir: string; model: string; sigmoidModel: string; image: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'phoneside-explain-'));
  const model = join(dir, 'region.onnx');
  const sigmoidModel = join(dir, 'sigmoid.onnx');
  const image = join(dir, 'evidence.png');
  await writeFile(model, regionClassifier());
  await writeFile(sigmoidModel, regionClassifier({ softmax: false }));
  await writeFile(image, await regionImage());
  return { dir, model, sigmoidModel, image };
}

function assertMapShape(e: Explanation, size: number): void {
  assert.equal(e.error, undefined);
  for (const m of e.maps) {
    assert.equal(m.width, size);
    assert.equal(m.height, size);
    assert.equal(m.values.length, size * size);
    for (const v of m.values) assert.ok(Number.isFinite(v) && v >= 0 && v <= 1, `map value ${v} outside [0, 1]`);
    const max = Math.max(...m.values);
    // A class with no positive evidence anywhere gets an all-zero map; any other peaks at 1.
    assert.ok(max === 1 || (max === 0 && m.class !== e.prediction.predicted), `${m.class}: peak ${max}`);
  }
}

test('on a synthetic image where only one region decides the class, the map peaks in that region (grad-cam and occlusion)', async () => {
  const f = await fixture();
  const clf = await Classifier.load(f.model);
  try {
    assert.ok(camStructure(regionClassifier()).ok, 'the synthetic graph is readable for Grad-CAM');
    for (const method of ['grad-cam', 'occlusion'] as const) {
      const [e] = await explainImages(clf, [f.image], { method });
      assertMapShape(e!, SIZE);
      assert.equal(e!.method, method);
      assert.equal(e!.prediction.predicted, 'back', 'the red square (the only thing the model sees) says back');
      const map = e!.maps[0]!;
      assert.equal(map.class, 'back');
      const { x, y } = peak(map);
      assert.ok(x < HALF && y < HALF, `${method}: peak at (${x}, ${y}) is outside the top-left quadrant`);
      assert.ok(x >= 2 && x < 13 && y >= 3 && y < 14, `${method}: peak at (${x}, ${y}) is not on the red square`);
      // Nothing the model cannot see gets heat: the bottom-right decoy stays cold.
      for (let yy = HALF + 2; yy < SIZE; yy++) for (let xx = HALF + 2; xx < SIZE; xx++) assert.ok(map.values[yy * SIZE + xx]! < 0.05, `${method}: heat ${map.values[yy * SIZE + xx]} on the decoy at (${xx}, ${yy})`);
    }
    const [auto] = await explainImages(clf, [f.image], { classes: 'all' });
    assert.equal(auto!.method, 'grad-cam', 'auto picks Grad-CAM when the graph allows it');
    assert.deepEqual(auto!.maps.map((m) => m.class), CLASSES, 'one map per class, in model order');
  } finally {
    await clf.dispose();
    await rm(f.dir, { recursive: true, force: true });
  }
});

test('a graph Grad-CAM cannot read: auto falls back to occlusion, grad-cam is refused', async () => {
  const f = await fixture();
  const clf = await Classifier.load(f.sigmoidModel);
  try {
    const found = camStructure(regionClassifier({ softmax: false }));
    assert.equal(found.ok, false);
    const [e] = await explainImages(clf, [f.image]);
    assert.equal(e!.method, 'occlusion');
    assertMapShape(e!, SIZE);
    await assert.rejects(explainImages(clf, [f.image], { method: 'grad-cam' }), (err: unknown) => err instanceof MethodUnavailableError && /softmax/.test(err.message));
    await assert.rejects(explainImages(clf, [f.image], { method: 'lime' as 'auto' }), (err: unknown) => err instanceof OptionError && err.option === 'method');
    await assert.rejects(explainImages(clf, [f.image], { classes: 'top' as 'all' }), (err: unknown) => err instanceof OptionError && err.option === 'classes');
  } finally {
    await clf.dispose();
    await rm(f.dir, { recursive: true, force: true });
  }
});

/** A linear head z = W mean_v(g_v) + b over `views` views, as a HeadRunner. */
function linearHead(w: Float32Array, bias: Float32Array, channels: number, classes: number, views: number): HeadRunner {
  return async (pooled, rows) => {
    const images = rows / views;
    const out = new Float32Array(images * classes);
    for (let i = 0; i < images; i++) {
      for (let c = 0; c < classes; c++) {
        let z = bias[c]!;
        for (let v = 0; v < views; v++) for (let k = 0; k < channels; k++) z += (w[c * channels + k]! * pooled[(v * images + i) * channels + k]!) / views;
        out[i * classes + c] = z;
      }
    }
    return out;
  };
}

test('finite-difference gradients of the log-probability match the analytic ones (one member, two views; and an ensemble)', async () => {
  const channels = 300; // more than one chunk of coordinates
  const k = 3;
  const views = 2;
  const members = [0, 1].map((m) => {
    const w = seededData(k * channels, 10 + m, -0.05, 0.05); // logits of a few units: probabilities not saturated
    const bias = seededData(k, 20 + m, -0.5, 0.5);
    const pooled = seededData(views * channels, 30 + m, 0, 2);
    const head = linearHead(w, bias, channels, k, views);
    return { w, pooled, head, views, channels };
  });
  const withLogits = await Promise.all(members.map(async (m) => ({ ...m, logits: await m.head(m.pooled, views) })));
  const softmax = (z: Float32Array): number[] => {
    const e = Array.from(z, (v) => Math.exp(v - Math.max(...z)));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  };
  // d log p_c / d g_{v,k} = (W_ck - sum_j p_j W_jk) / views, weighted by member m's share of p_c in an ensemble.
  const analytic = (m: (typeof withLogits)[number], c: number, share: number): Float64Array => {
    const p = softmax(m.logits);
    const g = new Float64Array(views * channels);
    for (let v = 0; v < views; v++) {
      for (let ch = 0; ch < channels; ch++) {
        let d = m.w[c * channels + ch]!;
        for (let j = 0; j < k; j++) d -= p[j]! * m.w[j * channels + ch]!;
        g[v * channels + ch] = (share * d) / views;
      }
    }
    return g;
  };
  const close = (got: Float64Array, want: Float64Array, what: string): void => {
    let maxErr = 0;
    let scale = 0;
    for (let i = 0; i < want.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(got[i]! - want[i]!));
      scale = Math.max(scale, Math.abs(want[i]!));
    }
    assert.ok(maxErr <= 2e-3 * scale, `${what}: max error ${maxErr} vs scale ${scale}`);
  };
  const single = await scoreGradients([withLogits[0]!], k);
  for (let c = 0; c < k; c++) close(single[0]![c]!, analytic(withLogits[0]!, c, 1), `one member, class ${c}`);
  const both = await scoreGradients(withLogits, k);
  for (let c = 0; c < k; c++) {
    const pc = withLogits.map((m) => softmax(m.logits)[c]!);
    withLogits.forEach((m, i) => close(both[i]![c]!, analytic(m, c, pc[i]! / (pc[0]! + pc[1]!)), `ensemble member ${i}, class ${c}`));
  }
});

test('gradCamMap: weighted sum of the channels, the mirror view mirrored back, members added, ReLU', () => {
  // 2 channels of 4x4; channel 0 hot at column 0, channel 1 hot at column 3 (row 1).
  const one = new Float32Array(2 * 16);
  one[0 * 16 + 1 * 4 + 0] = 1;
  one[1 * 16 + 1 * 4 + 3] = 1;
  const plain = gradCamMap([{ maps: one, views: 1, channels: 2, height: 4, width: 4, mirroredSecondView: false }], [Float64Array.of(1, -1)], 4);
  assert.deepEqual(peak({ width: 4, values: plain }), { x: 0, y: 1 }, 'the positively weighted channel wins');
  assert.equal(plain[1 * 4 + 3], 0, 'negative evidence is cut by the ReLU');
  // Two views: the second is the mirror image, so its hot column 3 is the photo's column 0.
  const two = new Float32Array(2 * 2 * 16);
  two.set(one.subarray(0, 16), 0); // view 0, channel 0: column 0
  two[(1 * 2 + 0) * 16 + 1 * 4 + 3] = 1; // view 1, channel 0: column 3 of the mirror image
  const tta = gradCamMap([{ maps: two, views: 2, channels: 2, height: 4, width: 4, mirroredSecondView: true }], [Float64Array.of(1, 0, 1, 0)], 4);
  assert.equal(tta[1 * 4 + 0], 1, 'both views agree on column 0 once mirrored back');
  assert.equal(tta[1 * 4 + 3], 0);
  // Members of different map sizes are resized to the input before they are added.
  const small = Float32Array.of(0, 0, 0, 1); // 2x2, hot bottom-right
  const mixed = gradCamMap([{ maps: one, views: 1, channels: 2, height: 4, width: 4, mirroredSecondView: false }, { maps: small, views: 1, channels: 1, height: 2, width: 2, mirroredSecondView: false }], [Float64Array.of(1, 0), Float64Array.of(100)], 4);
  assert.equal(peak({ width: 4, values: mixed }).y, 3, 'the strongly weighted member dominates');
});

test('heat-map arithmetic: bilinear resize, mirror, rectify, occlusion plan', () => {
  const constant = resizeBilinear(new Float32Array(12).fill(0.25), 4, 3, 17, 9);
  assert.ok(constant.every((v) => Math.abs(v - 0.25) < 1e-7));
  const ramp = resizeBilinear(Float32Array.of(0, 1), 2, 1, 8, 1);
  for (let i = 1; i < ramp.length; i++) assert.ok(ramp[i]! >= ramp[i - 1]!, 'a ramp stays monotonic');
  assert.deepEqual([...mirrorColumns(Float32Array.of(1, 2, 3, 4, 5, 6), 3, 2)], [3, 2, 1, 6, 5, 4]);
  assert.deepEqual([...rectifyAndScale(Float32Array.of(-1, 2, NaN, 4))], [0, 0.5, 0, 1]);
  assert.deepEqual([...rectifyAndScale(Float32Array.of(-1, 0))], [0, 0], 'no positive evidence: all zeros, no NaN');
  for (const size of [32, 224, 7]) {
    const plan = occlusionPlan(size);
    const covered = new Uint8Array(size * size);
    for (const [x0, y0] of plan.positions) {
      assert.ok(x0 + plan.patch <= size && y0 + plan.patch <= size, 'squares stay inside');
      for (let y = y0; y < y0 + plan.patch; y++) for (let x = x0; x < x0 + plan.patch; x++) covered[y * size + x] = 1;
    }
    assert.ok(covered.every((c) => c === 1), `every pixel of ${size}x${size} is covered`);
  }
});

test('the shipped mobilenet_v2 on two photos: grad-cam maps of the input size, finite, in [0, 1]; overlay PNGs', { skip: NO_DATA }, async () => {
  const clf = await Classifier.load('mobilenet_v2');
  try {
    const size = clf.preprocessing.size;
    const out = await explainImages(clf, IMAGES, { classes: 'all' });
    assert.equal(out.length, 2);
    for (const e of out) {
      assert.equal(e.method, 'grad-cam');
      assert.equal(e.maps.length, clf.classes.length);
      assertMapShape(e, size);
      const probs = await clf.probabilities([e.path]);
      assert.ok(Math.abs(probs[0]![clf.classes.indexOf(e.prediction.predicted)]! - e.prediction.confidence) < 1e-4, 'same answer as the classifier');
    }
    const png = await heatmapOverlayPng(IMAGES[0]!, out[0]!.maps[0]!, { size: 96 });
    const meta = await sharp(png).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 96, 96]);
  } finally {
    await clf.dispose();
  }
});

test('phoneside explain: PNG files per image and class, an error line for a bad image, exit statuses', async () => {
  const f = await fixture();
  try {
    const bad = join(f.dir, 'broken.jpg');
    await writeFile(bad, 'not a JPEG');
    const out = join(f.dir, 'maps');
    const ok = await runCli(['explain', '--model', f.model, f.image, '--out', out]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /evidence\.png {2}back {2}0\.\d{3} {2}grad-cam {2}.*evidence\.back\.png/);
    assert.deepEqual(await readdir(out), ['evidence.back.png']);
    const png = await sharp(join(out, 'evidence.back.png')).metadata();
    assert.deepEqual([png.format, png.width, png.height], ['png', SIZE, SIZE]);

    const again = await runCli(['explain', '--model', f.model, f.image, bad, '--out', out, '--all-classes', '--method', 'occlusion', '--json']);
    assert.equal(again.code, 1, 'an image failed');
    const rows = again.out.trim().split('\n').map((l) => JSON.parse(l) as { path: string; error?: string; method: string | null; files: string[] });
    assert.equal(rows.length, 2);
    assert.match(rows.find((r) => r.path === f.image)!.error!, /exists \(use --overwrite/, 'an existing PNG is not replaced silently');
    assert.match(rows.find((r) => r.path === bad)!.error!, /not an image|corrupt|decode/i);

    const replaced = await runCli(['explain', '--model', f.model, f.image, '--out', out, '--all-classes', '--method', 'occlusion', '--overwrite', '--size', '64']);
    assert.equal(replaced.code, 0, replaced.err);
    assert.match(replaced.out, /occlusion/);
    assert.deepEqual((await readdir(out)).sort(), ['evidence.back.png', 'evidence.front.png', 'evidence.none.png']);
    assert.equal((await sharp(join(out, 'evidence.front.png')).metadata()).width, 64);

    const unavailable = await runCli(['explain', '--model', f.sigmoidModel, f.image, '--out', join(f.dir, 'x'), '--method', 'grad-cam']);
    assert.equal(unavailable.code, 1);
    assert.match(unavailable.err, /Grad-CAM is not available/);

    const noOut = await runCli(['explain', '--model', f.model, f.image]);
    assert.equal(noOut.code, 2);
    assert.match(noOut.err, /--out DIR/);
    const badMethod = await runCli(['explain', '--model', f.model, f.image, '--out', out, '--method', 'lime']);
    assert.equal(badMethod.code, 2);
    const nothing = await runCli(['explain', '--model', f.model, join(f.dir, 'no-such-folder'), '--out', out]);
    assert.notEqual(nothing.code, 0);
  } finally {
    await rm(f.dir, { recursive: true, force: true });
  }
});

test('the evaluation report shows a heat map next to each mistake when given them (and only then)', async () => {
  const f = await fixture();
  const clf = await Classifier.load(f.model);
  try {
    const { runDir, dataDir } = await makeFixtureRun(f.dir);
    const report = fixtureReport(runDir, dataDir, undefined);
    const items = [...report.mistakes.map((m) => ({ key: m.path, file: join(dataDir, m.path) })), { key: 'gone.jpg', file: join(dataDir, 'gone.jpg') }];
    const heatmaps = await reportHeatmaps(clf, items, { size: 64 });
    assert.deepEqual([...heatmaps.keys()].sort(), report.mistakes.map((m) => m.path).sort(), 'a missing file is left out, the others are there');
    for (const h of heatmaps.values()) {
      assert.equal(h.method, 'grad-cam');
      const meta = await sharp(Buffer.from(h.src.replace(/^data:image\/jpeg;base64,/, ''), 'base64')).metadata();
      assert.deepEqual([meta.format, meta.width], ['jpeg', 64]);
    }
    const html = renderEvaluationHtml(report, { heatmaps });
    assert.equal((html.match(/<img class="heatmap"/g) ?? []).length, report.mistakes.length);
    assert.match(html, /heat map: evidence for front \(grad-cam\)/);
    assert.ok(html.includes('b4 &lt;odd&gt; &amp; &quot;name&quot;.jpg'), 'paths stay escaped');
    assert.equal((renderEvaluationHtml(report).match(/class="heatmap"/g) ?? []).length, 0, 'no heat maps unless given');
  } finally {
    await clf.dispose();
    await rm(f.dir, { recursive: true, force: true });
  }
});

/** web/device-mode.js's "Show why" functions (plain browser JS, loaded by URL as the browser does). */
interface WebExplain {
  inputToRgba(input: Float32Array, pre: Preprocessing): Uint8Array;
  occlusionHeat(run: (x: Float32Array) => Promise<ArrayLike<number>>, input: Float32Array, pre: Preprocessing, classIndex: number, baseline: number, onProgress?: (done: number, total: number) => void): Promise<Float32Array>;
}
const webExplain = async (): Promise<WebExplain> => (await import(pathToFileURL(join(webDir(), 'device-mode.js')).href)) as WebExplain;

test('the web page\'s "show why" shares the library\'s arithmetic and recovers the photo from the model input', async () => {
  const web = await webExplain();
  // One module for both: the page's web/heatmap.js, re-exported by src/explain (no copy to drift).
  const page = (await import(pathToFileURL(join(webDir(), 'heatmap.js')).href)) as Record<string, unknown>;
  assert.equal(page['occlusionPlan'], occlusionPlan);
  assert.equal(page['occlusionMap'], occlusionMap);
  assert.equal(page['blendHeat'], blendHeat);
  // The photo as the model saw it comes back from the model's input (BGR and scaling undone).
  const pre: Preprocessing = { size: 4, channelOrder: 'BGR', mean: [103.9, 116.8, 123.7], std: [57.4, 57.1, 58.4], resize: 'squash' };
  const rgb = Uint8Array.from({ length: 48 }, (_, i) => (i * 53) % 256);
  const chw = new Float32Array(48);
  normalizeToCHW(rgb, pre, chw);
  const back = web.inputToRgba(chw, pre);
  for (let p = 0; p < 16; p++) assert.deepEqual([...back.subarray(p * 4, p * 4 + 4)], [...rgb.subarray(p * 3, p * 3 + 3), 255]);
});

test('"show why" in the browser: one square at a time through the device session gives the library\'s occlusion map', async () => {
  const f = await fixture();
  const clf = await Classifier.load(f.model);
  try {
    const web = await webExplain();
    const batch = await clf.decode([f.image]);
    const run = async (x: Float32Array): Promise<number[]> => (await clf.run({ input: x, ok: [0], errors: [undefined], decodeMs: [0] }))[0]!;
    const probs = await run(batch.input);
    let progress = 0;
    const map = await web.occlusionHeat(run, batch.input, clf.preprocessing, 0, probs[0]!, (done) => (progress = done));
    assert.equal(progress, occlusionPlan(SIZE).positions.length);
    const { x, y } = peak({ width: SIZE, values: map });
    assert.ok(x < HALF && y < HALF, `peak at (${x}, ${y}) is outside the top-left quadrant`);
    const [lib] = await explainImages(clf, [f.image], { method: 'occlusion' });
    let maxDiff = 0;
    for (let i = 0; i < map.length; i++) maxDiff = Math.max(maxDiff, Math.abs(map[i]! - lib!.maps[0]!.values[i]!));
    assert.ok(maxDiff < 1e-5, `browser and library maps differ by ${maxDiff}`);
  } finally {
    await clf.dispose();
    await rm(f.dir, { recursive: true, force: true });
  }
});

const BROWSER_SKIP = !chromiumPath ? 'no Chromium installed' : NO_DATA || SLOW;

test('the web page offers "show why" on an on-device card and draws the heat map in the browser', { skip: BROWSER_SKIP, timeout: 180_000 }, async () => {
  const server = await startServer({ port: 0, host: '127.0.0.1', model: 'mobilenet_v2', deviceModel: 'mobilenet_v2', workers: 0 });
  const browser = await launchChromium();
  try {
    const foreign = trackForeignRequests(browser.context, [server.url]);
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/?mode=device`);
    await page.waitForSelector('body[data-ready]');
    await page.waitForSelector('#model-info[data-backend]', { timeout: 60_000 });
    await page.setInputFiles('#file', [IMAGES[1]!]);
    await page.waitForSelector('li.card[data-state="done"] .why-button', { timeout: 60_000 });
    const predicted = await page.getAttribute('li.card', 'data-predicted');
    const t0 = performance.now();
    await page.click('li.card .why-button');
    await page.waitForSelector('li.card[data-why="done"]', { timeout: 120_000 });
    const ms = performance.now() - t0;
    if (process.env['PHONESIDE_EXPLAIN_SHOT']) await page.locator('li.card').screenshot({ path: process.env['PHONESIDE_EXPLAIN_SHOT'] });
    const drawn = await page.evaluate(() => {
      const canvas = document.querySelector('li.card canvas.why-map') as HTMLCanvasElement;
      const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      // Warm (yellow to red: the heat) against the cold blue the rest of the photo is tinted with.
      let warm = 0;
      for (let i = 0; i < px.length; i += 4) if (px[i]! > px[i + 2]! + 40) warm++;
      return { width: canvas.width, height: canvas.height, warm, caption: document.querySelector('li.card figure.why figcaption')?.textContent ?? '' };
    });
    assert.deepEqual([drawn.width, drawn.height], [224, 224]);
    assert.ok(drawn.warm > 100 && drawn.warm < 224 * 224 * 0.8, `the parts that matter are drawn warm, not the whole photo (${drawn.warm} warm pixels)`);
    assert.match(drawn.caption, new RegExp(`What made it say ${predicted}: .*occlusion`));
    assert.equal(await page.locator('li.card .why-button').count(), 0, 'the button goes once the map is shown');
    assert.deepEqual(foreign, [], 'the photo never leaves the page');
    console.log(`"show why" on the device (occlusion, 169 runs of mobilenet_v2 in the browser): ${Math.round(ms)} ms`);
  } finally {
    await browser.close();
    await server.close();
  }
});
