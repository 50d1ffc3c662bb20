// Test driver of the JavaScript .spix decoder (src/splatpix/viewer/static/spix/), run by
// tests/test_viewer_decode.py with node. Many cases per process, so that a test starts node once.
//
//   node spix_driver.mjs spix IN OUT         decode each record of IN as a .spix file
//   node spix_driver.mjs categorical IN OUT  decode each record of IN as an entropy payload: u32 n, u32 alphabet,
//                                            then the payload (entropy.js decodeCategorical)
//   node spix_driver.mjs time FILE [REPEATS] print {"ms_first", "ms_median", "n", "method"} as JSON
//
// IN: u32 count, then count x (u32 length, bytes). OUT: per record u8 status (0 decoded, 1 SpixError, 2 any
// other exception), u32 length + JSON (the header fields and metadata, or {"error", "type"}), u32 length + raw
// little-endian data (spix: means, cov, colours as float32; categorical: the symbols as uint16).

import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import { SpixError, decodeSpix, readHeader } from '../../src/splatpix/viewer/static/spix/decode.js';
import { decodeCategorical } from '../../src/splatpix/viewer/static/spix/entropy.js';

function readRecords(path) {
  const buf = readFileSync(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const count = view.getUint32(0, true);
  const out = [];
  let pos = 4;
  for (let i = 0; i < count; i++) {
    const len = view.getUint32(pos, true);
    out.push(new Uint8Array(buf.buffer, buf.byteOffset + pos + 4, len));
    pos += 4 + len;
  }
  return out;
}

function u32(v) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}

/** JSON with non-finite numbers (Python's NaN / Infinity in metadata) as {"__float__": "NaN"}. */
function toJson(value) {
  return JSON.stringify(value, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? { __float__: String(v) } : v));
}

function bytesOf(typed) {
  return Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength);
}

function record(status, json, data) {
  const text = Buffer.from(toJson(json), 'utf8');
  return [Buffer.from([status]), u32(text.length), text, u32(data.length), data];
}

function failure(e) {
  const status = e instanceof SpixError ? 1 : 2;
  return record(status, { error: String(e && e.message), type: e && e.constructor && e.constructor.name,
    stack: status === 2 ? String(e && e.stack) : undefined }, Buffer.alloc(0));
}

function decodeOne(bytes) {
  try {
    const r = decodeSpix(bytes);
    const h = readHeader(bytes);
    const json = { width: r.width, height: r.height, channels: r.channels, methodId: r.methodId, method: r.method,
      n: r.n, bytes: r.bytes, metadata: r.metadata, header: h };
    return record(0, json, Buffer.concat([bytesOf(r.means), bytesOf(r.cov), bytesOf(r.colours)]));
  } catch (e) {
    return failure(e);
  }
}

function categoricalOne(rec) {
  try {
    const view = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
    const out = decodeCategorical(rec.subarray(8), view.getUint32(0, true), view.getUint32(4, true));
    return record(0, { n: out.length }, bytesOf(out));
  } catch (e) {
    return failure(e);
  }
}

function timeOne(path, repeats) {
  const bytes = new Uint8Array(readFileSync(path));
  const times = [];
  let r;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    r = decodeSpix(bytes);
    times.push(performance.now() - t0);
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(JSON.stringify({ method: r.method, n: r.n, width: r.width, height: r.height, bytes: r.bytes,
    ms_first: times[0], ms_median: sorted[sorted.length >> 1], ms_min: sorted[0], repeats }));
}

const [mode, input, output] = process.argv.slice(2);
if (mode === 'time') {
  timeOne(input, Number(output ?? 20));
} else {
  const one = mode === 'spix' ? decodeOne : mode === 'categorical' ? categoricalOne : null;
  if (!one) throw new Error(`unknown mode ${mode}`);
  const parts = [];
  for (const rec of readRecords(input)) parts.push(...one(rec));
  writeFileSync(output, Buffer.concat(parts));
}
