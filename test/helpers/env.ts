/**
 * withEnv(): run a test body with some of the library's `env` settings (src/env.ts) and/or
 * process.env variables set, and put everything back afterwards, however the body ends.
 * patchEnv() is the same for before()/after() hooks: it returns the function that restores.
 */
import { env, type PhonesideEnv } from '../../src/env.js';

export interface EnvPatch extends Partial<PhonesideEnv> {
  /** process.env variables to set; `undefined` removes one. */
  vars?: Record<string, string | undefined>;
}

/**
 * Applies `patch` to `env` (a `weightsDir` given replaces the whole map: spread `env.weightsDir`
 * into it to add to it) and to process.env. The returned function restores every `env` field as
 * it was before the patch, so later changes (say by a CLI's --cache-dir, --offline or
 * --weights ID=PATH) are undone too, and the process.env variables named in `vars`.
 * `env.weightsDir` keeps its identity: it is refilled in place (and put back if replaced).
 */
export function patchEnv(patch: EnvPatch): () => void {
  const { vars = {}, weightsDir, ...fields } = patch;
  const saved = { cacheDir: env.cacheDir, offline: env.offline, remoteBaseUrl: env.remoteBaseUrl, fetchTimeoutMs: env.fetchTimeoutMs };
  const weightsMap = env.weightsDir;
  const savedWeights = { ...weightsMap };
  const savedVars = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const setVars = (values: Record<string, string | undefined>): void => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  const setWeights = (map: Record<string, string>): void => {
    for (const k of Object.keys(env.weightsDir)) delete env.weightsDir[k];
    Object.assign(env.weightsDir, map);
  };
  const restore = (): void => {
    Object.assign(env, saved, { weightsDir: weightsMap });
    setWeights(savedWeights);
    setVars(savedVars);
  };
  try {
    Object.assign(env, fields);
    if (weightsDir) setWeights({ ...weightsDir });
    setVars(vars);
  } catch (err) {
    restore();
    throw err;
  }
  return restore;
}

/** Runs `fn` with `patch` applied (see patchEnv); restores in finally. */
export async function withEnv<T>(patch: EnvPatch, fn: () => T | Promise<T>): Promise<T> {
  const restore = patchEnv(patch);
  try {
    return await fn();
  } finally {
    restore();
  }
}
