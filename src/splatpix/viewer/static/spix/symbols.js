// The symbol layer both methods share: length-prefixed chunks, symbol chunks (fixed-length or entropy coded)
// and the colour payloads (residual-VQ indices and codebooks).
// Mirrors splatpix/codec/symbols.py (read_chunks, bits_for, uncode, read_colour_payloads) and the checks of the
// quantised-model classes on colours (codec/quantize.py QuantizedGaussians, codec/methods/sga.py SGAQuantized);
// byte layout: docs/format.md, "Section payloads of the GaussianImage codec".

import { COLOUR_INDICES, CODEBOOKS, u16, u32 } from './container.js';
import { decodeCategorical, unpackFixed } from './entropy.js';
import { allocate, corrupt } from './errors.js';

export const MODE_FIXED = 0;
export const MODE_ENTROPY = 1;

/** symbols.read_chunks: exactly `count` length-prefixed (u32) chunks filling `payload`. */
export function readChunks(payload, count, what) {
  const out = [];
  let pos = 0;
  for (let i = 0; i < count; i++) {
    if (pos + 4 > payload.length) throw corrupt(`${what} truncated`);
    const n = u32(payload, pos);
    pos += 4;
    if (n > payload.length - pos) throw corrupt(`${what} chunk length ${n} exceeds the section`);
    out.push(payload.subarray(pos, pos + n));
    pos += n;
  }
  if (pos !== payload.length) throw corrupt(`${payload.length - pos} trailing bytes in ${what}`);
  return out;
}

/** symbols.bits_for: ceil(log2(alphabet)) bits per fixed-length symbol, at least 1. */
export function bitsFor(alphabet) {
  let bits = 1;
  while (2 ** bits < alphabet) bits++;
  return bits;
}

/**
 * symbols.uncode: the n symbols (a Uint16Array) of a chunk over [0, alphabet) under section policy `policy`
 * (MODE_FIXED allows fixed-length chunks only, MODE_ENTROPY either mode).
 */
export function uncode(chunk, n, alphabet, policy) {
  const mode = chunk.length ? chunk[0] : -1;
  if ((mode !== MODE_FIXED && mode !== MODE_ENTROPY) || (policy === MODE_FIXED && mode !== MODE_FIXED)) {
    throw corrupt('symbol chunk with an invalid mode');
  }
  const data = chunk.subarray(1);
  return mode === MODE_ENTROPY ? decodeCategorical(data, n, alphabet) : unpackFixed(data, n, bitsFor(alphabet));
}

/**
 * symbols.read_colour_payloads plus the quantised models' colour checks: {stages, k, indices (Uint16Array,
 * (N, stages) row-major), books (Float32Array, (stages, K, C))}. Every codeword must be finite and every index
 * inside the codebook.
 */
export function readColourPayloads(sections, n, c) {
  const ci = sections.get(COLOUR_INDICES);
  if (ci.length < 4 || (ci[0] !== MODE_FIXED && ci[0] !== MODE_ENTROPY)) {
    throw corrupt('colour index section is truncated or has an unknown mode');
  }
  const policy = ci[0];
  const stages = ci[1];
  const k = u16(ci, 2);
  if (stages < 1 || stages > 16 || k < 1 || k > 4096) {
    throw corrupt(`colour quantiser with ${stages} stages of ${k} codewords is out of range`);
  }
  const chunks = readChunks(ci.subarray(4), stages, 'colour index section');
  const indices = allocate(Uint16Array, n * stages);
  if (n) { // with no Gaussians Python reads the chunks' framing only, not their contents
    for (let s = 0; s < stages; s++) {
      const sym = uncode(chunks[s], n, k, policy);
      for (let i = 0; i < n; i++) indices[i * stages + s] = sym[i];
    }
  }
  const books = readCodebooks(sections.get(CODEBOOKS), stages, k, c);
  for (let i = 0; i < indices.length; i++) {
    if (indices[i] >= k) throw corrupt('invalid quantised model: colour index outside the codebook');
  }
  return { stages, k, indices, books };
}

function readCodebooks(cb, stages, k, c) {
  if (cb.length < 4) throw corrupt('codebook section truncated');
  if (cb[0] !== stages || u16(cb, 1) !== k || cb[3] !== c || cb.length !== 4 + 4 * stages * k * c) {
    throw corrupt('codebook section does not match the colour indices or the channel count');
  }
  const books = new Float32Array(stages * k * c);
  const view = new DataView(cb.buffer, cb.byteOffset, cb.byteLength);
  for (let i = 0; i < books.length; i++) {
    books[i] = view.getFloat32(4 + 4 * i, true);
    if (!Number.isFinite(books[i])) throw corrupt('invalid quantised model: non-finite value in codebooks');
  }
  return books;
}

/**
 * quantize.rvq_lookup: colour (i, c) = sum over stages s of books[s][index(i, s)][c], float32 adds in stage
 * order (Math.fround after each); a Float32Array (N, C) row-major.
 */
export function rvqLookup(colour, n, c) {
  const { stages, k, indices, books } = colour;
  const out = allocate(Float32Array, n * c);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      let v = books[indices[i * stages] * c + ch];
      for (let s = 1; s < stages; s++) v = Math.fround(v + books[(s * k + indices[i * stages + s]) * c + ch]);
      out[i * c + ch] = v;
    }
  }
  return out;
}
