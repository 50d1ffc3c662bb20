// A .spix decoder for the browser: the same float32 model as Python's splatpix.codec.api.decode_bytes, bit for
// bit, from untrusted bytes. Plain ES modules, no dependencies.
//
// Which Python module each part mirrors:
//   container.js      codec/bitstream.py (read_spix), codec/registry.py (method ids, budget per Gaussian)
//   decode.js         codec/api.py (unpack: the memory budget, the metadata; dequantize: finiteness)
//   metadata.js       codec/bitstream.py (decode_metadata: Python's json.loads)
//   entropy.js        codec/entropy.py (histograms, constriction's ANS decoder, fixed-length symbols)
//   symbols.js        codec/symbols.py (chunks, colour payloads), codec/quantize.py (rvq_lookup)
//   quantize.js       codec/quantize.py (fp16 positions, dequant_uniform_rows)
//   positions.js      codec/positions.py (decode_grid_points)
//   tiers.js          codec/tiers.py (assign_tiers, tier_order)
//   gaussianimage.js  codec/methods/gaussianimage.py (method 0)
//   sga.js            codec/methods/sga.py (method 1)
// The byte layout is docs/format.md; its section "Decoding outside Python" describes this package.
//
// Every problem with the input raises a SpixError (one line); a file Python accepts decodes to the same
// arrays, one Python refuses is refused. Work and memory are bounded by what the header declares, checked
// against Python's default budget first (options: maxPixels, maxGaussians, maxMemory).

import { DEFAULT_LIMITS, METADATA, METHODS, checkedHeader, readContainer } from './container.js';
import { SpixError, corrupt } from './errors.js';
import { decodeGaussianImage } from './gaussianimage.js';
import { decodeMetadata } from './metadata.js';
import { allFinite } from './quantize.js';
import { decodeSga } from './sga.js';

export { SpixError } from './errors.js';

const DECODERS = { 0: decodeGaussianImage, 1: decodeSga };

/**
 * The header of a .spix file, cheaply (the first 25 bytes): {width, height, channels, methodId, method, n}.
 * Checks the magic, version, header CRC, image size, channel count and method id; not the budget or the
 * sections (decodeSpix does).
 */
export function readHeader(bytes) {
  const h = checkedHeader(bytes);
  return { width: h.width, height: h.height, channels: h.channels, methodId: h.methodId,
    method: METHODS[h.methodId].name, n: h.n };
}

/**
 * Decode a .spix file (Uint8Array): {width, height, channels, methodId, method, n, bytes, means (Float32Array
 * 2N: normalised u, v), cov (Float32Array 3N: Cholesky l11, l21, l22 in native pixels), colours (Float32Array
 * C*N, (N, C) row-major), metadata (object or null)}. `options`: maxPixels, maxGaussians, maxMemory (bytes;
 * compared with N times the method's decoder bytes per Gaussian), Python's defaults if not given.
 */
export function decodeSpix(bytes, options = {}) {
  const limits = { ...DEFAULT_LIMITS, ...options };
  const { header, sections } = readContainer(bytes, limits);
  const method = METHODS[header.methodId];
  const need = header.n * method.decodeBytesPerGaussian;
  if (need > limits.maxMemory) {
    throw new SpixError(`decoding its ${header.n} Gaussians needs about ${mib(need)}, over the memory budget of `
      + `${mib(limits.maxMemory)}`);
  }
  const metadata = sections.has(METADATA) ? decodeMetadata(sections.get(METADATA)) : null;
  const model = DECODERS[header.methodId](header, sections);
  for (const [what, values] of [['positions', model.means], ['covariances', model.cov], ['colours', model.colours]]) {
    if (!allFinite(values)) throw corrupt(`the ${what} decode to non-finite values`);
  }
  return {
    width: header.width, height: header.height, channels: header.channels, methodId: header.methodId,
    method: method.name, n: header.n, bytes: bytes.length, ...model, metadata,
  };
}

function mib(n) {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}
