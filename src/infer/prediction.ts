/**
 * One image's answer, as every part of phoneside gives it: `Classifier.classify()`, the rows of
 * `predictFiles` / `phoneside predict`, the HTTP API (`POST /v1/classify`) and the web page (on
 * the server and on the device). Plain data and pure functions only (no Node.js imports), so
 * browser code can share the type.
 */
import { argmax } from '../util/argmax.js';

/** The label given when the top probability is below the confidence threshold. */
export const UNCERTAIN = 'uncertain';

/** One image's answer. */
export interface Prediction {
  /** The answer: `predicted`, or 'uncertain' below the model's threshold for it (or minConfidence). */
  label: string;
  /** The most probable class (the argmax), whatever the thresholds. */
  predicted: string;
  /** Probability of `predicted`. */
  confidence: number;
  /** Probability per class, in the model's class order. */
  probabilities: Record<string, number>;
}

/**
 * The Prediction of one probability vector: `label` is 'uncertain' when the top probability is
 * below `minConfidence` or below `thresholds[predicted]` (class -> minimum confidence).
 */
export function decide(
  classes: readonly string[],
  probs: ArrayLike<number>,
  minConfidence = 0,
  thresholds: Readonly<Record<string, number>> = {},
): Prediction {
  const best = argmax(probs);
  const predicted = classes[best]!;
  const confidence = probs[best]!;
  const needed = Math.max(minConfidence, thresholds[predicted] ?? 0);
  return {
    label: confidence < needed ? UNCERTAIN : predicted,
    predicted,
    confidence,
    probabilities: Object.fromEntries(classes.map((c, i) => [c, probs[i]!])),
  };
}
