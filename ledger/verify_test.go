package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// The verifier's frontier gives tlog's root at every size, and folding a
// run of zero leaves in as complete subtrees gives the same tree as
// pushing them one by one.
func TestFrontierRootAndZeroRuns(t *testing.T) {
	var st logState
	var stored []tlog.Hash
	r := memHashes(&stored)
	for n := int64(0); n < 300; n++ {
		if n > 0 {
			want, err := tlog.TreeHash(n, r)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.root(); got != want {
				t.Fatalf("root() at size %d = %x, want %x", n, got, want)
			}
		}
		for run := uint64(1); run < 70; run += 3 {
			one, fold := st, st
			for range run {
				one.push(tlog.Hash{}, nil)
			}
			for fold.size < st.size+run {
				k := min(63, min(trailingZeros(fold.size), log2(st.size+run-fold.size)))
				fold.pushSubtree(k, zeroSubtrees[k])
			}
			if one.root() != fold.root() || one.size != fold.size {
				t.Fatalf("size %d, %d zero leaves: folded root %x, pushed one by one %x", n, run, fold.root(), one.root())
			}
		}
		leaf := tlog.RecordHash([]byte(fmt.Sprint(n)))
		hs, err := tlog.StoredHashesForRecordHash(n, leaf, r)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		st.push(leaf, nil)
	}
}

func trailingZeros(x uint64) int {
	n := 0
	for x != 0 && x&1 == 0 {
		x >>= 1
		n++
	}
	if x == 0 {
		return 64
	}
	return n
}

func log2(x uint64) int {
	n := -1
	for ; x != 0; x >>= 1 {
		n++
	}
	return n
}

// tamperedLog makes a log of 37 entries in the default tenant with
// checkpoints at sizes 5, 16 and 37, lets tamper change its database
// behind the ledger's back, and returns what VerifyDir finds.
func tamperedLog(t *testing.T, tamper func(txn *badger.Txn) error) TenantResult {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	for i := 0; i < 37; i++ {
		mustAppend(t, l, "default", span(i, "payload"))
		if i == 4 || i == 15 || i == 36 {
			if _, err := l.Checkpoint(ctx, "default", true); err != nil {
				t.Fatal(err)
			}
		}
	}
	vkey := l.VerifierKey()
	l.Close()
	keys := testKeys(t, dir)
	if tamper != nil {
		db := rawLogDB(t, dir)
		err := db.Update(tamper)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := VerifyDir(ctx, dir, keys.Master, vkey)
	if err != nil {
		t.Fatalf("VerifyDir() = %v", err)
	}
	return res[0]
}

// VerifyDir names what was changed, once, at the first entry it affects.
func TestVerifyDirFindsTampering(t *testing.T) {
	setSize := func(n uint64) func(txn *badger.Txn) error {
		return func(txn *badger.Txn) error { return txn.Set(treeSizeKey(1), binary.BigEndian.AppendUint64(nil, n)) }
	}
	for _, tc := range []struct {
		name   string
		tamper func(txn *badger.Txn) error
		first  uint64 // index of the first problem
		detail string // in one of the problems
	}{
		{"entry deleted", func(txn *badger.Txn) error { return txn.Delete(entryKey(1, 9)) }, 9, "entry record missing"},
		{"entries deleted", func(txn *badger.Txn) error {
			for i := uint64(20); i < 30; i++ {
				if err := txn.Delete(entryKey(1, i)); err != nil {
					return err
				}
			}
			return nil
		}, 20, "entry records 20 to 29 missing"},
		{"tree hash in a record changed", func(txn *badger.Txn) error {
			// Entry 13 completes the subtree of entries 12-13 (level 1).
			return editRecord(txn, 13, func(v []byte) []byte { copy(v[len(v)-32:], make([]byte, 32)); return v })
		}, 13, "stored tree hash (level 1, entries 12-13, in the record of entry 13)"},
		{"higher tree hash in a record changed", func(txn *badger.Txn) error {
			// Entry 15 completes levels 1 to 4; level 3 is entries 8-15.
			return editRecord(txn, 15, func(v []byte) []byte { v[len(v)-2*32] ^= 1; return v })
		}, 15, "stored tree hash (level 3, entries 8-15, in the record of entry 15)"},
		{"record truncated", func(txn *badger.Txn) error {
			return editRecord(txn, 15, func(v []byte) []byte { return v[:100] })
		}, 15, "too short for its 4 tree hashes"},
		{"header changed", func(txn *badger.Txn) error {
			return editRecord(txn, 30, func(v []byte) []byte {
				hb, _, _ := splitEntryRecord(30, v)
				hb[len(hb)-70] ^= 1
				return v
			})
		}, 30, "hash chain broken between entries 30 and 31"},
		{"tree size grown", setSize(40), 37, "entry records 37 to 39 missing"},
		{"tree size shrunk", setSize(30), 30, "7 entry records stored beyond the tree size 30, the first at index 30"},
		{"tree size 2^40", setSize(1 << 40), 37, fmt.Sprintf("entry records 37 to %d missing", uint64(1)<<40-1)},
		{"entry stored beyond the tree", func(txn *badger.Txn) error {
			item, err := txn.Get(entryKey(1, 4))
			if err != nil {
				return err
			}
			v, _ := item.ValueCopy(nil)
			return txn.Set(entryKey(1, 40), v)
		}, 40, "1 entry records stored beyond the tree size 37"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tamperedLog(t, tc.tamper)
			if len(r.Problems) == 0 {
				t.Fatalf("VerifyDir found nothing")
			}
			if r.Problems[0].Index != tc.first {
				t.Errorf("first problem at index %d, want %d: %v", r.Problems[0].Index, tc.first, r.Problems)
			}
			found := false
			for _, p := range r.Problems {
				found = found || strings.Contains(p.Detail, tc.detail)
			}
			if !found {
				t.Errorf("problems %v; want one saying %q", r.Problems, tc.detail)
			}
			if len(r.Problems) > 4 {
				t.Errorf("%d problems for one change: %v", len(r.Problems), r.Problems)
			}
		})
	}
	t.Run("clean", func(t *testing.T) {
		r := tamperedLog(t, nil)
		if len(r.Problems) != 0 || r.Checkpoints != 3 || r.Latest == nil || r.Latest.Size != 37 || r.Root != r.Latest.Root {
			t.Errorf("VerifyDir(clean) = %+v", r)
		}
	})
}

// editRecord replaces entry i's record (default tenant) with what edit
// makes of it.
func editRecord(txn *badger.Txn, i uint64, edit func([]byte) []byte) error {
	item, err := txn.Get(entryKey(1, i))
	if err != nil {
		return err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return err
	}
	return txn.Set(entryKey(1, i), edit(v))
}
