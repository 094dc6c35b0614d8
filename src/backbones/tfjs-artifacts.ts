/**
 * Reads TensorFlow.js *layers* model artifacts (`model.json` + binary weight shards) without
 * tfjs: the topology comes back as parsed JSON and every weight as a float32 tensor.
 *
 * Shard format (tfjs-core io): each manifest group is a list of shard files that, concatenated,
 * hold the group's weights back to back in manifest order, little-endian, with no padding.
 */
import { open, readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { WeightTensor } from './graph.js';

export type QuantizationDtype = 'uint8' | 'uint16' | 'float16';

/** tfjs converter weight quantisation: stored ints map back by `q * scale + min`; float16 is cast. */
export interface TfjsQuantization {
  dtype: QuantizationDtype;
  scale?: number;
  min?: number;
  original_dtype?: string;
}

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: TfjsQuantization;
}

export interface TfjsWeightsGroup {
  paths: string[];
  weights: TfjsWeightSpec[];
}

export interface TfjsModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: unknown;
  weightsManifest: TfjsWeightsGroup[];
}

export interface TfjsLayersModel {
  /** The `modelTopology` object of model.json, as parsed JSON. */
  topology: unknown;
  /** Every weight by its manifest name (e.g. `Conv1/kernel`), in manifest order; each owns its buffer. */
  weights: Map<string, WeightTensor>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses and validates a layers-model `model.json`; `source` names it in error messages. */
export function parseTfjsModelJson(text: string, source: string): TfjsModelJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isRecord(json)) throw new Error(`${source}: expected a JSON object`);
  if (!isRecord(json['modelTopology'])) {
    throw new Error(`${source} has no modelTopology: not a TensorFlow.js layers model`);
  }
  const manifest = json['weightsManifest'];
  if (!Array.isArray(manifest)) throw new Error(`${source} has no weightsManifest array`);
  const groups: TfjsWeightsGroup[] = manifest.map((g: unknown, gi: number) => {
    if (!isRecord(g) || !Array.isArray(g['paths']) || !Array.isArray(g['weights'])) {
      throw new Error(`${source}: weightsManifest[${gi}] needs 'paths' and 'weights' arrays`);
    }
    const paths = g['paths'].map((p: unknown) => {
      if (typeof p !== 'string' || p === '') throw new Error(`${source}: weightsManifest[${gi}].paths holds a non-string`);
      return p;
    });
    const weights = g['weights'].map((w: unknown, wi: number): TfjsWeightSpec => {
      const where = `${source}: weightsManifest[${gi}].weights[${wi}]`;
      if (!isRecord(w) || typeof w['name'] !== 'string' || typeof w['dtype'] !== 'string' || !Array.isArray(w['shape'])) {
        throw new Error(`${where} needs name, shape and dtype`);
      }
      const shape = w['shape'].map((d: unknown) => {
        if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) throw new Error(`${where} (${w['name']}) has a bad shape`);
        return d;
      });
      const spec: TfjsWeightSpec = { name: w['name'], shape, dtype: w['dtype'] };
      const q = w['quantization'];
      if (q !== undefined && q !== null) {
        if (!isRecord(q) || (q['dtype'] !== 'uint8' && q['dtype'] !== 'uint16' && q['dtype'] !== 'float16')) {
          throw new Error(`${where} (${spec.name}) has an unsupported quantization ${JSON.stringify(q)}`);
        }
        spec.quantization = {
          dtype: q['dtype'],
          ...(typeof q['scale'] === 'number' ? { scale: q['scale'] } : {}),
          ...(typeof q['min'] === 'number' ? { min: q['min'] } : {}),
          ...(typeof q['original_dtype'] === 'string' ? { original_dtype: q['original_dtype'] } : {}),
        };
      }
      return spec;
    });
    return { paths, weights };
  });
  return {
    ...(typeof json['format'] === 'string' ? { format: json['format'] } : {}),
    ...(typeof json['generatedBy'] === 'string' ? { generatedBy: json['generatedBy'] } : {}),
    modelTopology: json['modelTopology'],
    weightsManifest: groups,
  };
}

