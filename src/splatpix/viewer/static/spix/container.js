// The .spix container: fixed header + CRC-protected typed sections.
// Mirrors splatpix/codec/bitstream.py (read_spix) and the registry's method ids (splatpix/codec/registry.py);
// byte layout: docs/format.md, "Layout".
//
// Every length is checked against the bytes that remain before anything is sliced, both CRCs are verified,
// and every problem is a SpixError, as Python's SplatpixError.

import { SpixError, corrupt } from './errors.js';

export const FORMAT_VERSION = 1;
export const HEADER_SIZE = 25;
export const SECTION_HEADER_SIZE = 11;

// Section type ids (bitstream.py)
export const POSITIONS = 1;
export const COVARIANCE = 2;
export const COV_QUANT_PARAMS = 3;
export const COLOUR_INDICES = 4;
export const CODEBOOKS = 5;
export const METADATA = 6;
export const GRID_POSITIONS = 7;
export const COV_TIERS = 8;
export const COLOUR_SCALAR = 9;
export const SECTION_NAMES = {
  1: 'POSITIONS', 2: 'COVARIANCE', 3: 'COV_QUANT_PARAMS', 4: 'COLOUR_INDICES', 5: 'CODEBOOKS', 6: 'METADATA',
  7: 'GRID_POSITIONS', 8: 'COV_TIERS', 9: 'COLOUR_SCALAR',
};
const FLAG_OPTIONAL = 0x01;
const KNOWN_FLAGS = FLAG_OPTIONAL;

/** The registered methods (registry.py): header id -> name and the decoder's bytes per Gaussian (budget). */
export const METHODS = {
  0: { name: 'gaussianimage', decodeBytesPerGaussian: 128 },
  1: { name: 'sga', decodeBytesPerGaussian: 192 },
};

/** Python's defaults (bitstream.DEFAULT_MAX_PIXELS / DEFAULT_MAX_GAUSSIANS, api.DEFAULT_MAX_MEMORY). */
export const DEFAULT_LIMITS = Object.freeze({ maxPixels: 100_000_000, maxGaussians: 50_000_000, maxMemory: 2 ** 31 });

const CHANNELS = [1, 3, 4];
const MAGIC = [0x53, 0x50, 0x49, 0x58]; // "SPIX"

