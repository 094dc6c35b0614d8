/**
 * What every CLI verb shares: where it writes, how a usage mistake is reported (exit status 2),
 * and the parsing of numeric options.
 */
import { getBackbone } from '../backbones/registry.js';
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

/** Reports a usage mistake of `verb` and returns its exit status. */
export function usage(io: CliIO, err: Error, verb: string): number {
  io.stderr.write(`phoneside: ${err.message}\nRun 'phoneside ${verb} --help' for usage.\n`);
  return 2;
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/** Option `--name` as a number passing `check` (described by `what` in the error); undefined if absent. */
export function numberOpt(v: OptionValues, name: string, check: (n: number) => boolean = () => true, what = 'a number'): number | undefined {
  const s = v[name];
  if (s === undefined) return undefined;
  const n = Number(s);
  if (typeof s !== 'string' || s.trim() === '' || !Number.isFinite(n) || !check(n)) throw new CommandUsageError(`--${name} must be ${what}, got '${String(s)}'`);
  return n;
}

/** Option `--name` as an integer >= min; undefined if absent. */
export function intOpt(v: OptionValues, name: string, min: number): number | undefined {
  return numberOpt(v, name, (n) => Number.isInteger(n) && n >= min, `an integer >= ${min}`);
}

/** The options every model-loading verb takes for the shared `env` (spread into parseArgs' options). */
export const ENV_OPTIONS = {
  'cache-dir': { type: 'string' },
  offline: { type: 'boolean' },
} as const;

/** Applies `--cache-dir` and `--offline` to the shared `env`. */
export function applyEnvOptions(v: OptionValues): void {
  if (typeof v['cache-dir'] === 'string') env.cacheDir = v['cache-dir'];
  if (v['offline'] === true) env.offline = true;
}

/** Option `--name` as comma-separated numbers; undefined if absent. */
export function numberList(v: OptionValues, name: string): number[] | undefined {
  const s = v[name];
  if (typeof s !== 'string') return undefined;
  const parts = s.split(',').map((p) => Number(p.trim()));
  if (parts.some((p) => !Number.isFinite(p))) throw new CommandUsageError(`--${name} must be comma-separated numbers, got '${s}'`);
  return parts;
}

/** Option `--name` as one of `allowed`; undefined if absent. */
export function choice<T extends string>(v: OptionValues, name: string, allowed: readonly T[]): T | undefined {
  const s = v[name];
  if (s === undefined) return undefined;
  if (!allowed.includes(s as T)) throw new CommandUsageError(`--${name} must be one of ${allowed.join(', ')}, got '${String(s)}'`);
  return s as T;
}

/** `o` without its undefined fields (so that spreading it keeps the library's defaults). */
export function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as Partial<T>;
}

/**
 * `--weights` values (repeatable): `ID=PATH` sets the weights folder of one backbone (e.g.
 * `mobilenet_v2_0.35=DIR`, into `env.weightsDir`, for every model that uses it: how an ensemble
 * of several backbones gets its weights); a bare `PATH` is returned, for the model's (every
 * model's) backbone. At most one bare PATH.
 */
export function applyWeightsOption(v: OptionValues, name = 'weights'): string | undefined {
  const raw = v[name];
  const values = raw === undefined || typeof raw === 'boolean' ? [] : typeof raw === 'string' ? [raw] : raw;
  let bare: string | undefined;
  for (const w of values) {
    const eq = w.indexOf('=');
    const id = eq > 0 ? w.slice(0, eq) : '';
    if (/^[A-Za-z0-9_.-]+$/.test(id)) {
      let backboneId: string;
      try {
        backboneId = getBackbone(id).id;
      } catch (err) {
        throw new CommandUsageError(`--${name} ${w}: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (w.slice(eq + 1) === '') throw new CommandUsageError(`--${name} ${w}: the path is missing`);
      // The command line wins over PHONESIDE_WEIGHTS_<ID>, which may name the same backbone under another key.
      for (const k of Object.keys(env.weightsDir)) if (weightsEnvKey(k) === weightsEnvKey(backboneId)) delete env.weightsDir[k];
      env.weightsDir[backboneId] = w.slice(eq + 1);
    } else if (bare === undefined) bare = w;
    else throw new CommandUsageError(`only one bare --${name} PATH may be given; use ID=PATH for each backbone`);
  }
  return bare;
}
