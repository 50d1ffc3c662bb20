// Grid positions of method sga: Gaussian centres as a set of grid points.
// Mirrors splatpix/codec/positions.py (decode_grid_points, _points_kernel, _read_varint); byte layout:
// docs/format.md, "Grid positions payload (method sga)".
//
// Cell codes are below 2^48 and raw values below 2^47, so every code is an exact integer in a double; only the
// Morton bit shuffles use 32-bit integer operations, on halves of the code.

import { decodeCategorical } from './entropy.js';
import { SpixError, allocate, corrupt } from './errors.js';

const ORDER_MORTON = 0;
const ORDER_RASTER = 1;
const LEN_SYMBOLS = 64; // bit lengths 0..63
const MAX_LENGTH_BYTES = 5; // the symbol stream length is a varint of at most 5 bytes
const MAX_CELLS = 2 ** 46;
const POW2 = Float64Array.from({ length: 64 }, (_, i) => 2 ** i);

function bad(msg) {
  return corrupt(`grid positions: ${msg}`);
}

/** The number of bits of a non-negative integer below 2^53 (0 for 0). */
export function bitlen(v) {
  let b = 0;
  while (v >= 2 ** b) b++;
  return b;
}

/** positions._read_varint: a canonical LEB128 length of at most 5 bytes; [value, new pos]. */
function readLength(data, pos) {
  let value = 0;
  for (let i = 0; i < MAX_LENGTH_BYTES; i++) {
    if (pos + i >= data.length) throw bad('length field truncated');
    const byte = data[pos + i];
    value += (byte & 0x7f) * 2 ** (7 * i);
    if (byte < 0x80) {
      if (i && byte === 0) throw bad('non-canonical length field');
      return [value, pos + i + 1];
    }
  }
  throw bad('length field too long');
}

/** positions._code_space: the number of cell codes of the order. */
function codeSpace(order, lx, ly) {
  return order === ORDER_RASTER ? lx * ly : 2 ** (bitlen(lx - 1) + bitlen(ly - 1));
}

/** Bits 2i of a 32-bit value moved to bits i (positions._compact on 32 bits). */
function compact32(v) {
  v &= 0x55555555;
  v = (v | (v >>> 1)) & 0x33333333;
  v = (v | (v >>> 2)) & 0x0f0f0f0f;
  v = (v | (v >>> 4)) & 0x00ff00ff;
  return (v | (v >>> 8)) & 0x0000ffff;
}

/**
 * positions.decode_grid_points: the n grid points (x, y) of a payload on an lx x ly grid, in cell-code order,
 * as an Int32Array (N, 2) row-major (a Float64Array if lx or ly exceeds 2^31).
 */
export function decodeGridPoints(data, n, lx, ly) {
  if (lx * ly > MAX_CELLS) throw bad(`grid of ${lx} x ${ly} levels is too large`);
  if (n === 0) {
    if (data.length) throw bad(`${data.length} bytes for no Gaussians`);
    return new Int32Array(0);
  }
  if (!data.length) throw corrupt('grid positions payload is empty');
  const scheme = data[0];
  const order = scheme & 3;
  const t = (scheme >> 2) & 3;
  if (scheme >> 4 || (order !== ORDER_MORTON && order !== ORDER_RASTER)) {
    throw bad(`unknown scheme byte ${scheme}`);
  }
  let [catLen, pos] = readLength(data, 1);
  if (catLen > data.length - pos) throw bad(`symbol stream of ${catLen} bytes exceeds the payload`);
  let sym;
  try {
    sym = decodeCategorical(data.subarray(pos, pos + catLen), n, LEN_SYMBOLS << t);
  } catch (e) {
    if (e instanceof SpixError) throw bad(e.message);
    throw e;
  }
  pos += catLen;
  const space = codeSpace(order, lx, ly);
  const raw = data.subarray(pos);
  checkSymbols(sym, t, raw, space);
  return points(sym, t, raw, order, lx, ly, space);
}

/**
 * The first pass of positions._points_kernel: every symbol canonical (bit length <= bitlen(space - 1), its top
 * bits < 2^min(L - 1, t)) and the raw bits exactly ceil(B / 8) bytes with zero padding.
 */
function checkSymbols(sym, t, raw, space) {
  const maxLen = bitlen(space - 1);
  const tmask = (1 << t) - 1;
  let total = 0;
  for (let i = 0; i < sym.length; i++) {
    const length = sym[i] >> t;
    const mb = Math.max(length - 1, 0);
    const tb = Math.min(mb, t);
    if (length > maxLen || (sym[i] & tmask) >> tb) throw bad('invalid gap symbol');
    total += mb - tb;
  }
  const expected = Math.ceil(total / 8);
  if (raw.length !== expected) throw bad(`${raw.length} bytes of raw bits, expected ${expected}`);
  if (total % 8 && raw[expected - 1] >> (total % 8)) throw bad('nonzero padding bits');
}

/** The second pass of positions._points_kernel: each gap's raw bits (LSB first), the running code, its cell. */
function points(sym, t, raw, order, lx, ly, space) {
  const n = sym.length;
  // int32 coordinates when they fit (all real images): smaller, and small integers keep the tier search fast
  const out = allocate(lx <= 2 ** 31 && ly <= 2 ** 31 ? Int32Array : Float64Array, 2 * n);
  const tmask = (1 << t) - 1;
  const bx = bitlen(lx - 1);
  const by = bitlen(ly - 1);
  const m = Math.min(bx, by);
  const lowSpan = 2 ** (2 * m);
  const highScale = 2 ** m;
  let byte = 0; // the raw bit position: byte index and bit offset
  let off = 0;
  let code = 0;
  for (let i = 0; i < n; i++) {
    const length = sym[i] >> t;
    if (length > 0) {
      const mb = length - 1;
      const tb = Math.min(mb, t);
      const rb = mb - tb;
      let v = 0;
      for (let got = 0; got < rb;) { // up to 47 bits, a byte's worth at a time
        const take = Math.min(8 - off, rb - got);
        v += ((raw[byte] >> off) & ((1 << take) - 1)) * POW2[got];
        got += take;
        off += take;
        if (off === 8) { off = 0; byte++; }
      }
      code += POW2[mb] + (sym[i] & tmask) * POW2[rb] + v; // each gap < 2^48: exact
    }
    if (code >= space) throw bad('cell codes outside the grid');
    let x;
    let y;
    if (order === ORDER_RASTER) {
      x = code % lx;
      y = (code - x) / lx;
    } else {
      const low = code % lowSpan; // the interleaved bits, < 2^46
      const lo32 = low % 2 ** 32;
      const hi = (low - lo32) / 2 ** 32;
      x = compact32(lo32) + compact32(hi) * 65536;
      y = compact32(lo32 >>> 1) + compact32(hi >>> 1) * 65536;
      const high = (code - low) / lowSpan; // the longer coordinate's remaining bits
      if (bx >= by) x += high * highScale;
      else y += high * highScale;
    }
    if (x >= lx || y >= ly) throw bad('point outside the grid');
    out[2 * i] = x;
    out[2 * i + 1] = y;
  }
  return out;
}
