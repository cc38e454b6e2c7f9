package bundle

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// memTree is an RFC 6962 tree built with tlog, for proofs.
type memTree struct {
	stored []tlog.Hash
	leaves []tlog.Hash
}

func newMemTree(t *testing.T, n int) *memTree {
	t.Helper()
	m := &memTree{}
	for i := range n {
		leaf := tlog.RecordHash(fmt.Appendf(nil, "record %d", i))
		hashes, err := tlog.StoredHashes(int64(i), []byte(fmt.Sprintf("record %d", i)), m)
		if err != nil {
			t.Fatal(err)
		}
		m.stored = append(m.stored, hashes...)
		m.leaves = append(m.leaves, leaf)
	}
	return m
}

func (m *memTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = m.stored[x]
	}
	return out, nil
}

// TestProvenPathAgreesWithCheckRecord checks proofs of every leaf of trees
// of many sizes, in increasing, decreasing and random order, with a
// tampered proof (one changed hash at every position, a wrong leaf, a
// wrong index, a hash more or less) between any two: the shared path's
// verdict must be tlog.CheckRecord's every time.
func TestProvenPathAgreesWithCheckRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 31, 64, 100, 257} {
		tree := newMemTree(t, n)
		root, err := tlog.TreeHash(int64(n), tree)
		if err != nil {
			t.Fatal(err)
		}
		proofs := make([]tlog.RecordProof, n)
		for i := range n {
			if proofs[i], err = tlog.ProveRecord(int64(n), int64(i), tree); err != nil {
				t.Fatal(err)
			}
		}
		orders := map[string][]int{"increasing": nil, "decreasing": nil, "random": rng.Perm(n)}
		for i := range n {
			orders["increasing"] = append(orders["increasing"], i)
			orders["decreasing"] = append(orders["decreasing"], n-1-i)
		}
		for name, order := range orders {
			p := newProvenPath(uint64(n), root)
			check := func(what string, proof tlog.RecordProof, index uint64, leaf tlog.Hash) {
				t.Helper()
				want := tlog.CheckRecord(proof, int64(n), root, int64(index), leaf)
				got := p.check(append(tlog.RecordProof(nil), proof...), index, leaf)
				if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
					t.Fatalf("size %d, %s order, %s of leaf %d: check = %v, tlog.CheckRecord = %v", n, name, what, index, got, want)
				}
			}
			for _, i := range order {
				proof := proofs[i]
				check("the proof", proof, uint64(i), tree.leaves[i])
				for j := range proof {
					bad := append(tlog.RecordProof(nil), proof...)
					bad[j][rng.IntN(32)] ^= 1 << rng.IntN(8)
					check(fmt.Sprintf("hash %d changed", j), bad, uint64(i), tree.leaves[i])
				}
				other := (i + 1 + rng.IntN(n)) % n
				check("another leaf", proof, uint64(i), tree.leaves[other])
				check("another index", proof, uint64(other), tree.leaves[i])
				check("an index past the tree", proof, uint64(n+rng.IntN(3)), tree.leaves[i])
				check("a hash more", append(append(tlog.RecordProof(nil), proof...), root), uint64(i), tree.leaves[i])
				if len(proof) > 0 {
					check("a hash less", proof[:len(proof)-1], uint64(i), tree.leaves[i])
				}
				check("the proof again", proof, uint64(i), tree.leaves[i])
			}
		}
	}
}

// TestProvenPathShortens checks that the shared path does what it is for:
// after the first proof, a neighbour's proof is checked with a hash or two.
func TestProvenPathShortens(t *testing.T) {
	const n = 1000
	tree := newMemTree(t, n)
	root, _ := tlog.TreeHash(n, tree)
	p := newProvenPath(n, root)
	for i := range uint64(n) {
		proof, err := tlog.ProveRecord(n, int64(i), tree)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !p.shortcut(proof, i, tree.leaves[i]) {
			t.Fatalf("leaf %d: not checked against the path proven before", i)
		}
		if err := p.check(proof, i, tree.leaves[i]); err != nil {
			t.Fatal(err)
		}
	}
}
