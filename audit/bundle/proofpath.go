package bundle

import (
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// provenPath lets the inclusion proofs of one bundle's entries share the
// work of their common part. The entries of a bundle are usually close in
// the log, so their proofs agree on most hashes: the upper part of the path
// from a leaf to the root. provenPath remembers the last path it proved,
// top down (the subtrees of RFC 6962's split of the tree, from the whole
// tree to one leaf), with the hash of every subtree on it and the proof's
// hash beside each (the sibling). Every hash it remembers was proven: it
// lies on a path whose hashes, combined by tlog.NodeHash, gave the signed
// root.
//
// A later proof is checked from its leaf up to the lowest subtree it
// shares with the remembered path; there its hash must equal the proven
// hash of that subtree, and each of its hashes above must equal the proven
// sibling at the same place. That holds exactly when combining the whole
// proof would give the root (short of a SHA-256 collision), so the check is
// as strict as tlog.CheckRecord's while hashing only the part below the
// shared subtree (usually one or two hashes instead of log2 of the tree
// size). A proof that does not pass so is checked again by
// tlog.CheckRecord, whose verdict and error stand, and a path is remembered
// only when it reached the root from its own leaf.
//
// A provenPath belongs to one goroutine and is for one tree (size, root).
type provenPath struct {
	size  uint64
	root  tlog.Hash
	depth int // subtrees on the remembered path below the whole tree; -1: none yet
	lo    [MaxInclusionHashes + 1]uint64
	hi    [MaxInclusionHashes + 1]uint64
	hash  [MaxInclusionHashes + 1]tlog.Hash // of lo[d]..hi[d]; hash[0] is the root
	sib   [MaxInclusionHashes + 1]tlog.Hash // the sibling of subtree d (d >= 1)
}

func newProvenPath(size uint64, root tlog.Hash) *provenPath {
	p := &provenPath{size: size, root: root, depth: -1}
	p.hi[0], p.hash[0] = size, root
	return p
}

// check reports whether proof proves the leaf hash at index in the tree,
// returning tlog.CheckRecord's error when it does not.
func (p *provenPath) check(proof tlog.RecordProof, index uint64, leaf tlog.Hash) error {
	if index < p.size && p.shortcut(proof, index, leaf) {
		return nil
	}
	if err := tlog.CheckRecord(proof, int64(p.size), p.root, int64(index), leaf); err != nil {
		return err
	}
	// Proven from the leaf to the root: remember the path.
	p.remember(proof, index, leaf)
	return nil
}

// split returns the subtrees on the path from the whole tree to leaf index,
// top down, in lo and hi (RFC 6962 section 2.1: a tree of n > 1 leaves is
// split at the largest power of two below n), and their number less one.
func (p *provenPath) split(index uint64, lo, hi *[MaxInclusionHashes + 1]uint64) (depth int, ok bool) {
	l, h := uint64(0), p.size
	lo[0], hi[0] = l, h
	for h-l > 1 {
		if depth == MaxInclusionHashes {
			return 0, false
		}
		k := uint64(1) << (bits.Len64(h-l-1) - 1) // the largest power of two below h-l
		if index < l+k {
			h = l + k
		} else {
			l += k
		}
		depth++
		lo[depth], hi[depth] = l, h
	}
	return depth, true
}

// up combines the hash of subtree d of the path (lo, hi) with its sibling
// into the hash of subtree d-1.
func up(lo, hi *[MaxInclusionHashes + 1]uint64, d int, h, sib tlog.Hash) tlog.Hash {
	if lo[d] == lo[d-1] { // the left half: the sibling is on the right
		return tlog.NodeHash(h, sib)
	}
	return tlog.NodeHash(sib, h)
}

// shortcut checks proof against the remembered path, as described above;
// false means "not shown", not "wrong".
func (p *provenPath) shortcut(proof tlog.RecordProof, index uint64, leaf tlog.Hash) bool {
	if p.depth < 0 {
		return false
	}
	var lo, hi [MaxInclusionHashes + 1]uint64
	depth, ok := p.split(index, &lo, &hi)
	if !ok || len(proof) != depth {
		return false
	}
	// s: the lowest subtree the two paths share (0, the whole tree, at
	// least).
	s := 0
	for s < depth && s < p.depth && lo[s+1] == p.lo[s+1] && hi[s+1] == p.hi[s+1] {
		s++
	}
	var hash [MaxInclusionHashes + 1]tlog.Hash
	h := leaf
	for d := depth; d > s; d-- {
		hash[d] = h
		h = up(&lo, &hi, d, h, proof[depth-d])
	}
	if h != p.hash[s] {
		return false
	}
	for d := s; d > 0; d-- {
		if proof[depth-d] != p.sib[d] {
			return false
		}
	}
	// Remember the new lower part: its hashes are proven now.
	for d := depth; d > s; d-- {
		p.lo[d], p.hi[d], p.hash[d], p.sib[d] = lo[d], hi[d], hash[d], proof[depth-d]
	}
	p.depth = depth
	return true
}

// remember records the path of a proof that tlog.CheckRecord accepted, if
// combining it along the split gives the root (as it must).
func (p *provenPath) remember(proof tlog.RecordProof, index uint64, leaf tlog.Hash) {
	var lo, hi [MaxInclusionHashes + 1]uint64
	var hash [MaxInclusionHashes + 1]tlog.Hash
	depth, ok := p.split(index, &lo, &hi)
	if !ok || len(proof) != depth {
		p.depth = -1
		return
	}
	h := leaf
	for d := depth; d > 0; d-- {
		hash[d] = h
		h = up(&lo, &hi, d, h, proof[depth-d])
	}
	if h != p.root {
		p.depth = -1
		return
	}
	p.lo, p.hi, p.hash = lo, hi, hash
	p.hash[0] = p.root
	for d := depth; d > 0; d-- {
		p.sib[d] = proof[depth-d]
	}
	p.depth = depth
}
