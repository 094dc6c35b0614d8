/**
 * Benchmark (not a test): time per stage of training on this machine, for each backbone.
 *   decode   JPEG -> 224x224 RGB (sharp), ms per image
 *   augment  one augmented view from a decoded image, ms per view
 *   trunk    frozen trunk in ONNX Runtime at the default cut, ms per image (batch 16)
 *   step     one training step (fine-tuned top + head, forward + backward + AdamW) on cached
 *            trunk features, ms per batch of 32 on the tfjs wasm backend
 * Usage: npm run bench [-- --images N]
 */
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { getBackbone, cutLayer } from '../src/backbones/registry.js';
import { loadBackbone } from '../src/backbones/load.js';
import { inferShapes } from '../src/backbones/graph.js';
import { normalizeToCHW } from '../src/backbones/preprocess.js';
import { augment, DEFAULT_AUGMENT } from '../src/data/augment.js';
import { loadForModel, loadImage } from '../src/data/image.js';
import { env, weightsDirFor } from '../src/env.js';
import { ClassifierModel } from '../src/model/classifier-model.js';
import { Trunk } from '../src/model/trunk.js';
import { initTrainingBackend } from '../src/train/backend.js';
import { makeLoss } from '../src/train/loss.js';
import { AdamOptimizer } from '../src/train/optimizer.js';
import { createRng } from '../src/util/rng.js';

const { values } = parseArgs({ options: { images: { type: 'string', default: '48' }, data: { type: 'string', default: '../shared/datasets/phones' } } });
const DATA = resolve(values.data!);
const N = Number(values.images);
const MOBILENET_MIRROR = resolve('../shared/weights/mobilenet_v2_0.35_224');

const files: string[] = [];
for (const c of ['front', 'back', 'none']) {
  const names = (await readdir(join(DATA, c))).filter((f) => f.endsWith('.jpg')).sort();
  files.push(...names.slice(0, Math.ceil(N / 3)).map((f) => join(DATA, c, f)));
}
const ms = (t0: number): number => performance.now() - t0;
const fmt = (x: number): string => x.toFixed(1).padStart(8);

await initTrainingBackend('wasm');
console.log(`phoneside stage benchmark — ${new Date().toISOString()}, ${files.length} images, node ${process.version}`);
console.log(`backbone           cut                   decode ms/img  augment ms/view  trunk ms/img  step ms/batch32`);
for (const name of ['resnet50', 'mobilenet_v2']) {
  const spec = getBackbone(name);
  if (name === 'mobilenet_v2' && weightsDirFor(env, spec.id) === undefined) env.weightsDir[spec.id] = MOBILENET_MIRROR;
  const backbone = await loadBackbone(spec);
  const cut = cutLayer(spec, spec.defaultTopBlocks);
  const pre = spec.preprocessing;

  let t0 = performance.now();
  const clean = await Promise.all(files.map((f) => loadForModel(f, pre.size, pre.resize)));
  const decode = ms(t0) / files.length;

  const decoded = await Promise.all(files.map((f) => loadImage(f, { maxSide: 560 })));
  const rng = createRng(1);
  t0 = performance.now();
  for (const img of decoded) await augment(img, pre.size, rng, DEFAULT_AUGMENT);
  const aug = ms(t0) / decoded.length;

  const trunk = await Trunk.create(backbone, { cut, pool: false });
  const per = 3 * pre.size * pre.size;
  const x = new Float32Array(16 * per);
  for (let i = 0; i < 16; i++) normalizeToCHW(clean[i % clean.length]!.data, pre, x, i * per);
  await trunk.run(x, 16); // warm-up
  t0 = performance.now();
  const reps = Math.max(1, Math.floor(files.length / 16));
  let feats: Float32Array = new Float32Array(0);
  for (let r = 0; r < reps; r++) feats = await trunk.run(x, 16);
  const trunkMs = ms(t0) / (reps * 16);
  await trunk.dispose();

  const shape = inferShapes(backbone.graph).get(cut) as [number, number, number];
  const model = new ClassifierModel({
    backboneGraph: backbone.graph, cut, featureLayer: spec.featureLayer, cutShape: shape, featureShape: [...shape],
    head: { units: spec.defaultHeadUnits, numClasses: 3, dropout: 0.5, bnMomentum: 0.9, bnEpsilon: 1e-3 }, rng: createRng(2),
  });
  const opt = new AdamOptimizer({ kind: 'adamw', lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 1e-4 });
  const loss = makeLoss({ kind: 'focal', gamma: 2 });
  const batch = new Float32Array(32 * trunk.outputSize);
  for (let i = 0; i < 32; i++) batch.set(feats.subarray((i % 16) * trunk.outputSize, ((i % 16) + 1) * trunk.outputSize), i * trunk.outputSize);
  const step = (): void => {
    const { value, grads } = tf.tidy(() => {
      const xb = tf.tensor(batch, [32, ...shape]);
      const y = tf.tensor1d(Array.from({ length: 32 }, (_, i) => i % 3), 'int32');
      return tf.variableGrads(() => loss(model.forward(xb, true, 1), y), model.trainableVariables);
    });
    opt.apply(model.trainableVariables, grads);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  step();
  t0 = performance.now();
  for (let r = 0; r < 3; r++) step();
  const stepMs = ms(t0) / 3;
  model.dispose();
  opt.dispose();
  console.log(`${spec.id.padEnd(18)} ${cut.padEnd(21)} ${fmt(decode)}      ${fmt(aug)}        ${fmt(trunkMs)}     ${fmt(stepMs)}`);
}
