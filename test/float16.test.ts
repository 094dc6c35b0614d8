import { test } from 'node:test';
import assert from 'node:assert/strict';
import { float16ToFloat32, float32ToFloat16, fromFloat16Bits, toFloat16Bits } from '../src/util/float16.js';

test('float16: exact encodings of known values', () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff],
    [2 ** -24, 0x0001], [2 ** -14, 0x0400], [Infinity, 0x7c00], [-Infinity, 0xfc00], [1e6, 0x7c00],
    [0.333251953125, 0x3555], [1 + 2 ** -11, 0x3c00] /* tie -> even */, [1 + 3 * 2 ** -11, 0x3c02] /* tie -> even */,
  ];
  for (const [v, bits] of cases) assert.equal(toFloat16Bits(v), bits, `encode ${v}`);
  for (const [v, bits] of cases.slice(0, 10)) assert.equal(fromFloat16Bits(bits), v, `decode ${bits.toString(16)}`);
  assert.ok(Number.isNaN(fromFloat16Bits(toFloat16Bits(NaN))));
});

test('float16: round trip error is within half a unit in the last place', () => {
  const xs = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10 ** ((i % 7) - 3));
  const back = float16ToFloat32(float32ToFloat16(xs));
  xs.forEach((x, i) => {
    if (Math.abs(x) < 2 ** -14) return; // subnormals: absolute error bound instead
    assert.ok(Math.abs(back[i]! - x) <= Math.abs(x) * 2 ** -11 + 1e-12, `${x} -> ${back[i]}`);
  });
});
