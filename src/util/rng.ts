/**
 * Small seeded PRNG (sfc32, seeded through splitmix32) so that shuffles, splits and
 * augmentations are reproducible across runs and platforms — Math.random() is not seedable.
 */

export interface Rng {
  /** The seed this stream was created from (forks get a derived seed). */
  readonly seed: number;
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [lo, hiExclusive). */
  int(lo: number, hiExclusive: number): number;
  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** Fisher–Yates shuffle in place; returns the same array. */
  shuffle<T>(arr: T[]): T[];
  /**
   * Independent stream derived from this stream's seed and `label` only (not from how many
   * numbers were drawn so far), so adding draws elsewhere never changes a forked stream.
   */
  fork(label: string | number): Rng;
}

/** splitmix32 step: a good 32-bit mixer, used for seeding and for deriving fork seeds. */
function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** FNV-1a over UTF-16 code units; the type tag keeps fork(1) and fork('1') distinct. */
function hashLabel(label: string | number): number {
  const s = (typeof label === 'number' ? 'n:' : 's:') + String(label);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function createRng(seed: number): Rng {
  if (!Number.isFinite(seed)) throw new RangeError(`createRng: seed must be a finite number, got ${seed}`);
  // Fold non-integer / large seeds into 32 bits deterministically.
  const s32 = (Math.trunc(seed) ^ Math.trunc(seed / 0x100000000)) >>> 0;
  let a = splitmix32(s32);
  let b = splitmix32(a);
  let c = splitmix32(b);
  let d = 1;
  const raw = (): number => {
    // sfc32
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  // Discard the first outputs: sfc32 is weakly mixed right after seeding.
  for (let i = 0; i < 12; i++) raw();

  const rng: Rng = {
    seed: s32,
    next: () => raw() / 0x100000000,
    int(lo, hiExclusive) {
      if (!Number.isInteger(lo) || !Number.isInteger(hiExclusive) || hiExclusive <= lo) {
        throw new RangeError(`Rng.int: need integers lo < hiExclusive, got [${lo}, ${hiExclusive})`);
      }
      return lo + Math.floor(rng.next() * (hiExclusive - lo));
    },
    uniform: (lo, hi) => lo + rng.next() * (hi - lo),
    shuffle<T>(arr: T[]): T[] {
      for (let i = arr.length - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1));
        const tmp = arr[i] as T;
        arr[i] = arr[j] as T;
        arr[j] = tmp;
      }
      return arr;
    },
    fork: (label) => createRng(splitmix32(s32 ^ hashLabel(label)) ^ 0x5bd1e995),
  };
  return rng;
}

/** Standard normal draw (Box–Muller; uses two uniforms, 1 - u keeps log away from 0). */
export function normalSample(rng: Rng): number {
  const u = 1 - rng.next();
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Gamma(shape, 1) draw by Marsaglia & Tsang (2000), "A simple method for generating gamma
 * variables"; shape < 1 is boosted: Gamma(a) = Gamma(a + 1) * U^(1/a).
 */
export function gammaSample(rng: Rng, shape: number): number {
  if (!(shape > 0) || !Number.isFinite(shape)) throw new RangeError(`gammaSample: shape must be > 0, got ${shape}`);
  if (shape < 1) {
    const u = 1 - rng.next(); // (0, 1]
    return gammaSample(rng, shape + 1) * u ** (1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normalSample(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng.next(); // (0, 1]
    if (u < 1 - 0.0331 * x ** 4) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(a, b) draw as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
export function betaSample(rng: Rng, a: number, b: number): number {
  const x = gammaSample(rng, a);
  const y = gammaSample(rng, b);
  // Both can underflow to 0 for tiny shapes (the mass then sits at the ends): pick an end.
  if (x + y === 0) return rng.next() < a / (a + b) ? 1 : 0;
  return x / (x + y);
}
