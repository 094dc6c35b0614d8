/**
 * Index of the largest value: the predicted class of a probability or logit row (the first one
 * on ties; NaN never wins). Dependency-free, so browser-side code may use it too.
 */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}
