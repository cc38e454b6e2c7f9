// C2SP signed notes (https://c2sp.org/signed-note) with Ed25519
// signatures, verified with WebCrypto, as golang.org/x/mod/sumdb/note
// does: the same parsing rules, the same key hash.

import { fromBase64, fromHex, sha256, toHex, utf8 } from "./bytes";

/** A note verifier key: "name+hash+base64(0x01 || Ed25519 public key)". */
export interface VerifierKey {
  name: string;
  hash: number; // the 4-byte key hash, big-endian
  publicKey: Uint8Array; // 32 bytes
  text: string;
}

export class NoteError extends Error {}

const ALG_ED25519 = 1;

/** A key name: non-empty UTF-8 with no space characters and no '+'. */
export function isValidName(name: string): boolean {
  return name !== "" && !/[\s+\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u.test(name);
}

/** The key hash: the first 4 bytes of SHA-256(name || "\n" || 0x01 || key), big-endian. */
export async function keyHash(name: string, algAndKey: Uint8Array): Promise<number> {
  const h = await sha256(utf8.encode(name + "\n"), algAndKey);
  return new DataView(h.buffer, h.byteOffset).getUint32(0);
}

/** Parses and checks a verifier key; throws NoteError. */
export async function parseVerifierKey(text: string): Promise<VerifierKey> {
  const t = text.trim();
  // As note.NewVerifier: the name up to the first '+', the hash up to the
  // next, the key is the rest (base64 may hold '+').
  const [name, rest = ""] = cut(t, "+");
  const [hashHex, b64 = ""] = cut(rest, "+");
  if (!isValidName(name)) throw new NoteError(`bad key name ${JSON.stringify(name)}: a verifier key has the form "name+hash+key"`);
  if (!/^[0-9a-fA-F]{8}$/.test(hashHex)) throw new NoteError("the key hash must be 8 hex digits");
  let key: Uint8Array;
  try {
    key = fromBase64(b64, false);
  } catch {
    throw new NoteError("the key is not base64");
  }
  if (key.length !== 33 || key[0] !== ALG_ED25519) throw new NoteError("not an Ed25519 key (want 0x01 and 32 bytes)");
  const hash = await keyHash(name, key);
  if (hash !== parseInt(hashHex, 16)) throw new NoteError("the key hash does not match the key");
  return { name, hash, publicKey: key.slice(1), text: t };
}

function cut(s: string, sep: string): [string, string?] {
  const i = s.indexOf(sep);
  return i < 0 ? [s] : [s.slice(0, i), s.slice(i + sep.length)];
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/** An opened note: its text (the signed body) and who signed it. */
export interface OpenedNote {
  text: string;
  signers: string[];
}

const SIG_PREFIX = "\u2014 "; // em dash, space

/**
 * Opens a signed note with one trusted key: the note must be well formed
 * and carry a valid signature by that key. Signatures by other keys are
 * ignored, as note.Open does. Throws NoteError.
 */
export async function openNote(msg: string, key: VerifierKey): Promise<OpenedNote> {
  for (const ch of msg) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 && c !== 0x0a) throw new NoteError("malformed note: control characters");
  }
  const split = msg.lastIndexOf("\n\n");
  if (split < 0) throw new NoteError("malformed note: no signature block");
  const text = msg.slice(0, split + 1);
  let sigs = msg.slice(split + 2);
  if (sigs === "" || !sigs.endsWith("\n")) throw new NoteError("malformed note: the signature block does not end in a newline");
  const pub = await crypto.subtle.importKey("raw", key.publicKey as BufferSource, { name: "Ed25519" }, false, ["verify"]);
  const body = utf8.encode(text);
  const seen = new Set<string>();
  let count = 0;
  let verified = false;
  while (sigs.length > 0) {
    const i = sigs.indexOf("\n");
    const line = sigs.slice(0, i);
    sigs = sigs.slice(i + 1);
    if (!line.startsWith(SIG_PREFIX)) throw new NoteError("malformed note: a signature line does not start with an em dash");
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.indexOf(" ");
    const name = sp < 0 ? rest : rest.slice(0, sp);
    const b64 = sp < 0 ? "" : rest.slice(sp + 1);
    let sig: Uint8Array;
    try {
      sig = fromBase64(b64, false);
    } catch {
      throw new NoteError("malformed note: a signature is not base64");
    }
    if (!isValidName(name) || b64 === "" || sig.length < 5) throw new NoteError("malformed note: a bad signature line");
    if (++count > 100) throw new NoteError("malformed note: more than 100 signatures");
    const hash = new DataView(sig.buffer, sig.byteOffset).getUint32(0);
    if (name !== key.name || hash !== key.hash) continue; // another key's signature
    const id = `${name}+${hash}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const ok = sig.length === 68 && (await crypto.subtle.verify({ name: "Ed25519" }, pub, sig.slice(4) as BufferSource, body as BufferSource));
    if (!ok) throw new NoteError(`invalid signature by ${key.name}`);
    verified = true;
  }
  if (!verified) throw new NoteError(`no signature by ${key.name} (${toHex(u32(key.hash))})`);
  return { text, signers: [key.name] };
}

/** A parsed checkpoint body (docs/FORMAT.md §4). */
export interface Checkpoint {
  origin: string;
  size: bigint;
  root: Uint8Array;
}

/** Parses a checkpoint body: exactly origin, size and root lines. */
export function parseCheckpointBody(text: string): Checkpoint {
  const lines = text.split("\n");
  if (lines.length !== 4 || lines[3] !== "") throw new NoteError("invalid checkpoint: want 3 lines");
  const [origin, sizeText, rootText] = lines;
  if (origin === "") throw new NoteError("invalid checkpoint: empty origin");
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText) || BigInt(sizeText) >= 1n << 64n) throw new NoteError(`invalid checkpoint: bad tree size ${JSON.stringify(sizeText)}`);
  let root: Uint8Array;
  try {
    root = fromBase64(rootText);
  } catch {
    throw new NoteError("invalid checkpoint: bad root hash");
  }
  if (root.length !== 32) throw new NoteError("invalid checkpoint: bad root hash");
  return { origin, size: BigInt(sizeText), root };
}

/** Verifies a signed checkpoint with the key and parses it. */
export async function openCheckpoint(msg: string, key: VerifierKey): Promise<Checkpoint> {
  const n = await openNote(msg, key);
  return parseCheckpointBody(n.text);
}

const BUNDLE_TITLE = "veritrace evidence bundle v1";
const RECEIPT_TITLE = "veritrace erasure receipt v1";

/** Parses the body of a bundle (or receipt) signature: title, origin, SHA-256 hex. */
export function parseDigestBody(text: string, receipt = false): { origin: string; digest: Uint8Array } {
  const lines = text.split("\n");
  const title = receipt ? RECEIPT_TITLE : BUNDLE_TITLE;
  if (lines.length !== 4 || lines[0] !== title || lines[1] === "" || lines[3] !== "") {
    throw new NoteError(`not a ${receipt ? "receipt" : "bundle"} signature body`);
  }
  if (!/^[0-9a-f]{64}$/.test(lines[2])) throw new NoteError(`bad digest ${JSON.stringify(lines[2])}`);
  return { origin: lines[1], digest: fromHex(lines[2]) };
}

