// The viewer's binary array message ("SPXA", splatpix/viewer/arrays.py): a JSON header and float32 arrays.
//   0  "SPXA" | 4  u32 L (JSON length, a multiple of 4) | 8  JSON {version, kind, width, height, channels, n,
//   arrays: [[name, count], ...]} | 8 + L  the float32 arrays (little-endian) in that order.

const MAGIC = [0x53, 0x50, 0x58, 0x41];

export class MessageError extends Error {}

export function parseMessage(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 8 || MAGIC.some((m, i) => bytes[i] !== m)) throw new MessageError('not a splatpix array message');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = dv.getUint32(4, true);
  if (len % 4 || 8 + len > bytes.length) throw new MessageError(`bad header length ${len}`);
  let meta;
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len)));
  } catch (e) {
    throw new MessageError(`the header is not JSON (${e.message})`);
  }
  const out = { ...meta };
  let pos = 8 + len;
  for (const [name, count] of meta.arrays) {
    if (pos + 4 * count > bytes.length) throw new MessageError(`array ${name} is truncated`);
    const a = new Float32Array(count);
    new Uint8Array(a.buffer).set(bytes.subarray(pos, pos + 4 * count));  // (little-endian hosts)
    out[name] = a;
    pos += 4 * count;
  }
  if (pos !== bytes.length) throw new MessageError('trailing bytes after the arrays');
  delete out.arrays;
  return out;
}

export function buildMessage(header, arrays) {
  const meta = { ...header, version: 1, arrays: arrays.map(([name, a]) => [name, a.length]) };
  let text = JSON.stringify(meta);
  while (new TextEncoder().encode(text).length % 4) text += ' ';
  const head = new TextEncoder().encode(text);
  let total = 8 + head.length;
  for (const [, a] of arrays) total += 4 * a.length;
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, head.length, true);
  out.set(head, 8);
  let pos = 8 + head.length;
  for (const [, a] of arrays) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, 4 * a.length), pos);
    pos += 4 * a.length;
  }
  return out;
}

export function toBase64(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
