// Method 1, sga: grid positions coded as a set, covariance tiers derived from them, scalar (COLOUR_SCALAR) or
// residual-VQ colours.
// Mirrors splatpix/codec/methods/sga.py (unpack_sections, _unpack_covariance, the checks of SGAQuantized and
// its dequantize()); byte layout: docs/format.md, "Section payloads of the structure-guided codec (method 1,
// sga)". Every per-Gaussian attribute is in the order in which GRID_POSITIONS decodes the centres.

import { readScalarColours } from './colours.js';
import {
  CODEBOOKS, COLOUR_INDICES, COLOUR_SCALAR, COVARIANCE, COV_TIERS, GRID_POSITIONS, requireSections, u32,
} from './container.js';
import { allocate, corrupt } from './errors.js';
import { decodeGridPoints } from './positions.js';
import { dequantRows } from './quantize.js';
import { MODE_ENTROPY, MODE_FIXED, readChunks, readColourPayloads, rvqLookup, uncode } from './symbols.js';
import { assignTiers, tierOrder } from './tiers.js';

const MAX_SUBDIV = 64;
const MAX_TIERS = 8;
const MAX_K = 64;
const TIER_SIZE = 25; // struct "<B3f3f"
const POLICY_CONDITIONAL = 2;
const MAX_CONTEXT_BITS = 4;

/** The float32 model of an sga file's sections: {means, cov, colours}. */
export function decodeSga(header, sections) {
  const scalar = sections.has(COLOUR_SCALAR);
  if (scalar && (sections.has(COLOUR_INDICES) || sections.has(CODEBOOKS))) {
    throw corrupt('both scalar colours and colour indices');
  }
  requireSections(sections, [GRID_POSITIONS, COV_TIERS, COVARIANCE, ...(scalar ? [] : [COLOUR_INDICES, CODEBOOKS])]);
  const { n, channels, width, height } = header;
  const p = sections.get(GRID_POSITIONS);
  if (p.length < 1 || p[0] < 1 || p[0] > MAX_SUBDIV) {
    throw corrupt('grid positions section is empty or has an invalid subdivision');
  }
  const lx = width * p[0] + 1;
  const ly = height * p[0] + 1;
  const grid = decodeGridPoints(p.subarray(1), n, lx, ly);
  const def = readTiers(sections.get(COV_TIERS));
  const tiers = assignTiers(grid, n, def.thresholds, def.k);
  const symbols = readCovariance(sections.get(COVARIANCE), tiers, def.bits);
  const colours = scalar ? readScalarColours(sections.get(COLOUR_SCALAR), n, channels)
    : rvqLookup(readColourPayloads(sections, n, channels), n, channels);
  return {
    means: gridMeans(grid, n, lx, ly),
    cov: dequantRows(symbols, tiers, def.scale, def.offset, n),
    colours,
  };
}

/** sga's means: float32(float64(q) / float64(L - 1)) per axis. */
function gridMeans(grid, n, lx, ly) {
  const means = allocate(Float32Array, 2 * n);
  for (let i = 0; i < n; i++) {
    means[2 * i] = grid[2 * i] / (lx - 1);
    means[2 * i + 1] = grid[2 * i + 1] / (ly - 1);
  }
  return means;
}

/**
 * COV_TIERS: k (1-64), T (1-8), T - 1 ascending u64 thresholds below 2^62, then per tier bits (1-16), 3 float32
 * steps (finite, > 0) and 3 float32 offsets (finite). {k, thresholds (BigInt), bits, scale, offset (T, 3)}.
 */
function readTiers(td) {
  if (td.length < 2 || td[0] < 1 || td[0] > MAX_K || td[1] < 1 || td[1] > MAX_TIERS) {
    throw corrupt('covariance tier section is truncated or out of range');
  }
  const k = td[0];
  const t = td[1];
  if (td.length !== 2 + 8 * (t - 1) + TIER_SIZE * t) throw corrupt('covariance tier section has the wrong size');
  const view = new DataView(td.buffer, td.byteOffset, td.byteLength);
  const thresholds = [];
  for (let i = 0; i < t - 1; i++) thresholds.push(view.getBigUint64(2 + 8 * i, true));
  if (thresholds.some((v, i) => v >= 2n ** 62n || (i > 0 && v < thresholds[i - 1]))) {
    throw corrupt('covariance tier thresholds are invalid');
  }
  const bits = [];
  const scale = new Float32Array(3 * t);
  const offset = new Float32Array(3 * t);
  for (let i = 0; i < t; i++) {
    const at = 2 + 8 * (t - 1) + TIER_SIZE * i;
    const vals = [];
    for (let j = 0; j < 6; j++) vals.push(view.getFloat32(at + 1 + 4 * j, true));
    if (td[at] < 1 || td[at] > 16 || !vals.every(Number.isFinite) || !vals.slice(0, 3).every((v) => v > 0)) {
      throw corrupt('covariance tier quantiser is invalid');
    }
    bits.push(td[at]);
    scale.set(vals.slice(0, 3), 3 * i);
    offset.set(vals.slice(3), 3 * i);
  }
  return { k, thresholds, bits, scale, offset };
}

