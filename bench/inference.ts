/**
 * Benchmark (not a test): inference speed of the whole classifier (frozen trunk + fine-tuned top
 * blocks + head + softmax, one ONNX graph, run by ONNX Runtime through `Classifier`), beside the
 * same architecture run by PyTorch on the CPU (bench/torch_bench.py), in one run.
 *
 *   e2e    JPEG decode + resize + normalise + inference over real photos (`predictFiles`, which
 *          decodes the next batch while the current one runs), images/s
 *   model  inference alone on pre-decoded tensors, images/s, and the arithmetic rate it implies
 *          (conv + dense FLOPs of the graph x images/s) against the CPU's fp32 peak: measured by
 *          bench/fma_peak.c when a C compiler is at hand, else derived from the CPU flags and clock
 *
 * The classifiers are built without training (real ImageNet trunk and top blocks, seeded random
 * head), which does not change their speed. Prints a markdown table for the README.
 *
 * Usage: npm run bench [-- options]   (bench/run.sh installs PyTorch first when it can)
 *   --images N         JPEGs read from --data (default 64)
 *   --threads 1,2      ONNX Runtime / PyTorch intra-op threads
 *   --batch 1,8,32     images per inference call
 *   --backbones LIST   default resnet50,mobilenet_v2
 *   --precision LIST   fp32,int8 (default): int8 rows time the same classifier statically quantized
 *                      (QDQ int8, calibrated on the benchmark's JPEGs; see src/infer/quantize.ts)
 *   --python PATH      python3 with torch + torchvision; '' skips PyTorch (default /usr/bin/python3)
 *   --experiments      instead: time ONNX Runtime session options and input layouts
 *   --repeat R         rounds per setting, best kept (default 2); --min-seconds S per round (1.5)
 *   --json FILE        also write the raw results
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs, promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { countMacs } from '../src/backbones/flops.js';
import { inferShapes, sliceGraph, type GraphNode, type LayerGraph, type WeightTensor } from '../src/backbones/graph.js';
import { loadBackbone, type LoadedBackbone } from '../src/backbones/load.js';
import { normalizeToCHW } from '../src/backbones/preprocess.js';
import { cutLayer, getBackbone, type Preprocessing } from '../src/backbones/registry.js';
import { loadForModel } from '../src/data/image.js';
import { env, weightsDirFor } from '../src/env.js';
import { Classifier, type DecodedBatch } from '../src/infer/classifier.js';
import { predictFiles } from '../src/infer/predict.js';
import { assembleClassifierGraph } from '../src/model/assemble.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, saveBundle, type ModelBundle } from '../src/model/bundle.js';
import { OnnxGraphBuilder } from '../src/onnx/builder.js';
import { emitLayerGraph } from '../src/onnx/from-graph.js';
import { createRng } from '../src/util/rng.js';
import { calibrateRanges } from '../src/onnx/calibrate.js';
import { quantizeModel, tensorsToCalibrate, withMetadata } from '../src/onnx/quantize.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '64' },
    data: { type: 'string', default: '../shared/datasets/phones' },
    threads: { type: 'string', default: '1,2' },
    batch: { type: 'string', default: '1,8,32' },
    backbones: { type: 'string', default: 'resnet50,mobilenet_v2' },
    precision: { type: 'string', default: 'fp32,int8' },
    python: { type: 'string', default: '/usr/bin/python3' },
    'min-seconds': { type: 'string', default: '1.5' },
    repeat: { type: 'string', default: '2' },
    experiments: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const ints = (s: string): number[] => s.split(',').map((v) => Number(v.trim()));
const N_IMAGES = Number(values.images);
const THREADS = ints(values.threads!);
const BATCHES = ints(values.batch!);
const BACKBONES = values.backbones!.split(',').map((s) => s.trim());
const PRECISIONS = values.precision!.split(',').map((s) => s.trim()) as ('fp32' | 'int8')[];
for (const pr of PRECISIONS) if (pr !== 'fp32' && pr !== 'int8') throw new Error(`--precision: fp32 or int8, not '${pr}'`);
const MIN_MS = Number(values['min-seconds']) * 1000;
const REPEAT = Math.max(1, Number(values.repeat));
const MOBILENET_MIRROR = resolve('../shared/weights/mobilenet_v2_0.35_224');
const log = (s: string): void => void process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------- machine and peak

interface Machine {
  model: string;
  /** e.g. 'family 6 model 207' (hypervisors often hide the marketing name). */
  cpuid: string;
  cores: number;
  mhz: number;
  flags: Set<string>;
}

