/**
 * What every CLI verb shares: where it writes, what a usage mistake is (exit status 2), and the
 * `--weights` words that fill `env.weightsDir`. Parsing itself is in parse.ts, from the tables.
 */
import { getBackbone } from '../backbones/registry.js';
import type { WeightsMissingError } from '../backbones/weights-source.js';
import { env, weightsEnvKey } from '../env.js';
import type { ProgressStream } from '../util/progress.js';

/** Where a command writes; process.stdout / process.stderr by default (tests pass fakes). */
export interface CliIO {
  stdout: ProgressStream;
  stderr: ProgressStream;
}

/** A mistake in the command line (exit status 2). */
export class CommandUsageError extends Error {}

/** A CommandUsageError, or one of node:util parseArgs' own errors (unknown option, missing value). */
export function isUsageError(err: unknown): err is Error {
  return err instanceof CommandUsageError || (err instanceof Error && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true);
}

/**
 * `--weights` values (repeatable): `ID=PATH` sets the weights folder of one backbone in
 * `env.weightsDir` (for every model that uses it: how an ensemble of several backbones gets its
 * weights); a bare `PATH` is returned, for the caller to give to the one backbone it means.
 * `set` collects the folders set, by backbone id.
 */
export function applyWeightsOption(values: readonly string[] | undefined, flag = '--weights', set: Record<string, string> = {}): string | undefined {
  let bare: string | undefined;
  for (const w of values ?? []) {
    const eq = w.indexOf('=');
    const id = eq > 0 ? w.slice(0, eq) : '';
    if (/^[A-Za-z0-9_.-]+$/.test(id)) {
      let backboneId: string;
      try {
        backboneId = getBackbone(id).id;
      } catch (err) {
        throw new CommandUsageError(`${flag} ${w}: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (w.slice(eq + 1) === '') throw new CommandUsageError(`${flag} ${w}: the path is missing`);
      setWeightsDir(backboneId, w.slice(eq + 1), set);
    } else if (bare === undefined) bare = w;
    else throw new CommandUsageError(`only one bare ${flag} PATH may be given; use ID=PATH for each backbone`);
  }
  return bare;
}

/** The command line wins over PHONESIDE_WEIGHTS_<ID>, which may name the same backbone under another key. */
function setWeightsDir(backboneId: string, dir: string, set: Record<string, string> = {}): void {
  for (const k of Object.keys(env.weightsDir)) if (weightsEnvKey(k) === weightsEnvKey(backboneId)) delete env.weightsDir[k];
  env.weightsDir[backboneId] = dir;
  set[backboneId] = dir;
}

/** `--weights` of train and cv: a bare PATH is the weights of `backbone`. */
export function applyBackboneWeights(values: { weights?: string[]; alpha?: number | undefined }, backbone: string): void {
  const bare = applyWeightsOption(values.weights);
  if (bare === undefined) return;
  let id: string;
  try {
    // --alpha picks the MobileNetV2 width, whose weights differ (mobilenet_v2_0.50 ...).
    id = getBackbone(backbone, values.alpha !== undefined ? { alpha: values.alpha } : {}).id;
  } catch (err) {
    throw new CommandUsageError(`--backbone ${backbone}: ${err instanceof Error ? err.message : String(err)}`);
  }
  setWeightsDir(id, bare);
}

/**
 * `--weights` of a verb that runs models: a bare PATH is the weights of the backbone the models
 * use; models of several backbones need ID=PATH (a usage error says which IDs). Returns the
 * folders set, by backbone id.
 */
export async function applyModelWeights(values: readonly string[] | undefined, models: readonly (string | undefined)[], flag = '--weights'): Promise<Record<string, string>> {
  const set: Record<string, string> = {};
  const bare = applyWeightsOption(values, flag, set);
  if (bare === undefined) return set;
  const { modelBackbones } = await import('../infer/load.js');
  const ids = [...new Set((await Promise.all(models.map((m) => modelBackbones(m)))).flat())];
  if (ids.length === 0) throw new CommandUsageError(`${flag} ${bare}: the model needs no backbone weights (a self-contained .onnx file)`);
  if (ids.length > 1) {
    throw new CommandUsageError(`${flag} ${bare}: the model uses ${ids.length} backbones (${ids.join(', ')}); give each its own: ${ids.map((id) => `${flag} ${id}=PATH`).join(' ')}`);
  }
  setWeightsDir(ids[0]!, bare, set);
  return set;
}

/**
 * What to do about a WeightsMissingError, in command-line words (printed after its message, which
 * names no flags): `flag` is the option that gives weights to the model that failed (`--weights`,
 * or `--device-weights` for serve's on-device model).
 */
export function weightsMissingAdvice(err: WeightsMissingError, flag = '--weights'): string {
  const lines = [
    `To use weights you have: ${flag} ${err.backboneId}=<folder holding model.json> (or ${err.envVar}=<folder>).`,
    err.offline
      ? `To download them from ${err.url} into ${err.dir}: run once without --offline (and without PHONESIDE_OFFLINE=1).`
      : 'Or check the network and try again, or download from a mirror of the weights: PHONESIDE_REMOTE_URL=<URL>.',
  ];
  if (flag === '--weights' && err.backboneId !== 'resnet50') lines.push('The shipped resnet50 model needs no download: --model resnet50.');
  return lines.join('\n');
}
