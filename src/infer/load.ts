/**
 * `loadClassifier`: the library's entry point for inference, with the model shipped inside the
 * package (`models/default/`) as the default.
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

/** Where the shipped default model lives (a bundle folder, or a folder holding model.onnx). */
export function defaultModelPath(root: string = packageRoot()): string {
  return join(root, 'models', 'default');
}

/** `model` itself, or the shipped default model; throws NoDefaultModelError if there is none. */
export function resolveModelPath(model?: string, root?: string): string {
  if (model !== undefined) return model;
  const p = defaultModelPath(root);
  if (!existsSync(p)) throw new NoDefaultModelError(p);
  return p;
}

/**
 * Loads a classifier: a bundle or run folder, or an exported `.onnx` file; without `model`, the
 * default model shipped with phoneside.
 */
export async function loadClassifier(model?: string, opts: LoadClassifierOptions = {}): Promise<Classifier> {
  return Classifier.load(resolveModelPath(model), opts);
}
