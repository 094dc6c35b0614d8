/**
 * The metadata phoneside writes into an exported classifier's ONNX `metadata_props`, and a reader
 * for it. ONNX Runtime's JS API does not expose `metadata_props`, so the file's top-level
 * protobuf fields are walked directly with positional reads: the (large) graph field is skipped
 * by its length prefix and never read, so reading metadata costs a few small reads, not a parse.
 */
import { open } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import type { Preprocessing, ResizePolicy } from '../backbones/registry.js';
import { parseTta, type TtaMode } from '../model/bundle.js';

const { onnx } = onnxProto;

/** Bumped when the meaning of the metadata (or the input/output contract) changes. */
export const ONNX_FORMAT_VERSION = 1;

/** Everything needed to run an exported classifier without its bundle. */
export interface ClassifierInfo {
  classes: string[];
  preprocessing: Preprocessing;
  /** Softmax temperature; already folded into the graph (recorded for model cards). */
  temperature: number;
  /** Per-class minimum confidence (top probability) below which the answer is "uncertain". */
  thresholds: Record<string, number>;
  /**
   * For a single model: its backbone. For an ensemble: id `ensemble(<member ids joined by +>)`
   * and a sha256 over the members' backbone ids and weights digests.
   */
  backbone: { id: string; weightsSha256: string };
  /** When the ONNX file (or the bundle, for bundles) was made, ISO 8601. */
  createdAt: string;
  /**
   * Test-time augmentation done inside the graph (absent = none): 'hflip' = softmax of the mean of
   * the logits of the image and of its mirror image, divided by the temperature. The input
   * contract is unchanged: one image per row.
   */
  tta?: TtaMode;
  /**
   * Present for an ensemble: its members, whose temperature-scaled probabilities the graph
   * averages. The ensemble's own `temperature` is then 1 (each member applies its own).
   */
  ensemble?: { members: EnsembleMemberInfo[] };
  /**
   * 'int8' for a statically quantized graph (QDQ int8 weights and activations, see
   * infer/quantize.ts); absent = fp32. The input and output stay float32.
   */
  precision?: 'int8';
}

/** One member of an ensemble, as recorded in ClassifierInfo and the ONNX metadata. */
export interface EnsembleMemberInfo {
  /** The member's folder name inside the ensemble. */
  name: string;
  backbone: { id: string; weightsSha256: string };
  temperature: number;
  /** The member's own preprocessing, applied inside the graph to the ensemble's raw pixels. */
  preprocessing: Preprocessing;
}

/** `preprocessing` as written to metadata: the Preprocessing fields plus the tensor contract. */
interface PreprocessingMeta extends Preprocessing {
  layout: 'NCHW';
  dtype: 'float32';
  formula: string;
}

export function classifierMetadata(info: ClassifierInfo): Record<string, string> {
  const p = info.preprocessing;
  const pre: PreprocessingMeta = {
    size: p.size,
    channelOrder: p.channelOrder,
    mean: p.mean,
    std: p.std,
    resize: p.resize,
    layout: 'NCHW',
    dtype: 'float32',
    formula: `decode as 8-bit sRGB, resize to size x size (${p.resize}), order channels ${p.channelOrder}, x = (pixel - mean) / std`,
  };
  return {
    'phoneside.format_version': String(ONNX_FORMAT_VERSION),
    classes: JSON.stringify(info.classes),
    preprocessing: JSON.stringify(pre),
    temperature: String(info.temperature),
    thresholds: JSON.stringify(info.thresholds),
    backbone: JSON.stringify({ id: info.backbone.id, weightsSha256: info.backbone.weightsSha256 }),
    created_at: info.createdAt,
    // Written only when used, so that files without them read exactly as before.
    ...(info.tta !== undefined ? { tta: info.tta } : {}),
    ...(info.ensemble !== undefined ? { ensemble: JSON.stringify(info.ensemble) } : {}),
    ...(info.precision !== undefined ? { precision: info.precision } : {}),
  };
}

const RESIZE: readonly ResizePolicy[] = ['squash', 'center-crop', 'pad'];

function isTriple(v: unknown): v is [number, number, number] {
  return Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
}

function isPreprocessing(p: unknown): p is Preprocessing {
  const o = p as Partial<Preprocessing> | null;
  return (
    typeof o === 'object' && o !== null && Number.isInteger(o.size) && (o.size as number) > 0 &&
    (o.channelOrder === 'RGB' || o.channelOrder === 'BGR') && isTriple(o.mean) && isTriple(o.std) && RESIZE.includes(o.resize as ResizePolicy)
  );
}

function parseEnsembleMeta(v: unknown, where: string): { members: EnsembleMemberInfo[] } {
  const members = (v as { members?: unknown } | null)?.members;
  const ok =
    Array.isArray(members) && members.length > 0 &&
    members.every((m: unknown) => {
      const o = m as Partial<EnsembleMemberInfo> | null;
      return (
        typeof o === 'object' && o !== null && typeof o.name === 'string' && typeof o.temperature === 'number' &&
        typeof o.backbone?.id === 'string' && typeof o.backbone.weightsSha256 === 'string' && isPreprocessing(o.preprocessing)
      );
    });
  if (!ok) throw new Error(`${where}: metadata 'ensemble' is incomplete or invalid`);
  return {
    members: (members as EnsembleMemberInfo[]).map((m) => ({
      name: m.name,
      backbone: { id: m.backbone.id, weightsSha256: m.backbone.weightsSha256 },
      temperature: m.temperature,
      preprocessing: { size: m.preprocessing.size, channelOrder: m.preprocessing.channelOrder, mean: m.preprocessing.mean, std: m.preprocessing.std, resize: m.preprocessing.resize },
    })),
  };
}

