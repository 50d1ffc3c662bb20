// Entropy-coded and fixed-length symbol payloads.
// Mirrors splatpix/codec/entropy.py (read_histogram, decode_categorical, unpack_fixed); byte layout:
// docs/format.md, "Entropy-coded payload" and "Fixed-length payload".
//
// The ANS decoder reproduces constriction 0.5.0's AnsCoder (32-bit words, 64-bit state, stack order) with its
// Categorical(counts, perfect=False) model at 24-bit precision, which is what the Python encoder uses
// (constriction's src/stream/stack.rs: read_initial_state, decode_symbol, is_empty;
// src/stream/model/categorical.rs: fast_quantized_cdf; .../contiguous.rs: quantile_function).
// The 64-bit state is held in three limbs of at most 24 bits (see ansDecode): exact, with no BigInt or
// doubles in the hot loop.

import { SpixError, allocate } from './errors.js';

export const MAX_ALPHABET = 1 << 16;
const MAX_VARINT_BYTES = 7; // 49 bits
const SET_GAPS = 0;
const SET_BITMAP = 1;
const PRECISION = 24;
const ONE_P = 2 ** PRECISION; // 2^24
const ERR = 'corrupt entropy-coded data';

function bad(msg) {
  return new SpixError(`${ERR}: ${msg}`);
}

// ------------------------------------------------------------------------------------------------ varints

/**
 * `count` canonical unsigned LEB128 values at buf[pos..], each <= maxValue, into out[0..count); returns the new
 * position (entropy._decode_varints: at most 7 bytes, no superfluous zero groups).
 */
export function readVarints(buf, pos, count, maxValue, what, out) {
  const end = buf.length;
  for (let i = 0; i < count; i++) {
    let v = 0;
    let scale = 1;
    let length = 0;
    let byte;
    do {
      if (pos >= end) throw bad(`${what} truncated or malformed`);
      byte = buf[pos++];
      if (++length > MAX_VARINT_BYTES) throw bad(`${what}: varint too long`);
      v += (byte & 0x7f) * scale; // < 2^49: exact in a double
      scale *= 128;
    } while (byte >= 0x80);
    if (length > 1 && byte === 0) throw bad(`${what}: non-canonical varint`);
    if (v > maxValue) throw bad(`${what}: value ${v} out of range (at most ${maxValue})`);
    out[i] = v;
  }
  return pos;
}

// ---------------------------------------------------------------------------------------------- histogram

/**
 * entropy.read_histogram: the used symbols (increasing), their counts (>= 1, summing to n) and the size of the
 * side information, {symbols: Int32Array, counts: Float64Array, size}.
 */
export function readHistogram(buf, n, alphabet) {
  if (buf.length === 0) throw bad('empty payload');
  const one = [0];
  let pos = readVarints(buf, 0, 1, MAX_ALPHABET, 'symbol count', one);
  const k = one[0];
  if (k > Math.min(n, alphabet) || (n > 0 && k === 0)) {
    throw bad(`${k} distinct symbols for ${n} symbols over an alphabet of ${alphabet}`);
  }
  if (k === 0) return { symbols: new Int32Array(0), counts: new Float64Array(0), size: pos };
  if (pos >= buf.length) throw bad('symbol set truncated');
  const coding = buf[pos++];
  const symbols = new Int32Array(k);
  if (coding === SET_GAPS) {
    const gaps = new Float64Array(k);
    pos = readVarints(buf, pos, k, alphabet - 1, 'symbol set', gaps);
    let acc = -1;
    for (let i = 0; i < k; i++) {
      acc += gaps[i] + 1; // <= 2^16 * 2^16: exact
      if (acc >= alphabet) throw bad(`symbol ${acc} outside the alphabet of ${alphabet}`);
      symbols[i] = acc;
    }
  } else if (coding === SET_BITMAP) {
    pos = readBitmap(buf, pos, k, alphabet, symbols);
  } else {
    throw bad(`unknown symbol-set coding ${coding}`);
  }
  const counts = new Float64Array(k);
  pos = readVarints(buf, pos, k, n - 1, 'symbol counts', counts);
  let total = 0;
  for (let i = 0; i < k; i++) total += ++counts[i]; // k <= 2^16 counts <= 2^32: exact
  if (total !== n) throw bad(`histogram sums to ${total}, expected ${n} symbols`);
  return { symbols, counts, size: pos };
}

