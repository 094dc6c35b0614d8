/**
 * A set of sha256 digests in 8 bytes each, so that a catalog of a million images costs ~16 MiB
 * of index instead of ~100 MiB of 64-character strings.
 *
 * Only the first 64 bits of each digest are kept: two different images are taken for one when
 * their digests share that prefix, a chance of about n^2 / 2^65 over n images (2.7e-8 for a
 * million), which is accepted. An open-addressing table of (hi, lo) 32-bit pairs, half full at
 * most, doubled when it gets fuller; the all-zero prefix marks an empty slot, so that one value
 * is kept in a flag of its own.
 */

const HEX64 = /^[0-9a-f]{16}/;

export class DigestSet {
  private slots: Uint32Array;
  private mask: number;
  private count = 0;
  private hasZero = false;

  constructor(capacity = 1024) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.slots = new Uint32Array(n * 2);
    this.mask = n - 1;
  }

  /** How many distinct digests (by prefix) the set holds. */
  get size(): number {
    return this.count + (this.hasZero ? 1 : 0);
  }

  /** Bytes the table takes (for memory reports). */
  get byteLength(): number {
    return this.slots.byteLength;
  }

  has(sha256: string): boolean {
    const [hi, lo] = prefix(sha256);
    if (hi === 0 && lo === 0) return this.hasZero;
    const at = this.find(hi, lo);
    return this.slots[at * 2] === hi && this.slots[at * 2 + 1] === lo;
  }

  /** Adds a digest; false when it was already there. */
  add(sha256: string): boolean {
    const [hi, lo] = prefix(sha256);
    if (hi === 0 && lo === 0) {
      if (this.hasZero) return false;
      this.hasZero = true;
      return true;
    }
    const at = this.find(hi, lo);
    if (this.slots[at * 2] === hi && this.slots[at * 2 + 1] === lo) return false;
    this.slots[at * 2] = hi;
    this.slots[at * 2 + 1] = lo;
    this.count++;
    if (this.count * 2 > this.mask + 1) this.grow();
    return true;
  }

  /** The slot holding (hi, lo), or the empty slot where it would go. */
  private find(hi: number, lo: number): number {
    // The digest is uniformly random already: its low bits are a good enough hash.
    let i = lo & this.mask;
    for (;;) {
      const h = this.slots[i * 2]!;
      const l = this.slots[i * 2 + 1]!;
      if ((h === 0 && l === 0) || (h === hi && l === lo)) return i;
      i = (i + 1) & this.mask;
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    this.mask = this.slots.length / 2 - 1;
    for (let i = 0; i < old.length; i += 2) {
      const hi = old[i]!;
      const lo = old[i + 1]!;
      if (hi === 0 && lo === 0) continue;
      const at = this.find(hi, lo);
      this.slots[at * 2] = hi;
      this.slots[at * 2 + 1] = lo;
    }
  }
}

/** The first 64 bits of a lowercase hex digest as two unsigned 32-bit halves. */
function prefix(sha256: string): [number, number] {
  if (!HEX64.test(sha256)) throw new RangeError(`not a sha256 hex digest: '${sha256.slice(0, 80)}'`);
  return [parseInt(sha256.slice(0, 8), 16) >>> 0, parseInt(sha256.slice(8, 16), 16) >>> 0];
}
