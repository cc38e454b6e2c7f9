// The canonical entry header (docs/FORMAT.md §2.1), payload commitments
// (§2.3) and version ids (§2.4): the bytes a leaf hash commits to.

import { equal, sha256, toHex, utf8 } from "./bytes";

export const FORMAT_VERSION = 1;

export const EntryKinds = ["", "span", "version", "access", "tombstone", "retention", "hold"] as const;
export type EntryKindName = (typeof EntryKinds)[number];
export const KIND_SPAN = 1;
export const KIND_VERSION = 2;
export const KIND_ACCESS = 3;
export const KIND_TOMBSTONE = 4;

export interface Header {
  kind: number;
  kindName: EntryKindName;
  subKind: number;
  tenant: string;
  index: bigint;
  /** Nanoseconds since the Unix epoch. */
  appendedAtNanos: bigint;
  traceId: Uint8Array;
  spanId: Uint8Array;
  parentSpanId: Uint8Array;
  /** prompt, policy and pipeline version references; all zero when none. */
  refs: [Uint8Array, Uint8Array, Uint8Array];
  retentionClass: string;
  prevLeafHash: Uint8Array;
  commitment: Uint8Array;
}

export class HeaderError extends Error {}

const FIXED_LEN = 4 + 8 + 8 + 16 + 8 + 8 + 3 * 32 + 1 + 32 + 32;

function validSubKind(kind: number, sub: number): boolean {
  switch (kind) {
    case 1:
      return sub >= 1 && sub <= 8;
    case 2:
      return sub >= 1 && sub <= 3;
    case 3:
      return sub >= 1 && sub <= 3;
    case 4:
      return sub === 1 || sub === 2;
    case 5:
      return sub === 1;
    case 6:
      return sub === 1 || sub === 2;
  }
  return false;
}

/** Tenant names and retention classes: a-z 0-9 . _ -, starting with a letter or digit. */
export function validName(s: string, max: number): boolean {
  return s.length >= 1 && s.length <= max && /^[a-z0-9][a-z0-9._-]*$/.test(s);
}

/**
 * Parses a canonical header. Like the Go parser it accepts exactly the
 * bytes of a valid header and nothing else. Throws HeaderError.
 */
export function parseHeader(b: Uint8Array): Header {
  const bad = (msg: string): never => {
    throw new HeaderError(`malformed header: ${msg}`);
  };
  if (b.length < 4) bad(`${b.length} bytes, too short`);
  if (b[0] !== FORMAT_VERSION) bad(`format version ${b[0]}, want ${FORMAT_VERSION}`);
  const kind = b[1];
  const subKind = b[2];
  if (kind < 1 || kind > 6) bad(`unknown entry kind ${kind}`);
  if (!validSubKind(kind, subKind)) bad(`unknown sub-kind ${subKind} of a ${EntryKinds[kind]} entry`);
  const tl = b[3];
  if (b.length < FIXED_LEN + tl) bad(`${b.length} bytes, too short`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 4;
  const ascii = (n: number) => String.fromCharCode(...b.subarray(p, p + n));
  const tenant = ascii(tl);
  if (!validName(tenant, 63)) bad(`tenant ${JSON.stringify(tenant)}`);
  p += tl;
  const index = dv.getBigUint64(p);
  const appendedAtNanos = dv.getBigInt64(p + 8);
  p += 16;
  const take = (n: number) => {
    const out = b.slice(p, p + n);
    p += n;
    return out;
  };
  const traceId = take(16);
  const spanId = take(8);
  const parentSpanId = take(8);
  const refs: [Uint8Array, Uint8Array, Uint8Array] = [take(32), take(32), take(32)];
  const rl = b[p];
  p += 1;
  if (b.length - p !== rl + 64) bad(`retention class of ${rl} bytes and ${b.length - p} bytes left, want ${rl + 64}`);
  const retentionClass = ascii(rl);
  if (!validName(retentionClass, 32)) bad(`retention class ${JSON.stringify(retentionClass)}`);
  p += rl;
  const prevLeafHash = take(32);
  const commitment = take(32);
  return {
    kind, kindName: EntryKinds[kind], subKind, tenant, index, appendedAtNanos, traceId, spanId, parentSpanId, refs,
    retentionClass, prevLeafHash, commitment,
  };
}

export function isZero(b: Uint8Array): boolean {
  return b.every((x) => x === 0);
}

/** The payload commitment: SHA-256("veritrace/payload/v1" || 0x00 || salt || payload). */
export function commitment(salt: Uint8Array, payload: Uint8Array): Promise<Uint8Array> {
  return sha256(utf8.encode("veritrace/payload/v1\0"), salt, payload);
}

export async function checkCommitment(h: Header, salt: Uint8Array, payload: Uint8Array): Promise<boolean> {
  return equal(await commitment(salt, payload), h.commitment);
}

/** A version id (docs/FORMAT.md §2.4), as 64 hex digits. */
export async function versionId(kind: number, name: string, label: string, mediaType: string, content: Uint8Array): Promise<string> {
  const parts: Uint8Array[] = [utf8.encode("veritrace/version/v1\0"), new Uint8Array([kind])];
  for (const s of [name, label, mediaType]) {
    const e = utf8.encode(s);
    const n = new Uint8Array(4);
    new DataView(n.buffer).setUint32(0, e.length);
    parts.push(n, e);
  }
  const n = new Uint8Array(8);
  new DataView(n.buffer).setBigUint64(0, BigInt(content.length));
  parts.push(n, content);
  return toHex(await sha256(...parts));
}