/** Validates a thresholds object (class -> probability in [0, 1]); `where` names it in errors. */
export function parseThresholds(v: unknown, where: string): Record<string, number> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}: thresholds must be an object of class -> probability`);
  const out: Record<string, number> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x !== 'number' || !(x >= 0 && x <= 1)) throw new Error(`${where}: threshold for '${k}' must be a number in [0, 1]`);
    out[k] = x;
  }
  return out;
}

/** Metadata -> ClassifierInfo, with errors that say which file and field is wrong. */
export function parseClassifierMetadata(meta: Record<string, string>, where: string): ClassifierInfo {
  const version = meta['phoneside.format_version'];
  if (version === undefined) throw new Error(`${where} is not a phoneside classifier (no phoneside.format_version metadata); make one with 'phoneside export'`);
  if (!(Number(version) <= ONNX_FORMAT_VERSION)) {
    throw new Error(`${where}: format version ${version} is newer than this phoneside supports (${ONNX_FORMAT_VERSION})`);
  }
  const json = (key: string): unknown => {
    const s = meta[key];
    if (s === undefined) throw new Error(`${where}: metadata '${key}' is missing`);
    try {
      return JSON.parse(s);
    } catch {
      throw new Error(`${where}: metadata '${key}' is not valid JSON`);
    }
  };
  const classes = json('classes');
  if (!Array.isArray(classes) || classes.length < 2 || !classes.every((c) => typeof c === 'string')) {
    throw new Error(`${where}: metadata 'classes' must be an array of at least two names`);
  }
  const p = json('preprocessing') as Partial<PreprocessingMeta>;
  if (
    typeof p !== 'object' || p === null || !Number.isInteger(p.size) || (p.size as number) <= 0 ||
    (p.channelOrder !== 'RGB' && p.channelOrder !== 'BGR') || !isTriple(p.mean) || !isTriple(p.std) ||
    !RESIZE.includes(p.resize as ResizePolicy) || (p.layout !== undefined && p.layout !== 'NCHW')
  ) {
    throw new Error(`${where}: metadata 'preprocessing' is incomplete or invalid`);
  }
  const b = (meta['backbone'] !== undefined ? json('backbone') : {}) as { id?: unknown; weightsSha256?: unknown };
  const temperature = meta['temperature'] !== undefined ? Number(meta['temperature']) : 1;
  const tta = parseTta(meta['tta'], `${where}: metadata`);
  const ensemble = meta['ensemble'] !== undefined ? parseEnsembleMeta(json('ensemble'), where) : undefined;
  const precision = meta['precision'];
  if (precision !== undefined && precision !== 'int8' && precision !== 'fp32') throw new Error(`${where}: metadata 'precision' must be int8 or fp32, not '${precision}'`);
  return {
    classes: classes as string[],
    preprocessing: { size: p.size!, channelOrder: p.channelOrder, mean: p.mean, std: p.std, resize: p.resize! },
    temperature: Number.isFinite(temperature) ? temperature : 1,
    thresholds: meta['thresholds'] !== undefined ? parseThresholds(json('thresholds'), where) : {},
    backbone: { id: typeof b.id === 'string' ? b.id : 'unknown', weightsSha256: typeof b.weightsSha256 === 'string' ? b.weightsSha256 : '' },
    createdAt: meta['created_at'] ?? '',
    ...(tta !== undefined ? { tta } : {}),
    ...(ensemble !== undefined ? { ensemble } : {}),
    ...(precision === 'int8' ? { precision } : {}),
  };
}

/** A protobuf varint at `at`: [value, bytes used]; Number arithmetic so values above 2^31 work. */
function varint(buf: Uint8Array, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10 && at + i < buf.length; i++) {
    const byte = buf[at + i]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, i + 1];
    scale *= 128;
  }
  throw new Error('truncated varint');
}

const GRAPH_FIELD = 7; // ModelProto.graph
const METADATA_PROPS_FIELD = 14; // ModelProto.metadata_props

/** The `metadata_props` of an ONNX file as key -> value (later duplicates win). */
export async function readOnnxMetadata(path: string): Promise<Record<string, string>> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const readAt = async (pos: number, n: number): Promise<Uint8Array> => {
      const buf = Buffer.alloc(n);
      const { bytesRead } = await fh.read(buf, 0, n, pos);
      return buf.subarray(0, bytesRead);
    };
    const meta: Record<string, string> = {};
    const bad = (): Error => new Error(`${path} is not an ONNX model (unreadable protobuf)`);
    let pos = 0;
    let sawGraph = false;
    while (pos < size) {
      // A field header is at most a 5-byte tag plus a 10-byte length.
      const head = await readAt(pos, 16);
      let tag: number;
      let n: number;
      try {
        [tag, n] = varint(head, 0);
      } catch {
        throw bad();
      }
      const field = Math.floor(tag / 8);
      const wire = tag % 8;
      if (field === 0) throw bad();
      if (wire === 0) {
        try {
          pos += n + varint(head, n)[1];
        } catch {
          throw bad();
        }
      } else if (wire === 1) pos += n + 8;
      else if (wire === 5) pos += n + 4;
      else if (wire === 2) {
        let len: number;
        let m: number;
        try {
          [len, m] = varint(head, n);
        } catch {
          throw bad();
        }
        const start = pos + n + m;
        if (start + len > size) throw bad();
        if (field === GRAPH_FIELD) sawGraph = true;
        if (field === METADATA_PROPS_FIELD) {
          const entry = onnx.StringStringEntryProto.decode(await readAt(start, len));
          meta[entry.key] = entry.value;
        }
        pos = start + len;
      } else throw bad();
    }
    if (!sawGraph) throw bad();
    return meta;
  } finally {
    await fh.close();
  }
}