/** The bitmap symbol set: ceil(alphabet / 8) bytes, exactly k bits set, none beyond the alphabet. */
function readBitmap(buf, pos, k, alphabet, symbols) {
  const len = (alphabet + 7) >> 3;
  if (buf.length - pos < len) throw bad('symbol bitmap truncated');
  let j = 0;
  for (let b = 0; b < 8 * len; b++) {
    if ((buf[pos + (b >> 3)] >> (b & 7)) & 1) {
      if (b >= alphabet) throw bad('symbol bitmap has bits set beyond the alphabet');
      if (j < k) symbols[j] = b;
      j++;
    }
  }
  if (j !== k) throw bad(`symbol bitmap has ${j} symbols, expected ${k}`);
  return pos + len;
}

// ------------------------------------------------------------------------------------------------ the model

/**
 * constriction's fast_quantized_cdf at 24 bits (float64, as the Rust code): free = 2^24 - k,
 * scale = free / sum(counts), left_i = trunc(cum_i * scale) + i, left_k = 2^24. Every probability
 * left_{i+1} - left_i is >= 1.
 */
export function quantizedCdf(counts) {
  const k = counts.length;
  let norm = 0;
  for (let i = 0; i < k; i++) norm += counts[i]; // the sequential float64 sum, as Rust's iter().sum()
  const scale = (ONE_P - k) / norm;
  const cdf = new Uint32Array(k + 1);
  let cum = 0;
  for (let i = 0; i < k; i++) {
    cdf[i] = Math.trunc(cum * scale) + i;
    cum += counts[i];
  }
  cdf[k] = ONE_P;
  return cdf;
}

// ------------------------------------------------------------------------------------------------ decoding

/** The m little-endian u32 words at buf[pos..]. */
function readWords(buf, pos, m) {
  const words = allocate(Uint32Array, m);
  for (let i = 0, p = pos; i < m; i++, p += 4) {
    words[i] = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0;
  }
  return words;
}

/**
 * For the symbol search: bucket[b] = the symbol whose interval holds quantile b * 2^(24 - bits), for the
 * 2^bits + 1 buckets (bits ~ log2(4 k)); the symbol of a quantile in bucket b lies in [bucket[b], bucket[b + 1]].
 */
function symbolBuckets(cdf, bits) {
  const count = 2 ** bits;
  const step = ONE_P / count;
  const bucket = new Int32Array(count + 1);
  let i = 0;
  for (let b = 0; b <= count; b++) {
    const q = Math.min(b * step, ONE_P - 1);
    while (cdf[i + 1] <= q) i++;
    bucket[b] = i;
  }
  return bucket;
}

/**
 * n symbols decoded by constriction's AnsCoder from `words` with the model `cdf` (the used symbols `symbols`)
 * into `out`, and how often each symbol index occurred into `seen`; returns whether the coder is exactly
 * empty afterwards (AnsCoder.is_empty(): state 0, no word left).
 *
 * The words are popped from the end (a stack): the initial state is the last word, then state * 2^32 + the
 * next if words remain. One step: quantile = state mod 2^24, the symbol i with cdf[i] <= quantile < cdf[i+1],
 * state = (state >> 24) * p_i + (quantile - cdf[i]), then, if state < 2^32 and a word remains,
 * state = state * 2^32 + the next word.
 *
 * The 64-bit state is held as state = (a1 * 2^24 + a0) * 2^24 + q (a1 < 2^16, a0 and q < 2^24) and the products
 * are formed from 12-bit limbs, so that every value is an integer below 2^30: exact, and cheap for the engine.
 */
