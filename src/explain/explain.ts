/**
 * Why a classifier answered what it did: a heat map per image over the photo, for the predicted
 * class or for every class. Grad-CAM on the last convolutional block when the model's graph
 * allows it (see grad-cam.ts), occlusion sensitivity through the classifier's own session
 * otherwise (see occlusion.ts); each explanation names the method used. ONNX Runtime only.
 */
import type { Classifier } from '../infer/classifier.js';
import { errorReason } from '../infer/predict.js';
import { decide, type Prediction } from '../infer/prediction.js';
import { OptionError } from '../options/schema.js';
import { argmax } from '../util/argmax.js';
import { GradCam } from './grad-cam.js';
import type { HeatMap } from './heatmap.js';
import { fillOccluded, occlusionMap, occlusionPlan } from './occlusion.js';

export { heatmapOverlayJpeg, heatmapOverlayPng, type OverlayOptions } from './overlay.js';
export type { HeatMap } from './heatmap.js';

export type ExplainMethod = 'grad-cam' | 'occlusion';

export interface Explanation {
  path: string;
  /** How the maps were made. */
  method: ExplainMethod;
  /** The model's answer (its thresholds applied). Empty (no classes, confidence 0) when `error` is set. */
  prediction: Prediction;
  /** The predicted class's map, or one per class (model order); size: the model's input. Empty when `error` is set. */
  maps: HeatMap[];
  /** Why this image could not be explained (it could not be decoded, say). */
  error?: string;
}

export interface ExplainOptions {
  /** Map the predicted class only (default) or every class. */
  classes?: 'predicted' | 'all';
  /** 'auto' (default): Grad-CAM when the graph allows it, occlusion otherwise. */
  method?: 'auto' | ExplainMethod;
  /** ONNX Runtime threads of the Grad-CAM sessions (default all cores). */
  threads?: number;
  /** Occluded copies per inference run (default 32). */
  batchSize?: number;
}

/** Thrown when Grad-CAM is asked for and the model's graph does not allow it. */
export class MethodUnavailableError extends Error {
  override readonly name = 'MethodUnavailableError';
}

/** The `prediction` of an image that could not be explained (a fresh object: callers may change theirs). */
const emptyPrediction = (): Prediction => ({ label: '', predicted: '', confidence: 0, probabilities: {} });

/** Mid grey (128 in every channel) as the network sees it after its normalisation. */
function normalisedGrey(clf: Classifier): number[] {
  const pre = clf.preprocessing;
  return [0, 1, 2].map((c) => (128 - pre.mean[c]!) / pre.std[c]!);
}

function wantedClasses(which: 'predicted' | 'all', probabilities: ArrayLike<number>): number[] {
  return which === 'all' ? Array.from(probabilities, (_, i) => i) : [argmax(probabilities)];
}

/** Occlusion maps of one decoded image (`input`: CHW). */
async function occlusionMaps(clf: Classifier, input: Float32Array, which: 'predicted' | 'all', batchSize: number): Promise<{ probabilities: number[]; maps: Map<number, Float32Array> }> {
  const size = clf.preprocessing.size;
  const per = 3 * size * size;
  const [probabilities] = await clf.run({ input, ok: [0], errors: [undefined], decodeMs: [0] });
  const plan = occlusionPlan(size);
  const grey = normalisedGrey(clf);
  const classes = wantedClasses(which, probabilities!);
  const drops = classes.map(() => new Float32Array(plan.positions.length));
  for (let from = 0; from < plan.positions.length; from += batchSize) {
    const to = Math.min(from + batchSize, plan.positions.length);
    const batch = new Float32Array((to - from) * per);
    fillOccluded(input, plan, grey, from, to, batch);
    const rows = await clf.run({ input: batch, ok: Array.from({ length: to - from }, (_, i) => i), errors: [], decodeMs: [] });
    rows.forEach((row, i) => classes.forEach((c, j) => (drops[j]![from + i] = probabilities![c]! - row[c]!)));
  }
  return { probabilities: probabilities!, maps: new Map(classes.map((c, j) => [c, occlusionMap(plan, drops[j]!)])) };
}

/** An image given as its bytes, with the name to report it by (a path that is not valid UTF-8, an upload). */
export interface ExplainInput {
  path: string;
  bytes: Uint8Array;
}

/**
 * Explains each image with `clf`, yielding as it goes (sessions are made once for all images); an
 * image that cannot be decoded yields an entry with `error`, the others are unaffected. Throws
 * MethodUnavailableError when `method: 'grad-cam'` is asked for and the graph does not allow it,
 * and the model's own errors (NonFiniteOutputError) as they come.
 */
export async function* explainEach(clf: Classifier, images: readonly (string | ExplainInput)[], opts: ExplainOptions = {}): AsyncGenerator<Explanation> {
  const which = opts.classes ?? 'predicted';
  const asked = opts.method ?? 'auto';
  const batchSize = opts.batchSize ?? 32;
  if (!['predicted', 'all'].includes(which)) throw new OptionError('classes', "'predicted' or 'all'", which);
  if (!['auto', 'grad-cam', 'occlusion'].includes(asked)) throw new OptionError('method', "one of 'auto', 'grad-cam', 'occlusion'", asked);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new OptionError('batchSize', 'an integer >= 1', batchSize);
  let camModel: GradCam | undefined;
  if (asked !== 'occlusion') {
    const opened = await GradCam.open(clf, opts.threads);
    if (typeof opened === 'string') {
      if (asked === 'grad-cam') throw new MethodUnavailableError(`${clf.source.path}: Grad-CAM is not available for this model: ${opened}; use method occlusion`);
    } else camModel = opened;
  }
  const method: ExplainMethod = camModel !== undefined ? 'grad-cam' : 'occlusion';
  const size = clf.preprocessing.size;
  try {
    for (const image of images) {
      const path = typeof image === 'string' ? image : image.path;
      const batch = await clf.decode([typeof image === 'string' ? image : image.bytes]);
      const failed = batch.errors[0];
      if (failed !== undefined) {
        yield { path, method, prediction: emptyPrediction(), maps: [], error: errorReason(failed) };
        continue;
      }
      const { probabilities, maps } =
        camModel !== undefined
          ? await camModel.explain(batch.input, (p) => wantedClasses(which, p))
          : await occlusionMaps(clf, batch.input, which, batchSize);
      yield {
        path,
        method,
        prediction: decide(clf.classes, probabilities, 0, clf.thresholds),
        maps: [...maps].map(([c, values]) => ({ class: clf.classes[c]!, width: size, height: size, values })),
      };
    }
  } finally {
    await camModel?.release();
  }
}

/** explainEach, collected: one Explanation per image, in input order. */
export async function explainImages(clf: Classifier, images: readonly (string | ExplainInput)[], opts: ExplainOptions = {}): Promise<Explanation[]> {
  const out: Explanation[] = [];
  for await (const e of explainEach(clf, images, opts)) out.push(e);
  return out;
}