function machine(): Machine {
  let text = '';
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux: fall back to os.cpus()
  }
  const field = (k: string): string | undefined => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const c = cpus();
  return {
    model: field('model name') ?? c[0]?.model ?? 'unknown CPU',
    cpuid: field('cpu family') ? `family ${field('cpu family')} model ${field('model')}` : '',
    cores: c.length,
    mhz: Number(field('cpu MHz') ?? c[0]?.speed ?? 0),
    flags: new Set((field('flags') ?? '').split(/\s+/)),
  };
}

/** fp32 peak per core: FMA units x SIMD lanes x 2 flops per FMA x clock (assumptions printed). */
function peakPerCore(m: Machine): { gflops: number; assumption: string } {
  const [isa, lanes] = m.flags.has('avx512f') ? ['AVX-512', 16] as const : m.flags.has('avx2') ? ['AVX2', 8] as const : ['SSE', 4] as const;
  const units = 2;
  const ghz = m.mhz / 1000;
  const gflops = units * lanes * 2 * ghz;
  return {
    gflops,
    assumption: `${isa}, ${units} FMA units assumed: ${units} x ${lanes} fp32 lanes x 2 flops x ${ghz.toFixed(2)} GHz ('cpu MHz') = ${gflops.toFixed(1)} GFLOP/s per core`,
  };
}

// ---------------------------------------------------------------- classifiers without training

/** A bundle as training would write it: the real top blocks of the backbone + a seeded random head. */
function makeBundle(backbone: LoadedBackbone, seed: number): ModelBundle {
  const spec = backbone.spec;
  const topBlocks = spec.defaultTopBlocks;
  const cut = cutLayer(spec, topBlocks);
  const shapes = inferShapes(backbone.graph);
  const top = sliceGraph(backbone.graph, cut, spec.featureLayer, shapes.get(cut) as [number, number, number]);
  const rng = createRng(seed);
  const t = (shape: number[], lo: number, hi: number): WeightTensor => ({
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(lo, hi)),
  });
  const nodes: GraphNode[] = [...top.nodes, { name: 'head_gap', op: { kind: 'globalAvgPool' }, inputs: [spec.featureLayer], weights: {} }];
  let prev = 'head_gap';
  let width = (shapes.get(spec.featureLayer) as [number, number, number])[2];
  const dense = (name: string, units: number): GraphNode => {
    const s = 1 / Math.sqrt(width);
    const node: GraphNode = { name, op: { kind: 'dense', units, useBias: true, activation: 'linear' }, inputs: [prev], weights: { kernel: t([width, units], -s, s), bias: t([units], -0.1, 0.1) } };
    width = units;
    prev = name;
    return node;
  };
  spec.defaultHeadUnits.forEach((u, i) => {
    nodes.push(dense(`head_fc${i + 1}`, u));
    nodes.push({
      name: `head_bn${i + 1}`, op: { kind: 'batchNorm', epsilon: 1e-3 }, inputs: [prev],
      weights: { gamma: t([u], 0.8, 1.2), beta: t([u], -0.1, 0.1), moving_mean: t([u], -0.2, 0.2), moving_variance: t([u], 0.5, 1.5) },
    });
    nodes.push({ name: `head_prelu${i + 1}`, op: { kind: 'prelu' }, inputs: [`head_bn${i + 1}`], weights: { alpha: t([u], 0.1, 0.3) } });
    prev = `head_prelu${i + 1}`;
  });
  nodes.push(dense('head_logits', 3));
  return {
    manifest: {
      format: BUNDLE_FORMAT, version: BUNDLE_VERSION, createdAt: new Date().toISOString(),
      backbone: { id: spec.id, family: spec.family, weightsSha256: backbone.weightsSha256, weightsSource: 'bench', cut },
      preprocessing: spec.preprocessing, classes: ['back', 'front', 'none'], topBlocks,
      head: { units: [...spec.defaultHeadUnits], dropout: 0.5 }, temperature: 1, info: {},
    },
    graph: { nodes, input: cut, output: 'head_logits' },
  };
}

/**
 * The classifier graph with raw RGB pixels (0..255 floats, NHWC) in: normalisation, channel
 * order and the NHWC -> NCHW transpose done by ONNX Runtime instead of JS (an input-layout
 * experiment; same output as the product graph).
 */
function buildNhwcModel(graph: LayerGraph, pre: Preprocessing, classes: number): Uint8Array {
  const [h, w, c] = inferShapes(graph).get(graph.input) as [number, number, number];
  const b = new OnnxGraphBuilder({ name: 'classifier_nhwc' });
  b.input('input', ['N', h, w, c]);
  const src = pre.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const mean = new Float32Array(3);
  const scale = new Float32Array(3);
  src.forEach((s, k) => {
    mean[s] = pre.mean[k]!;
    scale[s] = 1 / pre.std[k]!;
  });
  const centred = b.node('Sub', ['input', b.constant('pre/mean', mean, [3])], b.uniqueName('pre/centred'));
  const scaled = b.node('Mul', [centred, b.constant('pre/scale', scale, [3])], b.uniqueName('pre/scaled'));
  let x = b.node('Transpose', [scaled], b.uniqueName('pre/nchw'), { perm: [0, 3, 1, 2] });
  if (pre.channelOrder === 'BGR') x = b.node('Gather', [x, b.constant('pre/bgr', BigInt64Array.from([2n, 1n, 0n]), [3])], b.uniqueName('pre/bgr'), { axis: 1 });
  b.node('Identity', [emitLayerGraph(b, graph, x)], 'output');
  b.output('output', ['N', classes]);
  return b.toBytes();
}

