// Scalar-quantised colours of method sga (section COLOUR_SCALAR): a uniform quantiser per channel, then YCoCg undone
// for RGB. Mirrors splatpix/codec/colours.py (unpack_scalar_colours, ScalarColours and its dequantize());
// byte layout: docs/format.md, "Method sga", COLOUR_SCALAR. Float32 bit for bit: Math.fround after each operation
// (see quantize.js for why that equals IEEE float32 arithmetic).

import { allocate, corrupt } from './errors.js';
import { MODE_ENTROPY, MODE_FIXED, readChunks, uncode } from './symbols.js';

const TRANSFORM_IDENTITY = 0;
const TRANSFORM_YCOCG = 1;
const MAX_BITS = 16;
const CHANNEL_SIZE = 9; // struct "<Bff"

/** colours.unpack_scalar_colours + ScalarColours.dequantize: the (N, C) float32 colours, row-major. */
export function readScalarColours(p, n, channels) {
  if (p.length < 3 || (p[0] !== MODE_FIXED && p[0] !== MODE_ENTROPY)
      || (p[1] !== TRANSFORM_IDENTITY && p[1] !== TRANSFORM_YCOCG)) {
    throw corrupt('scalar colour section is truncated or has an unknown mode or transform');
  }
  const policy = p[0];
  const transform = p[1];
  const c = p[2];
  if (c !== channels || (transform === TRANSFORM_YCOCG && c !== 3)) {
    throw corrupt('scalar colour section does not match the channel count');
  }
  const end = 3 + CHANNEL_SIZE * c;
  if (p.length < end) throw corrupt('scalar colour section truncated');
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const bits = [];
  const scale = new Float32Array(c);
  const offset = new Float32Array(c);
  for (let j = 0; j < c; j++) {
    const at = 3 + CHANNEL_SIZE * j;
    bits.push(p[at]);
    scale[j] = view.getFloat32(at + 1, true);
    offset[j] = view.getFloat32(at + 5, true);
    if (bits[j] < 1 || bits[j] > MAX_BITS || !Number.isFinite(scale[j]) || !Number.isFinite(offset[j])
        || !(scale[j] > 0)) {
      throw corrupt('scalar colour quantiser is invalid');
    }
  }
  const chunks = readChunks(p.subarray(end), c, 'scalar colour section');
  const x = allocate(Float32Array, n * c);
  if (n) { // with no Gaussians Python reads the chunks' framing only
    for (let j = 0; j < c; j++) {
      const sym = uncode(chunks[j], n, 2 ** bits[j], policy);
      for (let i = 0; i < n; i++) {
        if (sym[i] >= 2 ** bits[j]) throw corrupt("invalid scalar colours: colour symbol outside its channel's range");
        x[i * c + j] = Math.fround(Math.fround(sym[i] * scale[j]) + offset[j]);
      }
    }
  }
  if (transform === TRANSFORM_IDENTITY) return x;
  for (let i = 0; i < n; i++) { // R = (Y + Co) - Cg, G = Y + Cg, B = (Y - Co) - Cg
    const y = x[3 * i];
    const co = x[3 * i + 1];
    const cg = x[3 * i + 2];
    x[3 * i] = Math.fround(Math.fround(y + co) - cg);
    x[3 * i + 1] = Math.fround(y + cg);
    x[3 * i + 2] = Math.fround(Math.fround(y - co) - cg);
  }
  return x;
}
