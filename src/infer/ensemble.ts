/**
 * Ensembles: several trained bundles run as ONE classifier (one ONNX graph) whose answer is the
 * mean of the members' class probabilities. On disk an ensemble is a folder holding
 * `ensemble.json` and (usually) copies of its member bundles:
 *
 *   ensemble.json  { format: 'phoneside-ensemble', version: 1, members: ['resnet50', 'mobilenet_v2'],
 *                    classes: [...], thresholds?: {class: p}, tta?: 'hflip', createdAt?, info?: {...} }
 *   resnet50/      a bundle folder (manifest.json + weights.bin), paths relative to ensemble.json
 *   mobilenet_v2/
 *
 * Members must have the same classes in the same order, the same input size and resize policy;
 * each keeps its own normalisation, channel order and temperature (applied inside the graph).
 * The ensemble's own `thresholds` and `tta` apply, not the members'.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { rawPixelPreprocessing } from '../model/assemble.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, checkTemperature, parseTta, verifyWeightsDigest, type BundleManifest, type TtaMode } from '../model/bundle.js';
import { parseJsonText } from '../util/json.js';
import { warnDeprecated } from '../util/deprecate.js';
import { isFile, writeFileAtomic } from '../util/fs.js';
import { ENSEMBLE, type EnsembleInput } from '../options/infer.js';
import { OptionConflictError, resolveOptions } from '../options/schema.js';
import { parseThresholds, type ClassifierInfo } from './onnx-meta.js';

export const ENSEMBLE_FORMAT = 'phoneside-ensemble';
export const ENSEMBLE_VERSION = 1;
export const ENSEMBLE_FILE = 'ensemble.json';

export interface EnsembleManifest {
  format: typeof ENSEMBLE_FORMAT;
  version: number;
  /** Member bundle folders (or run folders holding model/), relative to the ensemble's folder. */
  members: string[];
  /** Must equal every member's classes, in the same order. */
  classes: string[];
  /** Per-class minimum confidence of the ensemble's answer (the members' own are not used). */
  thresholds?: Record<string, number>;
  /** Test-time augmentation for every member (the members' own `tta` is not used). */
  tta?: TtaMode;
  /** When the ensemble was made, ISO 8601 (its model version's date). */
  createdAt?: string;
  /** Free-form figures for model cards (e.g. `validation: { accuracy, macroF1, ... }`). */
  info?: Record<string, unknown>;
}

/** One member as found on disk (its manifest read, its weights not). */
export interface EnsembleMemberRef {
  /** As written in ensemble.json. */
  path: string;
  /** Its folder name, made unique within the ensemble: used in layer names and messages. */
  name: string;
  /** The folder holding its manifest.json and weights.bin. */
  dir: string;
  /** Its manifest without the graph. */
  manifest: BundleManifest;
}

export interface EnsembleDescription {
  dir: string;
  manifest: EnsembleManifest;
  members: EnsembleMemberRef[];
}

/** Whether `dir` is an ensemble folder (holds ensemble.json). */
export function isEnsembleDir(dir: string): Promise<boolean> {
  return isFile(join(dir, ENSEMBLE_FILE));
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates the fields of an ensemble.json (not its members); `where` names the file in errors. */
export function parseEnsembleManifest(raw: unknown, where: string): EnsembleManifest {
  if (!isObject(raw)) throw new Error(`${where} is not a JSON object`);
  if (raw['format'] !== ENSEMBLE_FORMAT) {
    throw new Error(`${where} is not a phoneside ensemble: format is ${JSON.stringify(raw['format'])}, expected '${ENSEMBLE_FORMAT}'`);
  }
  const version = raw['version'];
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) throw new Error(`${where}: version must be a positive integer, got ${JSON.stringify(version)}`);
  if (version > ENSEMBLE_VERSION) throw new Error(`${where}: ensemble version ${version} is newer than this phoneside supports (${ENSEMBLE_VERSION})`);
  const members = raw['members'];
  if (!Array.isArray(members) || members.length === 0 || !members.every((m) => typeof m === 'string' && m !== '')) {
    throw new Error(`${where}: members must be a non-empty array of member folder paths`);
  }
  const classes = raw['classes'];
  if (!Array.isArray(classes) || classes.length < 2 || !classes.every((c) => typeof c === 'string')) {
    throw new Error(`${where}: classes must be an array of at least two class names`);
  }
  const thresholds = parseThresholds(raw['thresholds'], where);
  for (const k of Object.keys(thresholds)) {
    if (!classes.includes(k)) throw new Error(`${where}: threshold for unknown class '${k}' (classes: ${classes.join(', ')})`);
  }
  const tta = parseTta(raw['tta'], where);
  const createdAt = raw['createdAt'];
  if (createdAt !== undefined && typeof createdAt !== 'string') throw new Error(`${where}: createdAt must be an ISO 8601 string`);
  const info = raw['info'];
  if (info !== undefined && !isObject(info)) throw new Error(`${where}: info must be an object`);
  return {
    format: ENSEMBLE_FORMAT,
    version,
    members: members as string[],
    classes: classes as string[],
    ...(raw['thresholds'] !== undefined && raw['thresholds'] !== null ? { thresholds } : {}),
    ...(tta !== undefined ? { tta } : {}),
    ...(createdAt !== undefined ? { createdAt } : {}),
    ...(info !== undefined ? { info } : {}),
  };
}

