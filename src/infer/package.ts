/**
 * Where phoneside itself is installed: the package root (found from this module's own location,
 * so it works from src/ under tsx and from dist/ once built) and files shipped inside it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The nearest folder at or above this module that holds a package.json. */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find phoneside's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** The installed phoneside version ('0.0.0' when package.json cannot be read). */
export function packageVersion(): string {
  try {
    const v = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/**
 * Source text of the modules that turn a bundle into ONNX (whichever of .ts / .js exists), so
 * that the model cache is invalidated when that code changes, not only when the version does.
 */
export function emitterFingerprint(): string {
  const mods = ['../onnx/from-graph', '../onnx/builder', '../model/assemble', '../model/bundle', '../backbones/keras', '../backbones/graph', './onnx-meta', './ensemble'];
  const here = dirname(fileURLToPath(import.meta.url));
  const parts: string[] = [];
  for (const m of mods) {
    for (const ext of ['.js', '.ts']) {
      const p = join(here, m + ext);
      if (existsSync(p)) {
        parts.push(readFileSync(p, 'utf8'));
        break;
      }
    }
  }
  return parts.join('\0');
}
