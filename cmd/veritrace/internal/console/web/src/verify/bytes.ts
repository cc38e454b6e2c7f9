// Byte helpers for verification: strict hex and base64, concatenation,
// constant-shape comparison. Nothing here trusts its input.

const HEX = "0123456789abcdef";

export function toHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += HEX[x >> 4] + HEX[x & 15];
  return s;
}

/** Decodes hex (either case); throws on odd length or a bad digit. */
export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0) throw new Error(`hex of odd length ${s.length}`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexDigit(s.charCodeAt(2 * i));
    const lo = hexDigit(s.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw new Error(`not hex: ${JSON.stringify(s.slice(0, 16))}`);
    out[i] = (hi << 4) | lo;
  }
  return out;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/**
 * Decodes standard base64 with padding; the length must be a multiple of
 * 4. Strict (the default) also wants the unused bits of the last character
 * zero, so that every byte string has one spelling, as Go's
 * base64.StdEncoding.Strict(); lenient is Go's base64.StdEncoding.
 */
export function fromBase64(s: string, strict = true): Uint8Array {
  if (s.length % 4 !== 0) throw new Error("base64 length is not a multiple of 4");
  let pad = 0;
  if (s.endsWith("==")) pad = 2;
  else if (s.endsWith("=")) pad = 1;
  const n = (s.length / 4) * 3 - pad;
  const out = new Uint8Array(n);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const q = [0, 0, 0, 0];
    for (let j = 0; j < 4; j++) {
      const c = s.charCodeAt(i + j);
      if (c === 61 /* = */ && i + 4 === s.length && j >= 4 - pad) {
        q[j] = 0;
        continue;
      }
      const v = c < 128 ? B64_INDEX[c] : -1;
      if (v < 0) throw new Error("not base64");
      q[j] = v;
    }
    const x = (q[0] << 18) | (q[1] << 12) | (q[2] << 6) | q[3];
    if (o < n) out[o++] = x >> 16;
    if (o < n) out[o++] = (x >> 8) & 255;
    if (o < n) out[o++] = x & 255;
    if (strict && i + 4 === s.length && ((pad === 1 && (x & 0xff) !== 0) || (pad === 2 && (x & 0xffff) !== 0))) {
      throw new Error("non-canonical base64 padding bits");
    }
  }
  return out;
}

export function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 3) {
    const x = (b[i] << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0);
    s += B64[x >> 18] + B64[(x >> 12) & 63];
    s += i + 1 < b.length ? B64[(x >> 6) & 63] : "=";
    s += i + 2 < b.length ? B64[x & 63] : "=";
  }
  return s;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export const utf8 = new TextEncoder();
// Strict: invalid UTF-8 throws, and a byte-order mark is kept (so the
// strict JSON parser refuses it, as the Go verifier does).
export const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** SHA-256 with WebCrypto. */
export async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  const data = parts.length === 1 ? parts[0] : concat(...parts);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
}
