package ledger

import (
	"context"
	"errors"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestInclusionProofsAreInclusionProof: the batched proofs, whose tree
// hashes are listed first and read in key order, are those InclusionProof
// gives one entry at a time, for runs of neighbours, sparse and unordered
// sets and repeats, in trees of every shape, with another tenant's entries
// beside them; an index past the tree is refused, and a caller that gives
// up gets context.Canceled.
func TestInclusionProofsAreInclusionProof(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	if _, err := l.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := 0; i < n; i += 20 {
		var recs []Record
		for j := i; j < i+20; j++ {
			recs = append(recs, span(j, "payload"))
		}
		mustAppend(t, l, "default", recs...)
		mustAppend(t, l, "acme", span(i, "other tenant"))
	}
	all := make([]uint64, n)
	for i := range all {
		all[i] = uint64(i)
	}
	for _, size := range []uint64{1, 2, 3, 7, 64, 65, 100, 255, 256, 257, n} {
		sets := [][]uint64{all[:size], {0}, {size - 1}, {size - 1, 0, size / 2, size / 2, (size - 1) / 3}}
		if size > 40 {
			sets = append(sets, all[size/3:size/3+37], []uint64{3, 17, 33, size - 2, 9})
		}
		for _, idxs := range sets {
			var got []uint64
			err := l.InclusionProofs(ctx, "default", idxs, size, func(i uint64, p tlog.RecordProof, leaf tlog.Hash) error {
				want, wantLeaf, _, err := l.InclusionProof(ctx, "default", i, size)
				if err != nil {
					t.Fatalf("InclusionProof(%d, %d) = %v", i, size, err)
				}
				if leaf != wantLeaf || !slices.Equal(p, want) {
					t.Fatalf("InclusionProofs(%v, %d) for %d = %x, %x; InclusionProof gives %x, %x", idxs, size, i, p, leaf, want, wantLeaf)
				}
				got = append(got, i)
				return nil
			})
			if err != nil || !slices.Equal(got, idxs) {
				t.Fatalf("InclusionProofs(%v, %d) proved %v, %v", idxs, size, got, err)
			}
		}
	}
	if err := l.InclusionProofs(ctx, "default", []uint64{1, n}, n, func(uint64, tlog.RecordProof, tlog.Hash) error { return nil }); !errors.Is(err, ErrInvalid) {
		t.Errorf("InclusionProofs of index %d in a tree of %d = %v, want ErrInvalid", n, n, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	calls := 0
	err := l.InclusionProofs(cctx, "default", all, n, func(uint64, tlog.RecordProof, tlog.Hash) error {
		if calls++; calls == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 5 {
		t.Errorf("InclusionProofs cancelled at its fifth proof = %v after %d proofs, want context.Canceled after 5", err, calls)
	}
}
