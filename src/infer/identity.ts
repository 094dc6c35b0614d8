/**
 * A model's id and version, as the server's /v1/models, the catalog's records and the queue's
 * results name it.
 *
 * Version: `<createdAt date, YYYYMMDD>-<first 12 hex of sha256>`, the digest taken over the
 * bundle's manifest.json, a NUL byte and its weights.bin (for an exported .onnx: over the file;
 * for an ensemble: over ensemble.json and each member's manifest.json and weights.bin, NUL
 * between files; then, when an option such as --tta or --precision changed what the files say,
 * a NUL and that variant, e.g. `tta=hflip`). It changes exactly when the model's answers can.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { shippedModelPath } from './load.js';

export interface ModelIdentity {
  /** Shipped name (`resnet50`), else the bundle or ensemble folder's or .onnx file's name. */
  id: string;
  /** `YYYYMMDD-<12 hex>`: changes exactly when the model's answers can. */
  version: string;
}

export function versionOf(createdAt: string, digest: string): string {
  const day = /^\d{4}-\d{2}-\d{2}/.test(createdAt) ? createdAt.slice(0, 10).replace(/-/g, '') : '00000000';
  return `${day}-${digest.slice(0, 12)}`;
}

/** The name a model goes by: the shipped name it was asked by, else its folder's or file's name. */
export function modelId(requested: string | undefined, path: string): string {
  if (requested !== undefined && resolve(path) === resolve(shippedModelPath(requested))) return requested;
  const base = basename(path).replace(/\.onnx$/i, '');
  return base === 'model' ? basename(dirname(resolve(path))) : base;
}

/** sha256 over the files' bytes (NUL between files), then a NUL and the variant if any. */
export async function hashFiles(paths: readonly string[], variant?: string): Promise<string> {
  const h = createHash('sha256');
  for (const [i, p] of paths.entries()) {
    if (i > 0) h.update('\0');
    h.update(await readFile(p));
  }
  if (variant !== undefined) h.update(`\0${variant}`);
  return h.digest('hex');
}

/** The identity of a located classifier (see ClassifierOnnx), asked for as `requested`. */
export async function identify(found: { info: { createdAt: string }; source: { path: string }; files: readonly string[]; variant?: string }, requested: string | undefined): Promise<ModelIdentity> {
  return { id: modelId(requested, found.source.path), version: versionOf(found.info.createdAt, await hashFiles(found.files, found.variant)) };
}