/** The folder holding a model's manifest.json: `dir` itself or its `model/`; undefined if neither. */
export async function findBundleDir(dir: string): Promise<string | undefined> {
  if (await isFile(join(dir, 'manifest.json'))) return dir;
  if (await isFile(join(dir, 'model', 'manifest.json'))) return join(dir, 'model');
  return undefined;
}

/** A member's display name: its folder's name (the run's, for a run/model/ folder). */
function folderName(path: string): string {
  const abs = resolve(path);
  const base = basename(abs);
  return base === 'model' ? basename(dirname(abs)) : base;
}

/** Unique names: 'a', 'b', 'a' -> 'a', 'b', 'a_2'. */
function uniqueNames(names: readonly string[]): string[] {
  const seen = new Set<string>();
  return names.map((n) => {
    let name = n;
    for (let k = 2; seen.has(name); k++) name = `${n}_${k}`;
    seen.add(name);
    return name;
  });
}

/** Reads and checks a member bundle's manifest (not its weights); `what` names it in errors. */
async function readMemberManifest(dir: string, what: string): Promise<BundleManifest> {
  const file = join(dir, 'manifest.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`${what}: ${file} is not readable JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const m = raw as Partial<BundleManifest> & { graph?: unknown };
  if (!isObject(raw) || m.format !== BUNDLE_FORMAT) throw new Error(`${what}: ${file} is not a phoneside bundle manifest`);
  if (typeof m.version !== 'number' || m.version > BUNDLE_VERSION) throw new Error(`${what}: bundle version ${String(m.version)} is not supported (${BUNDLE_VERSION})`);
  if (!Array.isArray(m.classes) || typeof m.preprocessing !== 'object' || typeof m.backbone !== 'object' || typeof m.temperature !== 'number') {
    throw new Error(`${what}: ${file} is incomplete (classes, preprocessing, backbone, temperature)`);
  }
  checkTemperature(m.temperature, `${what}: ${file}`);
  const { graph: _graph, ...manifest } = m;
  return manifest as BundleManifest;
}

/**
 * Checks that bundles can form an ensemble: same classes in the same order as `classes`, one
 * input size and resize policy.
 */
export function checkEnsembleMembers(members: readonly Pick<EnsembleMemberRef, 'name' | 'manifest'>[], classes: readonly string[], where: string): void {
  const first = members[0]!;
  const p0 = first.manifest.preprocessing;
  for (const m of members) {
    if (m.manifest.classes.join('\0') !== classes.join('\0')) {
      throw new Error(
        `${where}: member '${m.name}' has classes ${m.manifest.classes.join(', ')} but the ensemble's are ${classes.join(', ')}; ` +
          `members must have the same classes in the same order`,
      );
    }
    const p = m.manifest.preprocessing;
    if (p.size !== p0.size || p.resize !== p0.resize) {
      throw new Error(
        `${where}: member '${m.name}' takes ${p.size}x${p.size} images (${p.resize}) but '${first.name}' takes ${p0.size}x${p0.size} (${p0.resize}); ` +
          `members must share one input size and resize policy`,
      );
    }
  }
}

/** Reads an ensemble folder: ensemble.json and its members' manifests, all checked. */
export async function readEnsemble(dir: string): Promise<EnsembleDescription> {
  const file = join(dir, ENSEMBLE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new Error(`${dir} is not a phoneside ensemble: no ${ENSEMBLE_FILE} in it`);
  }
  const manifest = parseEnsembleManifest(parseJsonText(text, file), file);
  const names = uniqueNames(manifest.members.map(folderName));
  const members: EnsembleMemberRef[] = [];
  for (const [i, path] of manifest.members.entries()) {
    const abs = isAbsolute(path) ? path : join(dir, path);
    const what = `${file}: member '${path}'`;
    if (await isEnsembleDir(abs)) throw new Error(`${what} is itself an ensemble; list its members instead`);
    const bundleDir = await findBundleDir(abs);
    if (bundleDir === undefined) throw new Error(`${what} is missing: ${abs} holds no manifest.json (nor model/manifest.json)`);
    if (!(await isFile(join(bundleDir, 'weights.bin')))) throw new Error(`${what} is incomplete: ${bundleDir} has no weights.bin`);
    members.push({ path, name: names[i]!, dir: bundleDir, manifest: await readMemberManifest(bundleDir, what) });
  }
  checkEnsembleMembers(members, manifest.classes, file);
  return { dir, manifest, members };
}

/** sha256 over the members' backbone ids and weights digests: identifies the frozen weights an ensemble needs. */
export function ensembleBackbone(members: readonly { manifest: BundleManifest }[]): { id: string; weightsSha256: string } {
  const ids = members.map((m) => m.manifest.backbone.id);
  const digest = createHash('sha256')
    .update(members.map((m) => `${m.manifest.backbone.id}:${m.manifest.backbone.weightsSha256}`).join('\n'))
    .digest('hex');
  return { id: `ensemble(${ids.join('+')})`, weightsSha256: digest };
}

/** The ClassifierInfo of an ensemble (input: raw RGB pixels; the members normalise them in the graph). */
export function ensembleInfo(e: EnsembleDescription, tta: TtaMode | undefined): ClassifierInfo {
  const p0 = e.members[0]!.manifest.preprocessing;
  return {
    classes: [...e.manifest.classes],
    preprocessing: rawPixelPreprocessing(p0.size, p0.resize),
    temperature: 1,
    thresholds: { ...(e.manifest.thresholds ?? {}) },
    backbone: ensembleBackbone(e.members),
    createdAt: e.manifest.createdAt ?? '',
    ...(tta !== undefined ? { tta } : {}),
    ensemble: {
      members: e.members.map((m) => ({
        name: m.name,
        backbone: { id: m.manifest.backbone.id, weightsSha256: m.manifest.backbone.weightsSha256 },
        temperature: m.manifest.temperature,
        preprocessing: m.manifest.preprocessing,
      })),
    },
  };
}

/** The files whose bytes decide an ensemble's answers: ensemble.json, then each member's manifest and weights. */
export function ensembleFiles(e: EnsembleDescription): string[] {
  return [join(e.dir, ENSEMBLE_FILE), ...e.members.flatMap((m) => [join(m.dir, 'manifest.json'), join(m.dir, 'weights.bin')])];
}

/** `createEnsemble`'s options: the table in src/options/infer.ts (`out` required), plus free-form model-card figures. */
export type CreateEnsembleOptions = Omit<EnsembleInput, 'model'> & { info?: Record<string, unknown> };

export interface CreatedEnsemble {
  dir: string;
  manifest: EnsembleManifest;
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Makes an ensemble folder `out` from bundle or run folders (`models`, already resolved to paths):
 * copies each member bundle, byte for byte (float16 weights stay float16), into `out/<name>/`
 * (with its MODEL_CARD.md if it has one) and writes `out/ensemble.json` last.
 */
export async function createEnsemble(models: readonly string[], options: CreateEnsembleOptions): Promise<CreatedEnsemble>;
/** @deprecated the old form, for one release: `createEnsemble(models, { out, ...options })`. */
export async function createEnsemble(models: readonly string[], out: string, options?: Omit<CreateEnsembleOptions, 'out'>): Promise<CreatedEnsemble>;
export async function createEnsemble(models: readonly string[], second: CreateEnsembleOptions | string, third: Omit<CreateEnsembleOptions, 'out'> = {}): Promise<CreatedEnsemble> {
  if (typeof second === 'string') {
    warnDeprecated('createEnsemble(models, out, options)', 'createEnsemble(models, { out, ...options })');
    return createEnsemble(models, { ...third, out: second });
  }
  const opts = resolveOptions(ENSEMBLE.options, second);
  const out = opts.out;
  if (out === undefined) throw new OptionConflictError(['out'], ([o]) => `an ensemble needs ${o}, the folder to write`);
  if (models.length === 0) throw new OptionConflictError(['model'], ([m]) => `an ensemble needs at least one model (${m})`);
  if (opts.names !== undefined && opts.names.length !== models.length) {
    throw new OptionConflictError(['names'], ([n]) => `${n} gives ${opts.names!.length} names for ${models.length} models`);
  }
  const members: (Pick<EnsembleMemberRef, 'name' | 'dir' | 'manifest'>)[] = [];
  const names = uniqueNames(opts.names ?? models.map(folderName));
  for (const [i, model] of models.entries()) {
    if (await isFile(model)) throw new Error(`${model} is a file; ensemble members are bundle or run folders (not exported .onnx files)`);
    if (await isEnsembleDir(model)) throw new Error(`${model} is an ensemble; give its members instead`);
    const dir = await findBundleDir(model);
    if (dir === undefined) throw new Error(`${model} is not a phoneside model: no manifest.json in it or in its model/ folder`);
    const name = names[i]!;
    if (!SAFE_NAME.test(name) || name === ENSEMBLE_FILE) throw new Error(`'${name}' cannot be a member folder name (letters, digits, . _ -)`);
    const manifest = await readMemberManifest(dir, model);
    // A damaged member is refused now rather than copied into the ensemble.
    verifyWeightsDigest(manifest, await readFile(join(dir, 'weights.bin')), join(dir, 'weights.bin'));
    members.push({ name, dir, manifest });
  }
  const classes = members[0]!.manifest.classes;
  checkEnsembleMembers(members, classes, 'ensemble');
  const thresholds = opts.thresholds ?? {};
  const unknown = Object.keys(thresholds).filter((k) => !classes.includes(k));
  if (unknown.length > 0) throw new OptionConflictError(['thresholds'], ([t]) => `${t}: unknown class '${unknown[0]}' (classes: ${classes.join(', ')})`);
  const tta = opts.tta ?? members.every((m) => m.manifest.tta === 'hflip');

  const existing = await readdir(out).catch(() => undefined);
  if (existing !== undefined && existing.length > 0) throw new Error(`${out} already exists and is not empty`);
  await mkdir(out, { recursive: true });
  for (const m of opts.link ? [] : members) {
    const to = join(out, m.name);
    await mkdir(to, { recursive: true });
    await copyFile(join(m.dir, 'weights.bin'), join(to, 'weights.bin'));
    if (await isFile(join(m.dir, 'MODEL_CARD.md'))) await copyFile(join(m.dir, 'MODEL_CARD.md'), join(to, 'MODEL_CARD.md'));
    await copyFile(join(m.dir, 'manifest.json'), join(to, 'manifest.json'));
  }
  const manifest: EnsembleManifest = {
    format: ENSEMBLE_FORMAT,
    version: ENSEMBLE_VERSION,
    members: members.map((m) => (opts.link ? relative(resolve(out), m.dir).split(sep).join('/') : m.name)),
    classes: [...classes],
    ...(opts.thresholds !== undefined ? { thresholds } : {}),
    ...(tta ? { tta: 'hflip' as const } : {}),
    createdAt: new Date().toISOString(),
    ...(opts.info !== undefined ? { info: opts.info } : {}),
  };
  await writeFileAtomic(join(out, ENSEMBLE_FILE), JSON.stringify(manifest, null, 1) + '\n');
  return { dir: out, manifest };
}
