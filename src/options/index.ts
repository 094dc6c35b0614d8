/** Every verb's option table, in the order `phoneside help` lists them. */
import { BACKBONES, COMPARE, ENSEMBLE, EVALUATE, EXPORT, MODELS, PREDICT } from './infer.js';
import type { VerbSpec } from './schema.js';
import { SERVE } from './serve.js';
import { CV, TRAIN } from './train.js';

export const VERBS: readonly VerbSpec[] = [TRAIN, CV, EVALUATE, PREDICT, EXPORT, COMPARE, ENSEMBLE, SERVE, MODELS, BACKBONES];

export function verbByName(name: string): VerbSpec | undefined {
  return VERBS.find((v) => v.name === name);
}

export { BACKBONES, COMPARE, CV, ENSEMBLE, EVALUATE, EXPORT, MODELS, PREDICT, SERVE, TRAIN };