/** All shard paths of a manifest (relative to model.json), in order. */
export function manifestShardPaths(model: TfjsModelJson): string[] {
  return model.weightsManifest.flatMap((g) => g.paths);
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const STORED_BYTES: Record<string, number> = { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2 };

/** Bytes one weight occupies in its shard group. */
export function weightByteLength(spec: TfjsWeightSpec): number {
  const stored = spec.quantization?.dtype ?? spec.dtype;
  const size = STORED_BYTES[stored];
  if (size === undefined || (spec.quantization === undefined && spec.dtype !== 'float32' && spec.dtype !== 'int32')) {
    throw new Error(`weight ${spec.name}: dtype ${stored} is not supported (float32, int32, or quantized uint8/uint16/float16)`);
  }
  return numel(spec.shape) * size;
}

/** Bytes the whole manifest occupies across all shards (used for download progress and checks). */
export function manifestByteLength(model: TfjsModelJson): number {
  let total = 0;
  for (const g of model.weightsManifest) for (const w of g.weights) total += weightByteLength(w);
  return total;
}

/** Reads the shards of one group straight into a single buffer (no per-shard concat copy). */
async function readGroup(dir: string, group: TfjsWeightsGroup, gi: number, modelJsonPath: string): Promise<ArrayBuffer> {
  const files = group.paths.map((p) => resolve(dir, p));
  const sizes: number[] = [];
  for (let i = 0; i < files.length; i++) {
    try {
      sizes.push((await stat(files[i]!)).size);
    } catch {
      throw new Error(`weight shard '${group.paths[i]}' listed in ${modelJsonPath} is missing (expected at ${files[i]})`);
    }
  }
  const needed = group.weights.reduce((a, w) => a + weightByteLength(w), 0);
  const have = sizes.reduce((a, b) => a + b, 0);
  if (have < needed) {
    const list = group.paths.map((p, i) => `${p}: ${sizes[i]} B`).join(', ');
    throw new Error(
      `weight shards of ${modelJsonPath} (group ${gi}) are too short: the manifest needs ${needed} bytes but the ` +
        `shards hold ${have} (${list}); a shard is truncated or from another model`,
    );
  }
  const buf = new ArrayBuffer(needed);
  const bytes = new Uint8Array(buf);
  let off = 0;
  for (let i = 0; i < files.length && off < needed; i++) {
    const fh = await open(files[i]!, 'r');
    try {
      const want = Math.min(sizes[i]!, needed - off);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(bytes, off + got, want - got, got);
        if (bytesRead === 0) throw new Error(`weight shard ${files[i]} ended after ${got} of ${want} bytes while being read`);
        got += bytesRead;
      }
      off += want;
    } finally {
      await fh.close();
    }
  }
  return buf;
}

/** Decodes an IEEE half float. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Typed-array views need aligned offsets; quantized uint8 weights can leave the next weight
 * misaligned, in which case its bytes are copied out first. Shards are little-endian, like every
 * platform Node runs on in practice.
 */
function decodeWeight(buf: ArrayBuffer, offset: number, spec: TfjsWeightSpec): Float32Array {
  const n = numel(spec.shape);
  const q = spec.quantization;
  const aligned = <T>(bytesPer: number, make: (b: ArrayBuffer, o: number, len: number) => T): T =>
    offset % bytesPer === 0 ? make(buf, offset, n) : make(buf.slice(offset, offset + n * bytesPer), 0, n);
  if (q === undefined) {
    if (spec.dtype === 'float32') {
      // One memcpy per weight: each tensor owns its memory, so keeping a few weights alive
      // doesn't pin the whole (up to ~100 MB) shard buffer.
      return aligned(4, (b, o, len) => new Float32Array(b, o, len)).slice();
    }
    return Float32Array.from(aligned(4, (b, o, len) => new Int32Array(b, o, len)));
  }
  const out = new Float32Array(n);
  if (q.dtype === 'float16') {
    const src = aligned(2, (b, o, len) => new Uint16Array(b, o, len));
    for (let i = 0; i < n; i++) out[i] = halfToFloat(src[i]!);
    return out;
  }
  if (q.scale === undefined || q.min === undefined) {
    throw new Error(`weight ${spec.name}: ${q.dtype} quantization needs 'scale' and 'min'`);
  }
  const src = q.dtype === 'uint8' ? new Uint8Array(buf, offset, n) : aligned(2, (b, o, len) => new Uint16Array(b, o, len));
  const { scale, min } = q;
  for (let i = 0; i < n; i++) out[i] = src[i]! * scale + min;
  return out;
}

/** Reads a tfjs layers model: topology as JSON and all weights as float32, in manifest order. */
export async function readTfjsLayersModel(modelJsonPath: string): Promise<TfjsLayersModel> {
  const path = resolve(modelJsonPath);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  const model = parseTfjsModelJson(text, path);
  const dir = dirname(path);
  const weights = new Map<string, WeightTensor>();
  for (let gi = 0; gi < model.weightsManifest.length; gi++) {
    const group = model.weightsManifest[gi]!;
    const buf = await readGroup(dir, group, gi, path);
    let offset = 0;
    for (const spec of group.weights) {
      if (weights.has(spec.name)) throw new Error(`${path}: weight name '${spec.name}' appears twice in the manifest`);
      weights.set(spec.name, { shape: [...spec.shape], data: decodeWeight(buf, offset, spec) });
      offset += weightByteLength(spec);
    }
  }
  return { topology: model.modelTopology, weights };
}