// ------------------------------------------------------------------------------------------------ CRC-32

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let j = 0; j < 8; j++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** zlib.crc32(bytes[start:end], seed) (ISO-HDLC / zlib / PNG CRC). */
export function crc32(bytes, start, end, seed = 0) {
  let c = ~seed;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// ------------------------------------------------------------------------------------------------ reading

export function u16(b, p) {
  return b[p] | (b[p + 1] << 8);
}

export function u32(b, p) {
  return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
}

function checkBytes(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('decodeSpix/readHeader expect a Uint8Array');
}

/**
 * The fixed header: {width, height, channels, methodId, method, n, sectionCount}. Checks the magic, the
 * version, the header CRC, the image size, the channel count and the method id (bitstream.read_spix, in its
 * order); not the budget (see readContainer).
 */
export function parseHeader(bytes) {
  checkBytes(bytes);
  const size = bytes.length;
  if (size === 0) throw new SpixError('empty data, not a .spix file');
  for (let i = 0; i < Math.min(size, 4); i++) {
    if (bytes[i] !== MAGIC[i]) throw new SpixError('not a .spix file (bad magic)');
  }
  if (size < 5) throw corrupt(`header truncated (${size} bytes, need ${HEADER_SIZE})`);
  const version = bytes[4];
  if (version > FORMAT_VERSION) {
    throw new SpixError(`.spix format version ${version} needs a newer splatpix (this one reads version ${FORMAT_VERSION})`);
  }
  if (version === 0) throw corrupt('invalid format version 0');
  if (size < HEADER_SIZE) throw corrupt(`header truncated (${size} bytes, need ${HEADER_SIZE})`);
  if (crc32(bytes, 0, 21) !== u32(bytes, 21)) throw corrupt('header CRC mismatch');
  const width = u32(bytes, 5);
  const height = u32(bytes, 9);
  const channels = bytes[13];
  const methodId = bytes[14];
  const n = u32(bytes, 15);
  const sectionCount = u16(bytes, 19);
  if (width === 0 || height === 0) throw corrupt(`zero image size (${width}x${height})`);
  return { width, height, channels, methodId, n, sectionCount };
}

function checkMethod(h) {
  if (!CHANNELS.includes(h.channels)) throw corrupt(`unsupported channel count ${h.channels}`);
  if (!(h.methodId in METHODS)) {
    throw new SpixError(`.spix method id ${h.methodId} is unknown; it needs a newer splatpix`);
  }
}

/** readHeader's checks: parseHeader, the channel count and the method id. */
export function checkedHeader(bytes) {
  const h = parseHeader(bytes);
  checkMethod(h);
  return h;
}

/**
 * bitstream.read_spix: the header and the payloads (subarrays) of the sections this version understands, by
 * type id; unknown optional sections are skipped, unknown required ones refused. `limits`: maxPixels,
 * maxGaussians (checked before any section is read).
 */
export function readContainer(bytes, limits) {
  const h = parseHeader(bytes);
  const pixels = h.width * h.height; // < 2^64: a double, rounded; the comparison with a limit <= 2^53 is exact
  if (pixels > limits.maxPixels) {
    throw new SpixError(`image too large (${h.width}x${h.height} = ${pixels} pixels; the limit is ${limits.maxPixels})`);
  }
  checkMethod(h);
  if (h.n > limits.maxGaussians) {
    throw new SpixError(`too many Gaussians (${h.n}; the limit is ${limits.maxGaussians})`);
  }
  const size = bytes.length;
  let pos = HEADER_SIZE;
  if (h.sectionCount * SECTION_HEADER_SIZE > size - pos) {
    throw corrupt(`${h.sectionCount} sections announced but only ${size - pos} bytes follow the header`);
  }
  const sections = new Map();
  const seen = new Set();
  for (let index = 0; index < h.sectionCount; index++) {
    const where = `section ${index}`;
    if (size - pos < SECTION_HEADER_SIZE) throw corrupt(`${where}: header truncated`);
    const type = u16(bytes, pos);
    const flags = bytes[pos + 2];
    const length = u32(bytes, pos + 3);
    const start = pos + SECTION_HEADER_SIZE;
    if (length > size - start) {
      throw corrupt(`payload of ${where} truncated (${length} bytes announced, ${size - start} left)`);
    }
    const end = start + length;
    // the section CRC covers its 7 header bytes, then the payload
    if (crc32(bytes, start, end, crc32(bytes, pos, pos + 7)) !== u32(bytes, pos + 7)) {
      throw corrupt(`${where}: CRC mismatch`);
    }
    pos = end;
    if (type === 0) throw corrupt(`${where}: invalid section type 0`);
    if (seen.has(type)) throw corrupt(`${where}: duplicate section type ${type}`);
    seen.add(type);
    const understood = type in SECTION_NAMES && !(flags & ~KNOWN_FLAGS);
    if (understood) {
      sections.set(type, bytes.subarray(start, end));
    } else if (!(flags & FLAG_OPTIONAL)) {
      const what = type in SECTION_NAMES ? `flags 0x${flags.toString(16).padStart(2, '0')}` : `type ${type}`;
      throw new SpixError(`.spix file has a required section (${what}) that needs a newer splatpix`);
    }
  }
  if (pos !== size) throw corrupt(`${size - pos} unexpected bytes after the last section`);
  return { header: h, sections };
}

/** symbols.require_sections: a one-line error naming the first required section the file lacks. */
export function requireSections(sections, required) {
  for (const type of required) {
    if (!sections.has(type)) throw corrupt(`missing section ${SECTION_NAMES[type]}`);
  }
}
