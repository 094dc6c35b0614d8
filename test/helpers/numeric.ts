/** Numeric helpers shared by the kernel and graph tests. */
import assert from 'node:assert/strict';

/** Deterministic uniform data in [lo, hi) (mulberry32), identical on every backend and run. */
export function seededData(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (((t ^ (t >>> 14)) >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}

/**
 * max |a - b| / max |b|, the reference being b. A reference whose largest magnitude is not above
 * `minScale` fails the test: such a case would test nothing.
 */
export function relErr(a: Float32Array, b: Float32Array, minScale = 0): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  assert.ok(scale > minScale, 'reference is ~all zeros; the case tests nothing');
  return diff / scale;
}
