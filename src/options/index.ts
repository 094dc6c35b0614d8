/** Every verb's option table, in the order `phoneside help` lists them. */
import { CATALOG } from './catalog.js';
import { EXPLAIN } from './explain.js';
import { BACKBONES, COMPARE, ENSEMBLE, EVALUATE, EXPORT, MODELS, PREDICT } from './infer.js';
import { QUEUE_ADD, QUEUE_RESULTS, QUEUE_STATUS, WORKER } from './queue.js';
import { REVIEW } from './review.js';
import type { VerbSpec } from './schema.js';
import { SERVE } from './serve.js';
import { CV, TRAIN } from './train.js';

export const VERBS: readonly VerbSpec[] = [TRAIN, CV, EVALUATE, REVIEW, PREDICT, EXPLAIN, EXPORT, COMPARE, ENSEMBLE, SERVE, CATALOG, QUEUE_ADD, WORKER, QUEUE_RESULTS, QUEUE_STATUS, MODELS, BACKBONES];

export function verbByName(name: string): VerbSpec | undefined {
  return VERBS.find((v) => v.name === name);
}

export { BACKBONES, COMPARE, CV, ENSEMBLE, EVALUATE, EXPORT, MODELS, PREDICT, SERVE, TRAIN };
export { QUEUE_ADD, QUEUE_RESULTS, QUEUE_STATUS, WORKER };
export { CATALOG };
export { REVIEW };
export { EXPLAIN };
