/**
 * Benchmark (not a test): time per stage of training on this machine, for each backbone.
 *   decode   JPEG -> 224x224 RGB (sharp), ms per image
 *   augment  one augmented view from a decoded image, ms per view
 *   trunk    frozen trunk in ONNX Runtime at the default cut, ms per image (batch 16)
 *   step     one training step (fine-tuned top + head, forward + backward + AdamW) on cached
 *            trunk features, ms per batch of 32 on the tfjs wasm backend, through fit() with 1
 *            and with all-cores training workers (src/train/parallel.ts); wall time, and the CPU
 *            time of all threads (robust to other load: with W workers on W idle cores, the wall
 *            time tends to cpu / W plus the head's share). PyTorch's step on the same block:
 *            python3 bench/torch_bench.py --train-step
 *   epoch    (--epoch) one epoch of the full set's shape through fit(): 1,029 training rows in
 *            batches of 32 + validation of 256, s per epoch, per worker count
 * Usage: npm run bench:stages [-- --images N --top-blocks N --workers 1,2 --epoch]
 */
import { readdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
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
import { fit } from '../src/train/fit.js';
import { createRng } from '../src/util/rng.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '48' },
    data: { type: 'string', default: '../shared/datasets/phones' },
    'top-blocks': { type: 'string', default: '1' },
    workers: { type: 'string', default: `1,${availableParallelism()}` },
    epoch: { type: 'boolean', default: false },
    backbones: { type: 'string', default: 'resnet50,mobilenet_v2' },
  },
});
const DATA = resolve(values.data!);
const N = Number(values.images);
const MOBILENET_MIRROR = resolve('../shared/weights/mobilenet_v2_0.35_224');
const TOP_BLOCKS = Number(values['top-blocks']);
const WORKERS = [...new Set(values.workers!.split(',').map(Number))];

const files: string[] = [];
for (const c of ['front', 'back', 'none']) {
  const names = (await readdir(join(DATA, c))).filter((f) => f.endsWith('.jpg')).sort();
  files.push(...names.slice(0, Math.ceil(N / 3)).map((f) => join(DATA, c, f)));
}
const ms = (t0: number): number => performance.now() - t0;
const fmt = (x: number): string => x.toFixed(1).padStart(8);

await initTrainingBackend('wasm');
console.log(`phoneside stage benchmark — ${new Date().toISOString()}, ${files.length} images, node ${process.version}`);
console.log(`--top-blocks ${TOP_BLOCKS}; step and epoch: ${WORKERS.map((w) => `${w} worker(s)`).join(' | ')}; ${availableParallelism()} cores`);
console.log(`backbone           cut                   decode ms/img  augment ms/view  trunk ms/img  step ms/batch32 (cpu ms, all threads)${values.epoch ? '  epoch s' : ''}`);
for (const name of values.backbones!.split(',')) {
  const spec = getBackbone(name);
  if (name === 'mobilenet_v2' && weightsDirFor(env, spec.id) === undefined) env.weightsDir[spec.id] = MOBILENET_MIRROR;
  const backbone = await loadBackbone(spec);
  const cut = cutLayer(spec, TOP_BLOCKS);
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
  const rows = Array.from({ length: 16 }, (_, i) => feats.slice(i * trunk.outputSize, (i + 1) * trunk.outputSize));
  const newModel = (): ClassifierModel =>
    new ClassifierModel({
      backboneGraph: backbone.graph, cut, featureLayer: spec.featureLayer, cutShape: shape, featureShape: [...shape],
      head: { units: spec.defaultHeadUnits, numClasses: 3, dropout: 0.5, bnMomentum: 0.9, bnEpsilon: 1e-3 }, rng: createRng(2),
    });
  /** fit() over `train` rows (references to the 16 trunk outputs) and `val` rows; batch-end times. */
  const run = async (workers: number, train: number, val: number): Promise<{ ends: number[]; cpu: number[]; start: number; end: number }> => {
    const model = newModel();
    const ends: number[] = [];
    const cpu: number[] = []; // process CPU time (all threads), ms
    let start = 0;
    await fit(
      model,
      {
        train: Array.from({ length: train }, (_, i) => [rows[i % 16]!]), trainLabels: Array.from({ length: train }, (_, i) => i % 3),
        val: Array.from({ length: val }, (_, i) => rows[i % 16]!), valLabels: Array.from({ length: val }, (_, i) => i % 3), classes: ['a', 'b', 'c'],
      },
      {
        epochs: 1, batchSize: 32, loss: { kind: 'focal', gamma: 2 }, topLrScale: 0.1, rng: createRng(3), workers,
        optimizer: { kind: 'adamw', lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 1e-4 },
        callbacks: [{ onTrainBegin: () => { start = performance.now(); }, onBatchEnd: () => { ends.push(performance.now()); const u = process.cpuUsage(); cpu.push((u.user + u.system) / 1000); } }],
      },
    );
    const end = performance.now();
    model.dispose();
    return { ends, cpu, start, end };
  };
  const steps: string[] = [];
  const epochs: string[] = [];
  for (const w of WORKERS) {
    const { ends, cpu } = await run(w, 32 * 4, 0); // the first step warms up; the next three are timed
    // Wall time, and CPU time of all threads (what the step costs the machine, robust to other load).
    steps.push(`${fmt((ends[3]! - ends[0]!) / 3)} (cpu ${((cpu[3]! - cpu[0]!) / 3).toFixed(0)})`);
    if (values.epoch) {
      const e = await run(w, 1029, 256);
      epochs.push(fmt((e.end - e.start) / 1000)); // from after the workers started to the end of validation
      if (process.env.BENCH_DEBUG) {
        const d = e.ends.slice(1).map((t, i) => t - e.ends[i]!).sort((p, q) => p - q);
        console.error(`  ${w} worker(s): epoch steps median ${d[d.length >> 1]!.toFixed(0)} ms, min ${d[0]!.toFixed(0)}, max ${d[d.length - 1]!.toFixed(0)}; validation ${(e.end - e.ends[e.ends.length - 1]!).toFixed(0)} ms`);
      }
    }
  }
  const stepMs = steps.join(' |');
  console.log(`${spec.id.padEnd(18)} ${cut.padEnd(21)} ${fmt(decode)}      ${fmt(aug)}        ${fmt(trunkMs)}     ${stepMs}${values.epoch ? `  ${epochs.join(' |')}` : ''}`);
}