export function ansDecode(words, n, cdf, symbols, out, seen) {
  let pos = words.length;
  let a1 = 0;
  let a0 = 0;
  let q = 0;
  if (pos > 0) { // read_initial_state (the last word is non-zero: checked by the caller)
    const w = words[--pos];
    if (pos > 0) {
      const v = words[--pos];
      a1 = w >>> 16;
      a0 = ((w & 0xffff) << 8) | (v >>> 24);
      q = v & 0xffffff;
    } else {
      a0 = w >>> 24;
      q = w & 0xffffff;
    }
  }
  const k = cdf.length - 1;
  let bits = 2;
  while (2 ** bits < 4 * k && bits < PRECISION) bits++;
  const bucket = symbolBuckets(cdf, bits);
  const shift = PRECISION - bits;
  for (let s = 0; s < n; s++) {
    const b0 = q >>> shift;
    let a = bucket[b0]; // binary search in the bucket's range: the largest i with cdf[i] <= q
    let z = bucket[b0 + 1];
    while (a < z) {
      const mid = (a + z + 1) >> 1;
      if (cdf[mid] <= q) a = mid;
      else z = mid - 1;
    }
    const left = cdf[a];
    const p = cdf[a + 1] - left; // < 2^24 (k >= 2)
    out[s] = symbols[a];
    seen[a]++;
    // (a1 * 2^24 + a0) * p + (q - left), with a0 = x1 * 2^12 + x0 and p = p1 * 2^12 + p0
    const p1 = p >>> 12;
    const p0 = p & 0xfff;
    const x1 = a0 >>> 12;
    const x0 = a0 & 0xfff;
    const cross = x1 * p0 + x0 * p1; // < 2^25
    const low = x0 * p0 + (q - left) + ((cross & 0xfff) << 12); // < 2^26
    q = low & 0xffffff;
    const carry = x1 * p1 + (cross >>> 12) + (low >>> 24); // into the 2^24 place
    const hp = a1 * p1; // < 2^28
    const mixed = ((hp & 0xfff) << 12) + a1 * p0 + carry; // < 2^29
    a0 = mixed & 0xffffff;
    a1 = (hp >>> 12) + (mixed >>> 24);
    if (a1 === 0 && a0 < 256 && pos > 0) { // state < 2^32: shift in the next word
      const word = words[--pos];
      a1 = (a0 << 8) | (q >>> 16);
      a0 = ((q & 0xffff) << 8) | (word >>> 24);
      q = word & 0xffffff;
    }
  }
  return a1 === 0 && a0 === 0 && q === 0;
}

/**
 * entropy.decode_categorical: n symbols over [0, alphabet) from an encode_categorical payload, as a Uint16Array.
 * The ANS coder must end exactly empty and the symbols must have exactly the transmitted histogram.
 */
export function decodeCategorical(buf, n, alphabet) {
  const hist = readHistogram(buf, n, alphabet);
  const rest = buf.length - hist.size;
  const k = hist.symbols.length;
  const out = allocate(Uint16Array, n);
  if (k <= 1) {
    if (rest) throw bad(`${rest} unexpected bytes after the histogram`);
    if (k === 1) out.fill(hist.symbols[0]);
    return out;
  }
  if (rest === 0 || rest % 4) throw bad(`ANS data of ${rest} bytes (need a positive multiple of 4)`);
  const words = readWords(buf, hist.size, rest / 4);
  if (words[words.length - 1] === 0) throw bad('ANS data ends in a zero word');
  const seen = new Float64Array(k);
  const exhausted = ansDecode(words, n, quantizedCdf(hist.counts), hist.symbols, out, seen);
  if (!exhausted) throw bad(`ANS data not exhausted after ${n} symbols (wrong length or corrupt)`);
  for (let j = 0; j < k; j++) {
    if (seen[j] !== hist.counts[j]) throw bad('decoded symbols do not match the histogram');
  }
  return out;
}

// ------------------------------------------------------------------------------------------ fixed length

/**
 * entropy.unpack_fixed for bits <= 16: n symbols of `bits` bits, LSB first, from exactly ceil(n * bits / 8)
 * bytes with zero padding bits; a Uint16Array.
 */
export function unpackFixed(buf, n, bits) {
  const expected = Math.ceil((n * bits) / 8); // n * bits < 2^37: exact
  if (buf.length !== expected) {
    throw new SpixError(`corrupt fixed-length data: ${buf.length} bytes, expected ${expected} for ${n} symbols of ${bits} bits`);
  }
  const out = allocate(Uint16Array, n);
  if (n === 0) return out;
  const total = n * bits;
  if (total % 8 && buf[expected - 1] >> (total % 8)) {
    throw new SpixError('corrupt fixed-length data: nonzero padding bits');
  }
  let bit = 0; // a stream bit offset: < 2^37, so kept in a double
  const mask = (1 << bits) - 1;
  for (let i = 0; i < n; i++, bit += bits) {
    const byte = Math.floor(bit / 8);
    const off = bit % 8;
    // bits + off <= 23: three bytes hold the symbol (bytes past the end read as 0)
    const w = buf[byte] | ((buf[byte + 1] ?? 0) << 8) | ((buf[byte + 2] ?? 0) << 16);
    out[i] = (w >>> off) & mask;
  }
  return out;
}