// ---------------------------------------------------------------- timing

type RunFn = (x: Float32Array, n: number) => Promise<unknown>;

/** Model-only images/s: batches of `bs` cycling over the pre-decoded images (after two warm-up calls) for MIN_MS. */
async function timeModel(run: RunFn, pixels: Float32Array, n: number, per: number, bs: number): Promise<number> {
  for (let w = 0; w < 2; w++) await run(pixels.subarray(0, bs * per), bs);
  let done = 0;
  let i = 0;
  const t0 = performance.now();
  do {
    if (i + bs > n) i = 0;
    await run(pixels.subarray(i * per, (i + bs) * per), bs);
    i += bs;
    done += bs;
  } while (performance.now() - t0 < MIN_MS);
  return done / ((performance.now() - t0) / 1000);
}

const asBatch = (input: Float32Array, n: number): DecodedBatch => ({ input, ok: Array.from({ length: n }, (_, i) => i), errors: [], decodeMs: [] });

/**
 * End-to-end images/s of the product path (`predictFiles`: decode of batch k+1 overlaps inference
 * of batch k), over the files from the start, for MIN_MS (whole batches).
 */
async function timeE2E(clf: Classifier, files: readonly string[], bs: number): Promise<number> {
  let ok = 0;
  const t0 = performance.now();
  let elapsed = 0;
  outer: for (;;) {
    for await (const row of predictFiles(clf, files, { batchSize: bs })) {
      if (row.error !== undefined) throw new Error(`${row.path}: ${row.error}`);
      ok++;
      elapsed = performance.now() - t0;
      if (ok % bs === 0 && elapsed >= MIN_MS) break outer;
    }
  }
  // Leaving the generator early leaves its next batch decoding: let it finish before timing more.
  await new Promise((res) => setTimeout(res, 250));
  return ok / (elapsed / 1000);
}

/** The same pipelining as predictFiles, for sessions made here (experiments). */
async function timePipelined(files: readonly string[], bs: number, decode: (f: readonly string[]) => Promise<Float32Array>, run: RunFn): Promise<number> {
  let done = 0;
  const t0 = performance.now();
  do {
    let next: Promise<Float32Array> | undefined = decode(files.slice(0, bs));
    for (let i = 0; next !== undefined; i += bs) {
      const x: Float32Array = await next;
      next = i + bs < files.length ? decode(files.slice(i + bs, i + 2 * bs)) : undefined;
      await run(x, Math.min(bs, files.length - i));
    }
    done += files.length;
  } while (performance.now() - t0 < MIN_MS);
  return done / ((performance.now() - t0) / 1000);
}

function sessionRunner(session: ort.InferenceSession, inShape: (n: number) => number[]): RunFn {
  return async (x, n) => {
    const out = await session.run({ input: new ort.Tensor('float32', x, inShape(n)) });
    for (const t of Object.values(out)) t.dispose();
  };
}

// ---------------------------------------------------------------- data

async function pickFiles(dir: string, n: number): Promise<string[]> {
  const classes = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  const per = Math.ceil(n / classes.length);
  const out: string[] = [];
  for (const c of classes) {
    const names = (await readdir(join(dir, c))).filter((f) => /\.jpe?g$/i.test(f)).sort();
    // Spread over the folder rather than its first files (names cluster by source).
    const step = Math.max(1, Math.floor(names.length / per));
    for (let i = 0; i < names.length && out.length < n && i / step < per; i += step) out.push(join(dir, c, names[i]!));
  }
  return out.slice(0, n);
}

// ---------------------------------------------------------------- main

interface Row {
  backbone: string;
  precision: 'fp32' | 'int8';
  threads: number;
  batch: number;
  e2e: number;
  model: number;
}

interface TorchInfo {
  torch: string;
  torchvision: string;
  mkldnn: boolean;
  /** The quantized engine PyTorch's int8 rows use (null: none in this build). */
  int8Engine: string | null;
}

/** PyTorch images/s for one setting: eager (`e2e`, `model`) and frozen TorchScript; MACs per image. */
interface TorchRow {
  macs: number;
  e2e: number;
  model: number;
  frozenE2e: number;
  frozenModel: number;
}

