// The METADATA section: a UTF-8 JSON object, at most 1 MiB.
// Mirrors splatpix/codec/bitstream.py (decode_metadata), i.e. Python's `bytes.decode("utf-8")` and
// `json.loads`, which accept a little more than JSON.parse does and refuse a little more: NaN, Infinity and
// -Infinity are values, a leading byte-order mark is an error, an integer literal of more than 4300 digits is
// an error (Python's int conversion limit) and so is deep nesting (Python's recursion limit; here: more than
// 900 levels, where Python's exact limit depends on its call stack). Large integers become (rounded) numbers.

import { corrupt } from './errors.js';

export const MAX_METADATA_BYTES = 1 << 20;
const MAX_DEPTH = 900;
const MAX_INT_DIGITS = 4300;

/** bitstream.decode_metadata: the parsed object of a METADATA payload (Uint8Array). */
export function decodeMetadata(payload) {
  if (payload.length > MAX_METADATA_BYTES) throw corrupt(`metadata too large (${payload.length} bytes)`);
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(payload);
  } catch {
    throw corrupt('metadata is not valid UTF-8 JSON');
  }
  const value = new PyJsonParser(text).document();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw corrupt('metadata is not a JSON object');
  }
  return value;
}

const ESCAPES = new Map([['"', '"'], ['\\', '\\'], ['/', '/'], ['b', '\b'], ['f', '\f'], ['n', '\n'], ['r', '\r'],
  ['t', '\t']]);

class ParseError extends Error {}

/** A recursive-descent parser of the language Python's json.loads accepts (its C scanner's grammar). */
class PyJsonParser {
  constructor(text) {
    this.s = text;
    this.i = 0;
  }

  document() {
    try {
      this.ws();
      const value = this.value(0);
      this.ws();
      if (this.i !== this.s.length) throw new ParseError('extra data');
      return value;
    } catch (e) {
      if (e instanceof ParseError) throw corrupt('metadata is not valid UTF-8 JSON');
      throw e;
    }
  }

  ws() {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.i++;
    }
  }

  literal(word, value) {
    if (!this.s.startsWith(word, this.i)) throw new ParseError('expecting value');
    this.i += word.length;
    return value;
  }

  value(depth) {
    const c = this.s[this.i];
    switch (c) {
      case '"': return this.string();
      case '{': return this.object(depth + 1);
      case '[': return this.array(depth + 1);
      case 'n': return this.literal('null', null);
      case 't': return this.literal('true', true);
      case 'f': return this.literal('false', false);
      case 'N': return this.literal('NaN', NaN);
      case 'I': return this.literal('Infinity', Infinity);
      case '-':
        if (this.s.startsWith('-Infinity', this.i)) return this.literal('-Infinity', -Infinity);
        return this.number();
      default: return this.number();
    }
  }

  object(depth) {
    if (depth > MAX_DEPTH) throw new ParseError('too deep');
    const out = {};
    this.i++;
    this.ws();
    if (this.s[this.i] === '}') { this.i++; return out; }
    for (;;) {
      if (this.s[this.i] !== '"') throw new ParseError('expecting property name');
      const key = this.string();
      this.ws();
      if (this.s[this.i] !== ':') throw new ParseError("expecting ':'");
      this.i++;
      this.ws();
      // an own property even for "__proto__"; a repeated key keeps the last value, as a Python dict
      Object.defineProperty(out, key, { value: this.value(depth), enumerable: true, writable: true, configurable: true });
      this.ws();
      const sep = this.s[this.i++];
      if (sep === '}') return out;
      if (sep !== ',') throw new ParseError("expecting ',' or '}'");
      this.ws();
    }
  }

  array(depth) {
    if (depth > MAX_DEPTH) throw new ParseError('too deep');
    const out = [];
    this.i++;
    this.ws();
    if (this.s[this.i] === ']') { this.i++; return out; }
    for (;;) {
      out.push(this.value(depth));
      this.ws();
      const sep = this.s[this.i++];
      if (sep === ']') return out;
      if (sep !== ',') throw new ParseError("expecting ',' or ']'");
      this.ws();
    }
  }

  /** -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)? (a '.' or exponent without digits ends the number before it). */
  number() {
    const s = this.s;
    const begin = this.i;
    let i = this.i;
    const digit = (j) => j < s.length && s.charCodeAt(j) >= 0x30 && s.charCodeAt(j) <= 0x39;
    if (s[i] === '-') i++;
    if (s[i] === '0') i++;
    else if (digit(i)) while (digit(i)) i++;
    else throw new ParseError('expecting value');
    const intDigits = i - begin - (s[begin] === '-' ? 1 : 0);
    let isFloat = false;
    if (s[i] === '.' && digit(i + 1)) {
      isFloat = true;
      i += 1;
      while (digit(i)) i++;
    }
    if (s[i] === 'e' || s[i] === 'E') {
      let j = i + 1;
      if (s[j] === '+' || s[j] === '-') j++;
      if (digit(j)) {
        isFloat = true;
        while (digit(j)) j++;
        i = j;
      }
    }
    if (!isFloat && intDigits > MAX_INT_DIGITS) throw new ParseError('integer too long');
    this.i = i;
    return Number(s.slice(begin, i));
  }

  string() {
    const s = this.s;
    let i = this.i + 1;
    let out = '';
    let run = i; // start of the current run of plain characters
    for (;;) {
      if (i >= s.length) throw new ParseError('unterminated string');
      const c = s.charCodeAt(i);
      if (c === 0x22) break; // '"'
      if (c < 0x20) throw new ParseError('control character in string');
      if (c !== 0x5c) { i++; continue; } // not '\\'
      out += s.slice(run, i);
      const e = s[i + 1];
      const simple = ESCAPES.get(e);
      if (simple !== undefined) {
        out += simple;
        i += 2;
      } else if (e === 'u') {
        const hex = s.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new ParseError('invalid \\uXXXX escape');
        out += String.fromCharCode(parseInt(hex, 16)); // surrogate pairs join as UTF-16 by themselves
        i += 6;
      } else {
        throw new ParseError('invalid escape');
      }
      run = i;
    }
    out += s.slice(run, i);
    this.i = i + 1;
    return out;
  }
}
