/**
 * `loadClassifier`: the library's entry point for inference. The package ships trained models
 * under `models/<name>/`: `ensemble` (the default: resnet50 and mobilenet_v2 averaged, the best on
 * sources it never saw), `resnet50` and `mobilenet_v2`; `--model NAME` picks one.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Classifier, type LoadClassifierOptions } from './classifier.js';
import { packageRoot } from './package.js';

/** Raised when no model is given and the package ships none. */
export class NoDefaultModelError extends Error {
  override readonly name = 'NoDefaultModelError';
  constructor(readonly expectedAt: string) {
    super('no default model is shipped yet; pass --model');
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
 * Loads a classifier: a bundle, run or ensemble folder, or an exported `.onnx` file; without
 * `model`, the default model shipped with phoneside.
 */
export async function loadClassifier(model?: string, opts: LoadClassifierOptions = {}): Promise<Classifier> {
  return Classifier.load(resolveModelPath(model), opts);
}
