// RFC 6962 / RFC 9162 Merkle tree hashing and proof verification, over
// WebCrypto SHA-256. Sizes and indexes are bigints so that no log size is
// rounded.

import { equal, sha256 } from "./bytes";

export const HASH_SIZE = 32;

/** leaf hash = SHA-256(0x00 || data) (RFC 6962 §2.1). */
export function leafHash(data: Uint8Array): Promise<Uint8Array> {
  return sha256(new Uint8Array([0]), data);
}

/** interior node = SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  return sha256(new Uint8Array([1]), left, right);
}

/** The Merkle tree hash of a list of leaf hashes (RFC 6962 §2.1). */
export async function treeHash(leaves: Uint8Array[]): Promise<Uint8Array> {
  if (leaves.length === 0) return sha256(new Uint8Array(0));
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(await treeHash(leaves.slice(0, k)), await treeHash(leaves.slice(k)));
}

export class ProofError extends Error {}

function checkHashes(proof: Uint8Array[]): void {
  for (const p of proof) {
    if (p.length !== HASH_SIZE) throw new ProofError(`a proof hash of ${p.length} bytes`);
  }
}

/**
 * Verifies an inclusion proof (RFC 9162 §2.1.3.2): that leaf is entry
 * index of the tree of size whose root is root. Throws ProofError.
 */
export async function verifyInclusion(index: bigint, size: bigint, leaf: Uint8Array, proof: Uint8Array[], root: Uint8Array): Promise<void> {
  if (index < 0n || index >= size) throw new ProofError(`index ${index} is not below tree size ${size}`);
  checkHashes(proof);
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new ProofError("the proof is longer than the path");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError("the proof is shorter than the path");
  if (!equal(r, root)) throw new ProofError("the proof leads to another root");
}

/**
 * Verifies a consistency proof (RFC 9162 §2.1.4.2): that the tree of
 * oldSize with root oldRoot is a prefix of the tree of newSize with root
 * newRoot. Throws ProofError.
 */
export async function verifyConsistency(oldSize: bigint, newSize: bigint, oldRoot: Uint8Array, newRoot: Uint8Array, proof: Uint8Array[]): Promise<void> {
  checkHashes(proof);
  if (oldSize < 1n || oldSize > newSize) throw new ProofError(`no consistency proof from size ${oldSize} to ${newSize}`);
  if (oldSize === newSize) {
    if (proof.length !== 0) throw new ProofError("a non-empty proof between equal sizes");
    if (!equal(oldRoot, newRoot)) throw new ProofError("equal sizes with different roots");
    return;
  }
  if (proof.length === 0) throw new ProofError("an empty proof");
  let path = proof;
  if ((oldSize & (oldSize - 1n)) === 0n) path = [oldRoot, ...proof];
  let fn = oldSize - 1n;
  let sn = newSize - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new ProofError("the proof is longer than the path");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError("the proof is shorter than the path");
  if (!equal(fr, oldRoot)) throw new ProofError("the proof does not lead to the old root");
  if (!equal(sr, newRoot)) throw new ProofError("the proof does not lead to the new root");
}

