// Dequantisation of positions and covariances, float32 bit for bit.
// Mirrors splatpix/codec/quantize.py (dequantize_positions: fp16 -> float32; dequant_uniform_rows:
// float32(q) * scale + offset, a float32 multiply then a float32 add, no fused multiply-add) and the sga
// grid means of codec/methods/sga.py (float32(float64(q) / float64(steps))). The colour sum is
// symbols.rvqLookup.
//
// Math.fround after each operation gives IEEE float32 results: a double holds the exact product of a float32
// and an integer below 2^24, and rounding a double sum of two float32 values to float32 equals the float32 sum
// (53 >= 2 * 24 + 2 bits).

import { allocate } from './errors.js';

/** The float value of the fp16 bit pattern h (exact in a double and in a float32). */
export function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return sign * f * 2 ** -24; // zero and subnormals
  if (e === 31) return f ? NaN : sign * Infinity;
  return sign * (1024 + f) * 2 ** (e - 25);
}

/**
 * quantize.dequant_uniform_rows: out (N, 3) = float32(q) * scale[row] + offset[row] per channel, a Float32Array;
 * `scale`, `offset`: Float32Array (T, 3); `row`: the quantiser of each Gaussian (null: all 0).
 */
export function dequantRows(q, row, scale, offset, n) {
  const out = allocate(Float32Array, 3 * n);
  for (let i = 0; i < n; i++) {
    const r = row ? 3 * row[i] : 0;
    for (let j = 0; j < 3; j++) {
      out[3 * i + j] = Math.fround(Math.fround(q[3 * i + j] * scale[r + j]) + offset[r + j]);
    }
  }
  return out;
}

/** Whether every value of a Float32Array is finite (api.dequantize refuses non-finite parameters). */
export function allFinite(a) {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}
