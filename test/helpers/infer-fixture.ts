/**
 * Shared by the predict and export tests: a small MobileNetV2 bundle made without training (and
 * without tfjs): the real ImageNet trunk cut at its feature layer, plus a seeded random head
 * GAP -> dense(8) -> batchNorm -> PReLU -> dense(3), small enough that probabilities are not
 * saturated, so comparisons between code paths mean something. `backbone: 'resnet50'` makes the
 * same on ResNet50 (its weights come with npm ci, so it needs no ../shared data). The real
 * photos to classify and `haveData` are in ./paths.ts.
 */
import { inferShapes, type GraphNode } from '../../src/backbones/graph.js';
import { loadBackbone } from '../../src/backbones/load.js';
import { getBackbone } from '../../src/backbones/registry.js';
import { env, type PhonesideEnv } from '../../src/env.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, saveBundle, type BundleManifest } from '../../src/model/bundle.js';
import { createRng } from '../../src/util/rng.js';
import { patchEnv } from './env.js';
import { MOBILENET } from './paths.js';

export const CLASSES = ['back', 'front', 'none'];

/** The library's `env` with ../shared's MobileNetV2 weights in `weightsDir` (what `--weights mobilenet_v2_0.35=DIR` sets). */
export function envWithMobilenet(): PhonesideEnv {
  return { ...env, weightsDir: { ...env.weightsDir, 'mobilenet_v2_0.35': MOBILENET } };
}

/**
 * Points the process-wide `env.weightsDir` at ../shared's MobileNetV2 weights, so that models on
 * that backbone load without a download; returns the function that undoes it (see patchEnv).
 */
export function useSharedMobilenet(): () => void {
  return patchEnv({ weightsDir: { ...env.weightsDir, 'mobilenet_v2_0.35': MOBILENET } });
}

export interface FixtureOptions {
  /** Default mobilenet_v2 (weights from ../shared). */
  backbone?: 'mobilenet_v2' | 'resnet50';
  temperature?: number;
  thresholds?: Record<string, number>;
  seed?: number;
}

/** Writes the bundle to `dir` (manifest.json + weights.bin); returns `dir`. */
export async function makeBundle(dir: string, opts: FixtureOptions = {}): Promise<string> {
  const spec = getBackbone(opts.backbone ?? 'mobilenet_v2');
  const backbone = await loadBackbone(spec, spec.family === 'mobilenet_v2' ? { env: envWithMobilenet() } : {});
  const cut = spec.featureLayer;
  const cutShape = inferShapes(backbone.graph).get(cut) as [number, number, number];
  const rng = createRng(opts.seed ?? 11);
  const t = (shape: number[], lo: number, hi: number): { shape: number[]; data: Float32Array } => {
    const n = shape.reduce((a, b) => a * b, 1);
    return { shape, data: Float32Array.from({ length: n }, () => rng.uniform(lo, hi)) };
  };
  const c = cutShape[2];
  // Keep the logits' spread similar whatever the width of the features.
  const k = 0.1 * Math.sqrt(1280 / c);
  const nodes: GraphNode[] = [
    { name: cut, op: { kind: 'input', shape: cutShape }, inputs: [], weights: {} },
    { name: 'head_gap', op: { kind: 'globalAvgPool' }, inputs: [cut], weights: {} },
    { name: 'head_fc1', op: { kind: 'dense', units: 8, useBias: true, activation: 'linear' }, inputs: ['head_gap'], weights: { kernel: t([c, 8], -k, k), bias: t([8], -0.1, 0.1) } },
    {
      name: 'head_bn1', op: { kind: 'batchNorm', epsilon: 1e-3 }, inputs: ['head_fc1'],
      weights: { gamma: t([8], 0.8, 1.2), beta: t([8], -0.1, 0.1), moving_mean: t([8], -0.2, 0.2), moving_variance: t([8], 0.5, 1.5) },
    },
    { name: 'head_prelu1', op: { kind: 'prelu' }, inputs: ['head_bn1'], weights: { alpha: t([8], 0.1, 0.3) } },
    { name: 'head_logits', op: { kind: 'dense', units: 3, useBias: true, activation: 'linear' }, inputs: ['head_prelu1'], weights: { kernel: t([8, 3], -0.8, 0.8), bias: t([3], -0.1, 0.1) } },
  ];
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT, version: BUNDLE_VERSION, createdAt: '2024-01-02T03:04:05.000Z',
    backbone: { id: spec.id, family: spec.family, weightsSha256: backbone.weightsSha256, weightsSource: 'test', cut },
    preprocessing: spec.preprocessing, classes: CLASSES, topBlocks: 0, head: { units: [8], dropout: 0 },
    temperature: opts.temperature ?? 1, info: {},
  };
  // `thresholds` is an optional manifest field that the bundle type does not declare.
  const withThresholds = opts.thresholds ? Object.assign(manifest, { thresholds: opts.thresholds }) : manifest;
  await saveBundle(dir, { manifest: withThresholds, graph: { nodes, input: cut, output: 'head_logits' } });
  return dir;
}