/**
 * sga._unpack_covariance: the (N, 3) symbols (row-major, file order) of a COVARIANCE payload. The chunks of
 * tier i hold its Gaussians' symbols in file order, i.e. rows start[i]..start[i + 1] of the tier-sorted order.
 */
function readCovariance(cv, tiers, bits) {
  const n = tiers.length;
  const t = bits.length;
  if (cv.length < 1 || (cv[0] !== MODE_FIXED && cv[0] !== MODE_ENTROPY && cv[0] !== POLICY_CONDITIONAL)) {
    throw corrupt('covariance section has an unknown mode');
  }
  const { order, start } = tierOrder(tiers, t);
  const out = allocate(Uint16Array, 3 * n);
  // the symbols of row r of the tier-sorted order belong to Gaussian order[r]
  const put = (r, j, v) => { out[3 * order[r] + j] = v; };
  if (cv[0] !== POLICY_CONDITIONAL) {
    const chunks = readChunks(cv.subarray(1), 3 * t, 'covariance section');
    for (let i = 0; i < t; i++) {
      for (let j = 0; j < 3; j++) {
        const sym = uncode(chunks[3 * i + j], start[i + 1] - start[i], 2 ** bits[i], cv[0]);
        for (let r = 0; r < sym.length; r++) put(start[i] + r, j, sym[r]);
      }
    }
    return out;
  }
  readContextCoded(cv, start, bits, put);
  return out;
}

/**
 * Policy 2 (context coding): T context widths c_i <= min(bits_i, 4), then per tier the l11 chunk and, for l21
 * and then l22, one chunk per non-empty context l11 >> (bits_i - c_i) in increasing order, each holding that
 * context's Gaussians in file order. No trailing bytes.
 */
function readContextCoded(cv, start, bits, put) {
  const t = bits.length;
  if (cv.length < 1 + t) throw corrupt('covariance section truncated');
  const widths = Array.from(cv.subarray(1, 1 + t));
  if (widths.some((w, i) => w > Math.min(bits[i], MAX_CONTEXT_BITS))) {
    throw corrupt('covariance context width out of range');
  }
  const rest = cv.subarray(1 + t);
  let pos = 0;
  const nextChunk = () => {
    if (pos + 4 > rest.length) throw corrupt('covariance section truncated');
    const length = u32(rest, pos);
    if (length > rest.length - pos - 4) throw corrupt(`covariance section chunk length ${length} exceeds the section`);
    const chunk = rest.subarray(pos + 4, pos + 4 + length);
    pos += 4 + length;
    return chunk;
  };
  for (let i = 0; i < t; i++) {
    const alphabet = 2 ** bits[i];
    const l11 = uncode(nextChunk(), start[i + 1] - start[i], alphabet, MODE_ENTROPY);
    for (let r = 0; r < l11.length; r++) put(start[i] + r, 0, l11[r]);
    const shift = bits[i] - widths[i];
    const ctx = l11.map((v) => v >> shift);
    // the tier's rows of each context in ascending row order, the contexts that occur ascending
    const { order: byCtx, start: cstart } = tierOrder(ctx, 2 ** widths[i]);
    for (let j = 1; j <= 2; j++) {
      for (let v = 0; v < 2 ** widths[i]; v++) {
        const count = cstart[v + 1] - cstart[v];
        if (count === 0) continue;
        const sym = uncode(nextChunk(), count, alphabet, MODE_ENTROPY);
        for (let r = 0; r < count; r++) put(start[i] + byCtx[cstart[v] + r], j, sym[r]);
      }
    }
  }
  if (pos !== rest.length) throw corrupt(`${rest.length - pos} trailing bytes in covariance section`);
}
