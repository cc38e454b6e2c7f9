// A small, bounded zip reader for evidence bundles: the central directory
// (zip64 too), stored and deflated files, CRC-32 checked, nothing else (no
// encryption). Inflating uses the browser's DecompressionStream. It
// enforces the same container rules as the Go verifier
// (audit/bundle/zipcheck.go, docs/BUNDLE.md "The zip container"), so the
// two read every bundle alike.

import { concat } from "./bytes";

export class ZipError extends Error {}

export interface ZipFile {
  name: string;
  flags: number;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

/** At most this many files: a bundle's entries and six others (the Go verifier's limit). */
export const MAX_FILES = 1_000_006;

const EOCD_SIG = 0x06054b50;
const EOCD_LEN = 22;
const ZIP64_LOC_SIG = 0x07064b50;
const ZIP64_LOC_LEN = 20;
const ZIP64_END_SIG = 0x06064b50;
const ZIP64_END_LEN = 56;
const CDH_SIG = 0x02014b50;
const LFH_SIG = 0x04034b50;
const DESCRIPTOR_SIG = 0x08074b50;

function uint64(dv: DataView, p: number): number {
  const v = dv.getBigUint64(p, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError("a zip64 value past 2^53");
  return Number(v);
}

/** Lists a zip file's entries from its central directory. Throws ZipError. */
export function listZip(b: Uint8Array): ZipFile[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  // The last end record within reach of its 16-bit comment length; its
  // comment must run exactly to the end of the file.
  let eocd = -1;
  for (let i = b.length - EOCD_LEN; i >= Math.max(0, b.length - EOCD_LEN - 0xffff); i--) {
    if (dv.getUint32(i, true) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipError("not a zip file: no end of central directory");
  if (eocd + EOCD_LEN + dv.getUint16(eocd + 20, true) !== b.length) throw new ZipError("the end of central directory record's comment does not end the file");
  if (dv.getUint16(eocd + 4, true) !== 0 || dv.getUint16(eocd + 6, true) !== 0 || dv.getUint16(eocd + 8, true) !== dv.getUint16(eocd + 10, true)) {
    throw new ZipError("the end of central directory record names other disks");
  }
  const count16 = dv.getUint16(eocd + 10, true);
  const size32 = dv.getUint32(eocd + 12, true);
  const off32 = dv.getUint32(eocd + 16, true);
  let count = count16;
  let cdSize = size32;
  let cdOffset = off32;
  let dirEnd = eocd;
  const loc = eocd - ZIP64_LOC_LEN;
  if (loc >= 0 && dv.getUint32(loc, true) === ZIP64_LOC_SIG) {
    const rec = uint64(dv, loc + 8);
    if (dv.getUint32(loc + 4, true) !== 0 || dv.getUint32(loc + 16, true) !== 1 || rec + ZIP64_END_LEN !== loc) {
      throw new ZipError("the zip64 locator does not point to a zip64 end record directly before it");
    }
    if (dv.getUint32(rec, true) !== ZIP64_END_SIG || uint64(dv, rec + 4) !== ZIP64_END_LEN - 12 ||
      dv.getUint32(rec + 16, true) !== 0 || dv.getUint32(rec + 20, true) !== 0 || dv.getBigUint64(rec + 24, true) !== dv.getBigUint64(rec + 32, true)) {
      throw new ZipError("bad zip64 end record");
    }
    count = uint64(dv, rec + 32);
    cdSize = uint64(dv, rec + 40);
    cdOffset = uint64(dv, rec + 48);
    dirEnd = rec;
    if ((count16 !== 0xffff && count16 !== count) || (size32 !== 0xffffffff && size32 !== cdSize) || (off32 !== 0xffffffff && off32 !== cdOffset)) {
      throw new ZipError("the end record and the zip64 end record disagree");
    }
  } else if (count16 === 0xffff || size32 === 0xffffffff || off32 === 0xffffffff) {
    throw new ZipError("zip64 values in the end record without a zip64 locator");
  }
  if (cdOffset > dirEnd || cdOffset + cdSize !== dirEnd) {
    throw new ZipError(`the central directory (${cdSize} bytes at ${cdOffset}) does not end where the end record begins (${dirEnd}): bytes before or inside the zip`);
  }
  if (count > MAX_FILES) throw new ZipError(`${count} files, more than a bundle may hold`);
  const files: ZipFile[] = [];
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > dirEnd || dv.getUint32(p, true) !== CDH_SIG) throw new ZipError(`bad central directory entry ${i}`);
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    const crc32 = dv.getUint32(p + 16, true);
    let compressedSize = dv.getUint32(p + 20, true);
    let size = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let localOffset = dv.getUint32(p + 42, true);
    const extraEnd = p + 46 + nameLen + extraLen;
    if (extraEnd + commentLen > dirEnd) throw new ZipError(`bad central directory entry ${i}`);
    if (flags & 1) throw new ZipError("encrypted zip entries are not supported");
    let name: string;
    try {
      name = decoder.decode(b.subarray(p + 46, p + 46 + nameLen));
    } catch {
      throw new ZipError(`entry ${i} has a name that is not UTF-8`);
    }
    // zip64 sizes and offset: in the first zip64 extra field (0x0001), in
    // this order, each present only where the 32-bit field is 0xffffffff.
    let needSize = size === 0xffffffff;
    let needCompressed = compressedSize === 0xffffffff;
    let needOffset = localOffset === 0xffffffff;
    for (let x = p + 46 + nameLen; x + 4 <= extraEnd;) {
      const tag = dv.getUint16(x, true);
      const n = dv.getUint16(x + 2, true);
      x += 4;
      if (x + n > extraEnd) break;
      if (tag === 0x0001) {
        let q = x;
        const next = () => {
          if (q + 8 > x + n) throw new ZipError(`entry ${i}: a short zip64 extra field`);
          const v = uint64(dv, q);
          q += 8;
          return v;
        };
        if (needSize) [size, needSize] = [next(), false];
        if (needCompressed) [compressedSize, needCompressed] = [next(), false];
        if (needOffset) [localOffset, needOffset] = [next(), false];
      }
      x += n;
    }
    if (needCompressed || needOffset) throw new ZipError(`entry ${i}: zip64 values without a zip64 extra field`);
    files.push({ name, flags, method, crc32, compressedSize, size, localOffset });
    p = extraEnd + commentLen;
  }
  if (p !== dirEnd) throw new ZipError(`the central directory's records fill ${p - cdOffset} bytes, the end record says ${cdSize}`);
  return files;
}

let crcTable: Uint32Array | undefined;

export function crc32(b: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Reads one file's bytes, at most max (its declared size is checked
 * first), and checks its CRC-32, its size and, when it has one (flag 0x8),
 * its data descriptor: right after the data, with its signature, giving the
 * directory's CRC-32 and sizes (32-bit: no file of a bundle reaches 4 GiB).
 */
export async function readZipFile(b: Uint8Array, f: ZipFile, max: number): Promise<Uint8Array> {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (f.size > max) throw new ZipError(`${f.name}: ${f.size} bytes, more than the limit of ${max}`);
  const p = f.localOffset;
  if (p + 30 > b.length || dv.getUint32(p, true) !== LFH_SIG) throw new ZipError(`${f.name}: bad local header`);
  const start = p + 30 + dv.getUint16(p + 26, true) + dv.getUint16(p + 28, true);
  const end = start + f.compressedSize;
  if (end > b.length) throw new ZipError(`${f.name}: the data runs past the end of the file`);
  if (f.flags & 0x8) {
    if (end + 16 > b.length) throw new ZipError(`${f.name}: no data descriptor after the data`);
    if (dv.getUint32(end, true) !== DESCRIPTOR_SIG || dv.getUint32(end + 4, true) !== f.crc32 ||
      dv.getUint32(end + 8, true) !== f.compressedSize || dv.getUint32(end + 12, true) !== f.size) {
      throw new ZipError(`${f.name}: the data descriptor does not give the central directory's CRC-32 and sizes`);
    }
  }
  const raw = b.subarray(start, end);
  let out: Uint8Array;
  if (f.method === 0) {
    out = raw.slice();
  } else if (f.method === 8) {
    out = await inflate(raw, f.size, f.name);
  } else {
    throw new ZipError(`${f.name}: compression method ${f.method} is not supported`);
  }
  if (out.length !== f.size) throw new ZipError(`${f.name}: ${out.length} bytes, the directory says ${f.size}`);
  if (crc32(out) !== f.crc32) throw new ZipError(`${f.name}: checksum error`);
  return out;
}

async function inflate(raw: Uint8Array, want: number, name: string): Promise<Uint8Array> {
  const stream = new Blob([raw as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > want) {
        await reader.cancel();
        throw new ZipError(`${name}: inflates past its declared size`);
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof ZipError) throw e;
    throw new ZipError(`${name}: corrupt deflate data`);
  }
  return concat(...chunks);
}
