/**
 * Model references: the package ships trained models under `models/<name>/`: `ensemble` (the
 * default: resnet50 and mobilenet_v2 averaged, the best on sources it never saw), `resnet50` and
 * `mobilenet_v2`. A reference is such a name or a path (bundle, run or ensemble folder, .onnx
 * file); `Classifier.load(ref)` loads one, `modelBackbones(ref)` says which backbones it needs.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { OptionConflictError } from '../options/schema.js';
import { isFile } from '../util/fs.js';
import { readJsonFile } from '../util/json.js';
import { findBundleDir, isEnsembleDir, readEnsemble } from './ensemble.js';
import { packageRoot } from './package.js';

/** Raised when no model is given and the package ships none (the option `model` is then required). */
export class NoDefaultModelError extends OptionConflictError {
  override readonly name = 'NoDefaultModelError';
  constructor(readonly expectedAt: string) {
    super(['model'], ([m]) => `no default model is shipped yet; give one with ${m}`);
  }
}

export const DEFAULT_MODEL = 'ensemble';

/** Where a shipped model lives (a bundle or ensemble folder). */
export function shippedModelPath(name: string, root: string = packageRoot()): string {
  return join(root, 'models', name);
}

/** Where the shipped default model lives. */
export function defaultModelPath(root: string = packageRoot()): string {
  return shippedModelPath(DEFAULT_MODEL, root);
}

/**
 * `model` itself (a path), the shipped model of that name (`resnet50`, `mobilenet_v2`), or the
 * shipped default model; throws NoDefaultModelError if there is none.
 */
export function resolveModelPath(model?: string, root?: string): string {
  if (model !== undefined) {
    if (/^[a-z0-9_.-]+$/i.test(model) && !existsSync(model)) {
      const shipped = shippedModelPath(model, root);
      if (existsSync(join(shipped, 'manifest.json')) || existsSync(join(shipped, 'ensemble.json'))) return shipped;
    }
    return model;
  }
  const p = defaultModelPath(root);
  if (!existsSync(p)) throw new NoDefaultModelError(p);
  return p;
}

/**
 * The ids of the backbones whose ImageNet weights `ref` (as Classifier.load takes it) needs to be
 * assembled: one for a bundle or run folder, each member's (without repeats, in member order) for
 * an ensemble, none for an exported .onnx file (self-contained). Only manifests are read. This is
 * which `env.weightsDir` entries (`PHONESIDE_WEIGHTS_<ID>`) apply to the model.
 */
export async function modelBackbones(ref?: string): Promise<string[]> {
  const path = resolveModelPath(ref);
  if (await isFile(path)) return [];
  if (await isEnsembleDir(path)) return [...new Set((await readEnsemble(path)).members.map((m) => m.manifest.backbone.id))];
  const dir = await findBundleDir(path);
  if (dir === undefined) {
    if (await isFile(join(path, 'model.onnx'))) return [];
    throw new Error(`${path} is not a phoneside model: no manifest.json, ensemble.json or model.onnx in it (nor a shipped model's name)`);
  }
  const manifest = (await readJsonFile(join(dir, 'manifest.json'))) as { backbone?: { id?: unknown } } | null;
  const id = manifest?.backbone?.id;
  if (typeof id !== 'string') throw new Error(`${join(dir, 'manifest.json')} names no backbone (backbone.id)`);
  return [id];
}

/** A model shipped under models/<name>/, as `phoneside models` lists it. */
export interface ShippedModel {
  name: string;
  path: string;
  kind: 'bundle' | 'ensemble';
  isDefault: boolean;
  /** The backbone id, or each member's for an ensemble. */
  backbones: string[];
  tta: boolean;
  thresholds: Record<string, number>;
  /** Group cross-validation figures the model was made with (train/ensemble --from-cv), if any. */
  groupCv: { accuracy: number; macroF1: number; worstGroup: { group: string; accuracy: number; images: number }; folds: number } | null;
}

interface ShippedJson {
  backbone?: { id?: string };
  members?: string[];
  tta?: string;
  thresholds?: Record<string, number>;
  info?: { groupCv?: { pooled?: { accuracy: number; macroF1: number; worstGroup: { group: string; accuracy: number; images: number } }; folds?: unknown[] } };
}

/** The models shipped in the package (read from their manifests; nothing is assembled or loaded). */
export async function listShippedModels(root: string = packageRoot()): Promise<ShippedModel[]> {
  const dir = join(root, 'models');
  const names = (await readdir(dir, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const out: ShippedModel[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const kind = existsSync(join(path, 'ensemble.json')) ? 'ensemble' : existsSync(join(path, 'manifest.json')) ? 'bundle' : undefined;
    if (kind === undefined) continue;
    const json = (await readJsonFile(join(path, kind === 'ensemble' ? 'ensemble.json' : 'manifest.json'))) as ShippedJson;
    const backbones =
      kind === 'ensemble'
        ? await Promise.all((json.members ?? []).map(async (m) => ((await readJsonFile(join(path, m, 'manifest.json'))) as ShippedJson).backbone?.id ?? '?'))
        : [json.backbone?.id ?? '?'];
    const cv = json.info?.groupCv;
    out.push({
      name,
      path,
      kind,
      isDefault: name === DEFAULT_MODEL,
      backbones,
      tta: json.tta === 'hflip',
      thresholds: json.thresholds ?? {},
      groupCv: cv?.pooled ? { accuracy: cv.pooled.accuracy, macroF1: cv.pooled.macroF1, worstGroup: cv.pooled.worstGroup, folds: cv.folds?.length ?? 0 } : null,
    });
  }
  return out;
}
