// Method 0, gaussianimage: fp16 positions, a uniform covariance quantiser, residual-VQ colours.
// Mirrors splatpix/codec/methods/gaussianimage.py (unpack_sections), the checks of QuantizedGaussians
// (codec/quantize.py) and its dequantize(); byte layout: docs/format.md, "Section payloads of the GaussianImage
// codec (method 0)".

import { COVARIANCE, COV_QUANT_PARAMS, CODEBOOKS, COLOUR_INDICES, POSITIONS, requireSections } from './container.js';
import { allocate, corrupt } from './errors.js';
import { halfToFloat, dequantRows } from './quantize.js';
import { MODE_ENTROPY, MODE_FIXED, readChunks, readColourPayloads, rvqLookup, uncode } from './symbols.js';

/** The float32 model of a gaussianimage file's sections: {means, cov, colours}. */
export function decodeGaussianImage(header, sections) {
  requireSections(sections, [POSITIONS, COV_QUANT_PARAMS, COVARIANCE, COLOUR_INDICES, CODEBOOKS]);
  const { n, channels } = header;
  const means = readPositions(sections.get(POSITIONS), n);
  const { bits, scale, offset } = readQuantiser(sections.get(COV_QUANT_PARAMS));
  const symbols = readCovariance(sections.get(COVARIANCE), n, bits);
  const colour = readColourPayloads(sections, n, channels);
  return { means, cov: dequantRows(symbols, null, scale, offset, n), colours: rvqLookup(colour, n, channels) };
}

/** POSITIONS: mode byte 0, then N (u, v) fp16 pairs; none may be infinite or NaN. */
function readPositions(p, n) {
  if (p.length !== 1 + 4 * n || p[0] !== 0) throw corrupt('positions section has the wrong size or mode');
  const means = allocate(Float32Array, 2 * n);
  for (let i = 0; i < 2 * n; i++) {
    const h = p[1 + 2 * i] | (p[2 + 2 * i] << 8);
    if ((h & 0x7c00) === 0x7c00) throw corrupt('invalid quantised model: non-finite position');
    means[i] = halfToFloat(h);
  }
  return means;
}

/** COV_QUANT_PARAMS: cov_bits (1-16), 3 float32 steps (finite, > 0), 3 float32 offsets (finite). */
function readQuantiser(qp) {
  if (qp.length !== 25 || qp[0] < 1 || qp[0] > 16) {
    throw corrupt('covariance quantiser parameters have the wrong size or bit depth');
  }
  const view = new DataView(qp.buffer, qp.byteOffset, qp.byteLength);
  const vals = new Float32Array(6);
  for (let i = 0; i < 6; i++) vals[i] = view.getFloat32(1 + 4 * i, true);
  const scale = vals.subarray(0, 3);
  const offset = vals.subarray(3, 6);
  if (!vals.every(Number.isFinite)) throw corrupt('invalid quantised model: non-finite covariance quantiser');
  if (!scale.every((v) => v > 0)) throw corrupt('invalid quantised model: cov_scale must be positive');
  return { bits: qp[0], scale, offset };
}

/** COVARIANCE: policy byte, then the chunks of l11, l21, l22; the symbols as (N, 3) row-major. */
function readCovariance(cv, n, bits) {
  if (cv.length < 1 || (cv[0] !== MODE_FIXED && cv[0] !== MODE_ENTROPY)) {
    throw corrupt('covariance section has an unknown mode');
  }
  const chunks = readChunks(cv.subarray(1), 3, 'covariance section');
  const symbols = allocate(Uint16Array, 3 * n);
  if (n) { // with no Gaussians Python reads the chunks' framing only
    for (let j = 0; j < 3; j++) {
      const s = uncode(chunks[j], n, 2 ** bits, cv[0]);
      for (let i = 0; i < n; i++) symbols[3 * i + j] = s[i];
    }
  }
  return symbols;
}