interface Prepared {
  id: string;
  bundleDir: string;
  /** The int8 graph (exported-file form), when int8 rows are asked for. */
  int8Onnx?: string;
  gflop: number;
  pre: Preprocessing;
  pixels: Float32Array;
  graph: LayerGraph;
  loadMs: { assemble: number; cached: number };
}

const m = machine();
const peak = peakPerCore(m);
const DATA = resolve(values.data!);
const files = await pickFiles(DATA, N_IMAGES);
if (files.length < Math.max(...BATCHES)) throw new Error(`found ${files.length} JPEGs in ${DATA}, fewer than the largest batch`);
const ortVersion = (JSON.parse(readFileSync(join('node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as { version: string }).version;
const work = await mkdtemp(join(tmpdir(), 'phoneside-bench-'));
env.cacheDir = work; // assembled ONNX graphs go here, not into the user's cache
log(`${m.model} (${m.cpuid}), ${m.cores} cores @ ${m.mhz} MHz; ${files.length} JPEGs from ${DATA}`);

async function prepare(name: string): Promise<Prepared> {
  const spec = getBackbone(name);
  // MobileNetV2's weights from ../shared unless PHONESIDE_WEIGHTS_<ID> names some (else the cache / a download).
  if (spec.family === 'mobilenet_v2' && weightsDirFor(env, spec.id) === undefined && existsSync(MOBILENET_MIRROR)) env.weightsDir[spec.id] = MOBILENET_MIRROR;
  const backbone = await loadBackbone(spec);
  const bundle = makeBundle(backbone, 7);
  const bundleDir = join(work, spec.id);
  await saveBundle(bundleDir, bundle);
  const graph = assembleClassifierGraph(backbone, bundle);
  const gflop = countMacs(graph).flops / 1e9;
  let t0 = performance.now();
  const clf = await Classifier.load(bundleDir, { threads: 1 });
  const assemble = performance.now() - t0;
  await clf.dispose();
  t0 = performance.now();
  const again = await Classifier.load(bundleDir, { threads: 1 });
  const cached = performance.now() - t0;
  if (!again.source.cacheHit) log(`  note: second load of ${spec.id} did not hit the model cache`);
  const decoded = await again.decode(files);
  if (decoded.ok.length !== files.length) throw new Error(`could not decode: ${decoded.errors.filter(Boolean).join('; ')}`);
  let int8Onnx: string | undefined;
  if (PRECISIONS.includes('int8')) {
    // Calibrated on the benchmark's own JPEGs (speed does not depend on the ranges); no gate:
    // the head is random. Written as an exported file so Classifier.load runs it as it is.
    const fp32 = new Uint8Array(await readFile(again.source.cachedOnnx!));
    const tensors = tensorsToCalibrate(fp32);
    const s = spec.preprocessing.size;
    const feeds = Array.from({ length: Math.ceil(files.length / 8) }, (_, i) => {
      const n = Math.min(8, files.length - i * 8);
      const per = 3 * s * s;
      return { input: new ort.Tensor('float32', decoded.input.slice(i * 8 * per, (i * 8 + n) * per), [n, 3, s, s]) };
    });
    const ranges = await calibrateRanges(fp32, tensors, feeds);
    int8Onnx = join(work, `${spec.id}.int8.onnx`);
    await writeFile(int8Onnx, withMetadata(quantizeModel(fp32, ranges).bytes, { precision: 'int8' }));
  }
  await again.dispose();
  return { id: spec.id, bundleDir, ...(int8Onnx ? { int8Onnx } : {}), gflop, pre: spec.preprocessing, pixels: decoded.input, graph, loadMs: { assemble, cached } };
}

/** bench/torch_bench.py, kept running so that each setting is timed right after phoneside's. */
class TorchClient {
  private constructor(
    private readonly child: ChildProcess,
    private readonly lines: AsyncIterator<string>,
    private readonly exited: Promise<unknown>,
    readonly info: TorchInfo,
  ) {}

  static async start(python: string): Promise<TorchClient | undefined> {
    log(`PyTorch: ${python} bench/torch_bench.py`);
    const child = spawn(python, [join('bench', 'torch_bench.py')], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((res) => child.on('close', res));
    child.on('error', (err) => log(`PyTorch: ${err.message}`));
    child.stdin!.on('error', () => undefined); // the child died: the next read ends
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    child.stdin!.write(`${JSON.stringify({ files, minSeconds: MIN_MS / 1000, size: 224 })}\n`);
    const first = await lines.next();
    if (first.done === true) {
      log('PyTorch did not start; table without PyTorch');
      return undefined;
    }
    return new TorchClient(child, lines, exited, JSON.parse(first.value) as TorchInfo);
  }

  /** PyTorch's figures for the same setting; for int8, PyTorch's own int8 (undefined if it cannot). */
  async measure(id: string, threads: number, batch: number, precision: 'fp32' | 'int8'): Promise<TorchRow | undefined> {
    this.child.stdin!.write(`${JSON.stringify({ id, headUnits: getBackbone(id).defaultHeadUnits, threads, batch, precision })}\n`);
    const r = await this.lines.next();
    if (r.done === true) return undefined;
    const row = JSON.parse(r.value) as TorchRow | { error: string };
    if ('error' in row) {
      log(`  PyTorch ${precision}: ${row.error}`);
      return undefined;
    }
    return row;
  }

  async close(): Promise<void> {
    this.child.stdin!.end();
    await this.exited;
  }
}

const f1 = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

/**
 * Measured fp32 FMA peak (bench/fma_peak.c, built with the system C compiler when there is one):
 * for t threads, t copies run at once, so the clock is the one t busy cores really get.
 */
async function measuredPeak(threads: readonly number[]): Promise<Map<number, number> | undefined> {
  const avx512 = m.flags.has('avx512f');
  if (!avx512 && !(m.flags.has('avx2') && m.flags.has('fma'))) return undefined;
  const bin = join(work, 'fma_peak');
  const flags = avx512 ? ['-mavx512f', '-DLANES=16'] : ['-mavx2', '-mfma', '-DLANES=8'];
  const cc = spawnSync(process.env['CC'] ?? 'cc', ['-O2', ...flags, '-o', bin, join('bench', 'fma_peak.c')], { stdio: 'ignore' });
  if (cc.status !== 0) return undefined;
  const run = promisify(execFile);
  const out = new Map<number, number>();
  for (const t of threads) {
    const runs = await Promise.all(Array.from({ length: t }, () => run(bin, ['1.5'])));
    out.set(t, runs.reduce((a, r) => a + Number(r.stdout.trim()), 0));
  }
  return out;
}

async function mainTable(): Promise<void> {
  const loadStart = loadavg()[0]!;
  const prepared: Prepared[] = [];
  const rows: (Row & { torch?: TorchRow })[] = [];
  let decodeIps = 0;
  const fma = await measuredPeak(THREADS);
  const torch = values.python ? await TorchClient.start(values.python) : undefined;
  const peakOf = (t: number): number => fma?.get(t) ?? peak.gflops * t;
  log(`fp32 peak measured (FMA loop): ${fma ? THREADS.map((t) => `${t} core(s) ${f1(fma.get(t)!)} GFLOP/s`).join(', ') : 'no C compiler, using the assumed peak'}`);
  for (const name of BACKBONES) {
    const p = await prepare(name);
    prepared.push(p);
    log(`${p.id}: ${p.gflop.toFixed(2)} GFLOP/img; load ${(p.loadMs.assemble / 1000).toFixed(1)} s (assembly) / ${(p.loadMs.cached / 1000).toFixed(1)} s (cached)`);
    const per = 3 * p.pre.size * p.pre.size;
    for (const threads of THREADS) for (const precision of PRECISIONS) {
      const clf = await Classifier.load(precision === 'int8' ? p.int8Onnx! : p.bundleDir, { threads });
      if (decodeIps === 0) {
        // Decode alone (sharp, libuv threads), batches of 8 as predict does: the e2e ceiling.
        const t0 = performance.now();
        for (let i = 0; i < files.length; i += 8) await clf.decode(files.slice(i, i + 8));
        decodeIps = files.length / ((performance.now() - t0) / 1000);
        log(`decode + resize + normalise alone: ${f1(decodeIps)} images/s`);
      }
      for (const batch of BATCHES) {
        // Best of REPEAT rounds, phoneside and PyTorch alternating: bursts of other work on the
        // machine only ever slow a round down.
        let row: Row & { torch?: TorchRow } = { backbone: p.id, precision, threads, batch, e2e: 0, model: 0 };
        for (let r = 0; r < REPEAT; r++) {
          const model = await timeModel((x, n) => clf.run(asBatch(x, n)), p.pixels, files.length, per, batch);
          const e2e = await timeE2E(clf, files, batch);
          log(`  ${p.id} ${precision} threads ${threads} batch ${batch}: e2e ${f1(e2e)} img/s, model ${f1(model)} img/s (${f1(model * p.gflop)} GFLOP/s)`);
          const t = await torch?.measure(p.id, threads, batch, precision);
          const tb = row.torch;
          row = {
            ...row, e2e: Math.max(row.e2e, e2e), model: Math.max(row.model, model),
            ...(t ? { torch: tb ? { macs: t.macs, e2e: Math.max(tb.e2e, t.e2e), model: Math.max(tb.model, t.model), frozenE2e: Math.max(tb.frozenE2e, t.frozenE2e), frozenModel: Math.max(tb.frozenModel, t.frozenModel) } : t } : {}),
          };
        }
        rows.push(row);
      }
      await clf.dispose();
    }
  }
  await torch?.close();
  const loadEnd = loadavg()[0]!;
  const date = new Date().toISOString().slice(0, 10);
  const out: string[] = [];
  out.push(`### Inference, ${date}: ${m.model}${m.cpuid ? ` (${m.cpuid})` : ''}, ${m.cores} cores @ ${(m.mhz / 1000).toFixed(1)} GHz`);
  out.push('');
  out.push(
    `node ${process.version}, onnxruntime-node ${ortVersion}` +
      (torch ? `; PyTorch ${torch.info.torch} / torchvision ${torch.info.torchvision} (CPU, oneDNN ${torch.info.mkldnn ? 'on' : 'off'})` : '; PyTorch not run') +
      `. ${files.length} JPEGs from the phones data set, 224x224, images/s (higher is better). ` +
      '*e2e*: JPEG decode + resize + normalise + inference; *model*: inference on pre-decoded tensors. ' +
      `Whole classifier: trunk + fine-tuned top blocks + head. Cells with two numbers: e2e / model. Each number: best of ${REPEAT} rounds of ${MIN_MS / 1000} s.`,
  );
  out.push('');
  out.push('| model | GFLOP/img | threads | batch | phoneside e2e | phoneside model | GFLOP/s (% of peak) | PyTorch eager | PyTorch frozen | phoneside / best PyTorch |');
  out.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const r of rows) {
    const p = prepared.find((q) => q.id === r.backbone)!;
    const t = r.torch;
    const gf = r.model * p.gflop;
    const pct = (100 * gf) / peakOf(r.threads);
    const pair = (a: number, b: number): string => `${f1(a)} / ${f1(b)}`;
    const ratio = t ? `${(r.e2e / Math.max(t.e2e, t.frozenE2e)).toFixed(2)}x / ${(r.model / Math.max(t.model, t.frozenModel)).toFixed(2)}x` : '-';
    out.push(
      `| ${r.backbone}${r.precision === 'int8' ? ' int8' : ''} | ${p.gflop.toFixed(2)} | ${r.threads} | ${r.batch} | ${f1(r.e2e)} | ${f1(r.model)} | ${r.precision === 'int8' ? `${f1(gf)} (int8 ops; fp32 peak n/a)` : `${f1(gf)} (${pct.toFixed(0)}%)`} | ` +
        `${t ? pair(t.e2e, t.model) : '-'} | ${t ? pair(t.frozenE2e, t.frozenModel) : '-'} | ${ratio} |`,
    );
  }
  out.push('');
  out.push(
    `- Peak (the % column): ${fma ? `measured with bench/fma_peak.c (12 chains of AVX FMAs on t cores at once): ${THREADS.map((t) => `${f1(fma.get(t)!)} GFLOP/s on ${t} core${t > 1 ? 's' : ''}`).join(', ')}. ` : ''}` +
      `From the CPU flags and clock: ${peak.assumption}${fma ? ` (${THREADS.map((t) => f1(peak.gflops * t)).join(' / ')} GFLOP/s on ${THREADS.join(' / ')} cores; a VM's 'cpu MHz' is often the base clock, not the one the cores run at)` : ''}.`,
  );
  out.push(`- Decode + resize + normalise alone (sharp, libuv threads): ${f1(decodeIps)} images/s.`);
  if (torch) {
    const tm = prepared.map((p) => [p.id, rows.find((r) => r.backbone === p.id)?.torch?.macs] as const).filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${((2 * v!) / 1e9).toFixed(2)}`).join(', ');
    out.push(
      `- PyTorch: torchvision models with random weights and the same head, eval, \`torch.inference_mode()\`, \`torch.set_num_threads\` = threads; *frozen* = \`torch.jit.optimize_for_inference(torch.jit.script(model))\`. ` +
        `GFLOP/img: ${tm}${tm.includes('resnet50') ? " (torchvision's ResNet50 is v1.5: stride 2 in the 3x3, not the 1x1, convolutions)" : ''}. e2e decodes with PIL (JPEG draft mode, bilinear), the next batch on 2 threads during inference.` +
        (PRECISIONS.includes('int8')
          ? ` int8 rows: PyTorch's own static int8 (FX graph mode, default qconfig of the '${torch.info.int8Engine ?? 'none'}' engine, calibrated on 32 of the images; *frozen* = traced and \`torch.jit.freeze\`d).`
          : ''),
    );
  }
  out.push(`- Per setting, rounds alternate phoneside and PyTorch; the best round of each is kept. Load average (1 min): ${loadStart.toFixed(2)} at start, ${loadEnd.toFixed(2)} at end (anything else running on these cores makes the numbers noisy).`);
  const r50 = prepared.find((p) => p.id === 'resnet50');
  if (r50) {
    const best = (rs: Row[] | undefined, key: 'e2e' | 'model' = 'e2e'): Row | undefined => rs?.reduce<Row | undefined>((a, r) => (!a || r[key] > a[key] ? r : a), undefined);
    const b2 = best(rows.filter((r) => r.backbone === 'resnet50' && r.precision === 'fp32' && r.threads === 2));
    const bm2 = best(rows.filter((r) => r.backbone === 'resnet50' && r.precision === 'fp32' && r.threads === 2), 'model') ?? b2!;
    const need = 45 * r50.gflop;
    const peak2 = peakOf(2);
    if (b2) {
      out.push(
        `- Target ResNet50 >= 45 images/s end-to-end on 2 cores: best ${f1(b2.e2e)} (batch ${b2.batch}): ${b2.e2e >= 45 ? 'met' : 'not met'}. ` +
          `45 images/s x ${r50.gflop.toFixed(2)} GFLOP = ${need.toFixed(0)} GFLOP/s of convolutions alone, ${((100 * need) / peak2).toFixed(0)}% of the 2-core fp32 peak (${peak2.toFixed(0)} GFLOP/s)` +
          (need > peak2 ? ': out of reach in fp32 on this CPU at any efficiency, before any time for decoding' : '') +
          `. Decoding shares the same cores: model ${f1(bm2.model)} (best) and decode ${f1(decodeIps)} images/s cap e2e near ${f1(1 / (1 / bm2.model + 1 / decodeIps))} images/s.`,
      );
      const t2 = rows.filter((r) => r.backbone === 'resnet50' && r.precision === 'fp32' && r.threads === 2).map((r) => r.torch).filter((t) => t !== undefined);
      if (t2.length > 0) {
        const eager = Math.max(...t2.map((r) => r.e2e));
        const frozen = Math.max(...t2.map((r) => r.frozenE2e));
        out.push(`- Target faster than PyTorch (ResNet50, e2e, 2 threads, best batch of each): phoneside ${f1(b2.e2e)} vs PyTorch eager ${f1(eager)}, frozen ${f1(frozen)} images/s: ${b2.e2e > Math.max(eager, frozen) ? 'met' : 'not met'}.`);
      }
    }
  }
  // The int8 targets: against PyTorch's frozen fp32 at the same setting (the fp32 row's PyTorch columns).
  for (const [id, floor] of [['resnet50', 50], ['mobilenet_v2_0.35', 0]] as const) {
    const cands = rows.filter((r) => r.backbone === id && r.threads === 2);
    const fp32Torch = (r: Row): TorchRow | undefined => rows.find((f) => f.backbone === id && f.precision === 'fp32' && f.threads === r.threads && f.batch === r.batch)?.torch;
    const best = cands.reduce<(Row & { torch?: TorchRow }) | undefined>((a, r) => (!a || r.e2e > a.e2e ? r : a), undefined);
    const tf = best && fp32Torch(best);
    if (!best || !tf) continue;
    const ratio = best.e2e / tf.frozenE2e;
    out.push(
      `- Target ${id} >= 1.5x PyTorch frozen fp32 e2e${floor ? ` and >= ${floor} images/s` : ''} on 2 cores: best phoneside ${f1(best.e2e)} images/s (${best.precision}, batch ${best.batch}) vs PyTorch frozen fp32 ${f1(tf.frozenE2e)}: ${ratio.toFixed(2)}x, ` +
        `${ratio >= 1.5 && best.e2e >= floor ? 'met' : 'not met'}.`,
    );
  }
  console.log(out.join('\n'));
  if (values.json) {
    const { flags: _flags, ...mach } = m;
    await writeFile(values.json, JSON.stringify({ machine: mach, peak, fmaPeak: fma ? Object.fromEntries(fma) : null, load: [loadStart, loadEnd], decodeIps, torch: torch?.info, rows, prepared: prepared.map((p) => ({ id: p.id, gflop: p.gflop, loadMs: p.loadMs })) }, null, 2));
  }
}

// ---------------------------------------------------------------- experiments

async function experiments(): Promise<void> {
  const threads = Math.max(...THREADS);
  const out: string[] = [`### ONNX Runtime options, ${new Date().toISOString().slice(0, 10)}: ${threads} threads, images/s`, ''];
  for (const name of BACKBONES) {
    const p = await prepare(name);
    const clf = await Classifier.load(p.bundleDir, { threads });
    const bytes = await readFile(clf.source.cachedOnnx!);
    const s = p.pre.size;
    const per = 3 * s * s;
    const nchw = (n: number): number[] => [n, 3, s, s];
    const nhwc = (n: number): number[] => [n, s, s, 3];
    const base: ort.InferenceSession.SessionOptions = { intraOpNumThreads: threads, graphOptimizationLevel: 'all' };
    const noSpin = { session: { intra_op: { allow_spinning: '0' } } };
    const variants: [string, ort.InferenceSession.SessionOptions][] = [
      ['as Classifier (level all, spinning on)', base],
      ['allow_spinning 0', { ...base, extra: noSpin }],
      ['graphOptimizationLevel extended', { ...base, graphOptimizationLevel: 'extended' }],
      ['graphOptimizationLevel basic', { ...base, graphOptimizationLevel: 'basic' }],
      ['graphOptimizationLevel disabled', { ...base, graphOptimizationLevel: 'disabled' }],
      ['enableCpuMemArena false', { ...base, enableCpuMemArena: false }],
      ['enableMemPattern false', { ...base, enableMemPattern: false }],
      ['set_denormal_as_zero', { ...base, extra: { session: { set_denormal_as_zero: '1' } } }],
    ];
    const rawPixels = new Float32Array(files.length * per);
    const rgb = await Promise.all(files.map((f) => loadForModel(f, s, p.pre.resize)));
    rgb.forEach((im, i) => rawPixels.set(im.data, i * per));
    // JS normalisation cost (HWC uint8 -> CHW float, channel order): what the NHWC graph saves.
    const t0 = performance.now();
    const scratch = new Float32Array(per);
    for (let r = 0; r < 5; r++) for (const im of rgb) normalizeToCHW(im.data, p.pre, scratch);
    const normMs = (performance.now() - t0) / (5 * rgb.length);
    out.push(`**${p.id}** (${p.gflop.toFixed(2)} GFLOP/img; JS normaliseToCHW ${normMs.toFixed(2)} ms/img)`, '');
    out.push('| variant | model b1 | model b8 | model b32 | e2e b8 | e2e b32 |', '|---|--:|--:|--:|--:|--:|');
    const decodeNchw = async (f: readonly string[]): Promise<Float32Array> => (await clf.decode(f)).input;
    const decodeRaw = async (f: readonly string[]): Promise<Float32Array> => {
      const x = new Float32Array(f.length * per);
      const ims = await Promise.all(f.map((q) => loadForModel(q, s, p.pre.resize)));
      ims.forEach((im, i) => x.set(im.data, i * per));
      return x;
    };
    const measure = async (label: string, session: ort.InferenceSession, layout: 'NCHW' | 'NHWC', e2e: boolean): Promise<void> => {
      const run = sessionRunner(session, layout === 'NCHW' ? nchw : nhwc);
      const px = layout === 'NCHW' ? p.pixels : rawPixels;
      const cells: string[] = [];
      for (const b of [1, 8, 32]) cells.push(f1(await timeModel(run, px, files.length, per, b)));
      for (const b of [8, 32]) cells.push(e2e ? f1(await timePipelined(files, b, layout === 'NCHW' ? decodeNchw : decodeRaw, run)) : '');
      out.push(`| ${label} | ${cells.join(' | ')} |`);
      log(`  ${p.id} ${label}: ${cells.join(' ')}`);
    };
    for (const [label, opts] of [...variants, ['as Classifier, again (noise check)', base] as [string, ort.InferenceSession.SessionOptions]]) {
      const session = await ort.InferenceSession.create(bytes, opts);
      const e2e = label.startsWith('as Classifier') || label === 'allow_spinning 0';
      await measure(label, session, 'NCHW', e2e);
      await session.release();
    }
    // Input layout: raw NHWC RGB pixels, normalised and transposed inside the graph.
    const nhwcBytes = buildNhwcModel(p.graph, p.pre, 3);
    for (const [label, opts] of [['NHWC raw-pixel input (normalise in graph)', base], ['NHWC raw-pixel input + allow_spinning 0', { ...base, extra: noSpin }]] as [string, ort.InferenceSession.SessionOptions][]) {
      const session = await ort.InferenceSession.create(nhwcBytes, opts);
      if (label.endsWith('graph)')) {
        // Same answers as the product graph?
        const a = (await session.run({ input: new ort.Tensor('float32', rawPixels.subarray(0, 4 * per), nhwc(4)) }))['output']!.data as Float32Array;
        const bRows = await clf.run(asBatch(p.pixels.subarray(0, 4 * per), 4));
        const diff = Math.max(...bRows.flat().map((v, i) => Math.abs(v - a[i]!)));
        log(`  NHWC graph vs product graph: max |dp| = ${diff.toExponential(2)}`);
        if (diff > 1e-3) throw new Error(`NHWC graph disagrees with the product graph by ${diff}`);
      }
      await measure(label, session, 'NHWC', true);
      await session.release();
    }
    await clf.dispose();
    out.push('');
  }
  console.log(out.join('\n'));
}

try {
  if (values.experiments) await experiments();
  else await mainTable();
} finally {
  await rm(work, { recursive: true, force: true });
}
