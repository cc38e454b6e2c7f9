// A small, bounded zip reader for evidence bundles: the central directory,
// stored and deflated files, CRC-32 checked, nothing else (no zip64, no
// encryption). Inflating uses the browser's DecompressionStream.

import { concat } from "./bytes";

export class ZipError extends Error {}

export interface ZipFile {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

/** Limits: a bundle's files are read one at a time, each at most MAX_FILE bytes. */
export const MAX_FILE = 64 << 20;
export const MAX_FILES = 1_100_000;

const EOCD_SIG = 0x06054b50;
const CDH_SIG = 0x02014b50;
const LFH_SIG = 0x04034b50;

/** Lists a zip file's entries from its central directory. Throws ZipError. */
export function listZip(b: Uint8Array): ZipFile[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let eocd = -1;
  for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 0xffff); i--) {
    if (dv.getUint32(i, true) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipError("not a zip file: no end of central directory");
  const count = dv.getUint16(eocd + 10, true);
  const cdSize = dv.getUint32(eocd + 12, true);
  const cdOffset = dv.getUint32(eocd + 16, true);
  if (count === 0xffff || cdOffset === 0xffffffff) throw new ZipError("zip64 archives are not supported");
  if (cdOffset + cdSize > eocd) throw new ZipError("the central directory lies outside the file");
  const files: ZipFile[] = [];
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > eocd || dv.getUint32(p, true) !== CDH_SIG) throw new ZipError(`bad central directory entry ${i}`);
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    const crc32 = dv.getUint32(p + 16, true);
    const compressedSize = dv.getUint32(p + 20, true);
    const size = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    const localOffset = dv.getUint32(p + 42, true);
    if (p + 46 + nameLen > eocd) throw new ZipError(`bad central directory entry ${i}`);
    if (flags & 1) throw new ZipError("encrypted zip entries are not supported");
    let name: string;
    try {
      name = decoder.decode(b.subarray(p + 46, p + 46 + nameLen));
    } catch {
      throw new ZipError(`entry ${i} has a name that is not UTF-8`);
    }
    if (compressedSize === 0xffffffff || size === 0xffffffff || localOffset === 0xffffffff) throw new ZipError("zip64 entries are not supported");
    files.push({ name, method, crc32, compressedSize, size, localOffset });
    if (files.length > MAX_FILES) throw new ZipError(`more than ${MAX_FILES} files`);
    p += 46 + nameLen + extraLen + commentLen;
  }
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

/** Reads one file's bytes, inflating at most MAX_FILE bytes, and checks its CRC-32 and size. */
export async function readZipFile(b: Uint8Array, f: ZipFile): Promise<Uint8Array> {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const p = f.localOffset;
  if (p + 30 > b.length || dv.getUint32(p, true) !== LFH_SIG) throw new ZipError(`${f.name}: bad local header`);
  const start = p + 30 + dv.getUint16(p + 26, true) + dv.getUint16(p + 28, true);
  const end = start + f.compressedSize;
  if (end > b.length) throw new ZipError(`${f.name}: the data runs past the end of the file`);
  if (f.size > MAX_FILE) throw new ZipError(`${f.name}: larger than ${MAX_FILE} bytes`);
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
      if (n > want || n > MAX_FILE) {
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
