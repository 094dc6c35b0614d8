/**
 * Process-wide settings for where phoneside finds and caches backbone weights (in the spirit of
 * transformers.js' `env`). One mutable object: programs may assign to its fields before the first
 * model is loaded; defaults come from environment variables. Deliberately free of heavy imports so
 * that importing it never pulls in tfjs / onnxruntime.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface PhonesideEnv {
  /** Root of the on-disk cache; downloaded weights live in `<cacheDir>/weights/<id>/`. */
  cacheDir: string;
  /** Never touch the network: missing weights are an error that says how to provide them. */
  offline: boolean;
  /**
   * Mirror to download weights from instead of the official URL: files are fetched from
   * `<remoteBaseUrl>/<weights id>/model.json` (+ its shards), i.e. the layout of `shared/weights/`.
   */
  remoteBaseUrl: string | undefined;
  /**
   * Per-backbone weights folders (each holding a `model.json` and its shards, or the model.json
   * itself), keyed by backbone id: the one way to point at a backbone's weights (the CLI's
   * `--weights ID=PATH` writes here; `modelBackbones(ref)` says which ids a model needs). Keys are
   * compared after `weightsEnvKey()` normalisation, so `mobilenet_v2_0.35` and `MOBILENET_V2_035`
   * (the form read from `PHONESIDE_WEIGHTS_<ID>`) name the same backbone.
   */
  weightsDir: Record<string, string>;
  /** Limit for one HTTP request including its body, in milliseconds. */
  fetchTimeoutMs: number;
}

export const DEFAULT_FETCH_TIMEOUT_MS = 120_000;
const WEIGHTS_VAR_PREFIX = 'PHONESIDE_WEIGHTS_';

/** `mobilenet_v2_0.35` -> `MOBILENET_V2_035`: the suffix of its `PHONESIDE_WEIGHTS_*` variable. */
export function weightsEnvKey(id: string): string {
  return id
    .toUpperCase()
    .replace(/\./g, '')
    .replace(/[^A-Z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/** Name of the environment variable that overrides the weights directory of a backbone. */
export function weightsEnvVar(id: string): string {
  return WEIGHTS_VAR_PREFIX + weightsEnvKey(id);
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
}

/** Builds settings from a set of environment variables (`process.env` by default). */
export function envFromProcess(vars: NodeJS.ProcessEnv = process.env): PhonesideEnv {
  const nonEmpty = (k: string): string | undefined => {
    const v = vars[k];
    return v !== undefined && v.trim() !== '' ? v.trim() : undefined;
  };
  const xdg = nonEmpty('XDG_CACHE_HOME');
  const cacheDir =
    nonEmpty('PHONESIDE_CACHE_DIR') ?? (xdg !== undefined ? join(xdg, 'phoneside') : join(homedir(), '.cache', 'phoneside'));

  const weightsDir: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars)) {
    if (k.startsWith(WEIGHTS_VAR_PREFIX) && v !== undefined && v.trim() !== '') {
      weightsDir[k.slice(WEIGHTS_VAR_PREFIX.length)] = v.trim();
    }
  }

  const timeout = Number(nonEmpty('PHONESIDE_FETCH_TIMEOUT_MS'));
  return {
    cacheDir,
    offline: truthy(vars['PHONESIDE_OFFLINE']),
    remoteBaseUrl: nonEmpty('PHONESIDE_REMOTE_URL'),
    weightsDir,
    fetchTimeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : DEFAULT_FETCH_TIMEOUT_MS,
  };
}

/** Override directory configured for a backbone id, if any. */
export function weightsDirFor(e: PhonesideEnv, id: string): string | undefined {
  const key = weightsEnvKey(id);
  for (const [k, v] of Object.entries(e.weightsDir)) {
    if (weightsEnvKey(k) === key) return v;
  }
  return undefined;
}

/** The process-wide settings. Mutate fields, don't reassign. */
export const env: PhonesideEnv = envFromProcess();
