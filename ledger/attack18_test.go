package ledger

import (
	"context"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// A commit refused before Badger wrote anything (ErrBlockedWrites: the
// gate returns it as it is and the ledger does not fail) must leave the
// writer's log states where they were: the next append takes the index
// the refused one would have had. launch advances the states before the
// commit runs (pipeline.go) and nothing moves them back, so the next
// group is written past a gap of entries that were never stored.
func TestAttack18RefusedCommitLeavesAGap(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", span(1, "before")) // index 0
	refused := false
	l.hooks.commit = func(txn *badger.Txn) error {
		if !refused {
			refused = true
			return badger.ErrBlockedWrites // nothing written
		}
		return txn.Commit()
	}
	if _, err := l.Append(ctx, "default", []Record{span(2, "refused")}); !errors.Is(err, badger.ErrBlockedWrites) {
		t.Fatalf("Append(refused) = %v, want ErrBlockedWrites", err)
	}
	if err := l.failure(); err != nil {
		t.Fatalf("the ledger failed: %v (a refused commit wrote nothing)", err)
	}
	rs := mustAppend(t, l, "default", span(3, "after"))
	if rs[0].Index != 1 {
		t.Errorf("Append(after) = index %d, want 1: the refused group's entry %d was never stored", rs[0].Index, 1)
	}
	for i := uint64(0); i <= rs[0].Index; i++ {
		if _, err := l.GetEntry(ctx, "default", i); err != nil {
			t.Errorf("GetEntry(%d) = %v", i, err)
		}
	}
}
