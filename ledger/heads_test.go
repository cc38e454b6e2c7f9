package ledger

import (
	"context"
	"fmt"
	"testing"
)

// ReadEntryHeads gives each entry as GetEntry does, without its payload:
// the same header, leaf hash and erasure state, for live entries and for
// entries erased by shredding their subject's key.
func TestReadEntryHeadsAgreesWithGetEntry(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	var idxs []uint64
	for i := range 4 {
		for _, r := range mustAppend(t, l, "default", subjectSpan(i, "alice", fmt.Sprint("alice secret ", i)), span(100+i, "no subject")) {
			idxs = append(idxs, r.Index)
		}
	}
	alice, err := l.EntryIndexes(ctx, "default", Term{Field: SubjectField, Value: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := l.KeysOf(ctx, "default", alice)
	if err != nil {
		t.Fatal(err)
	}
	var refs []*KeyRef
	for _, k := range keys {
		refs = append(refs, k)
	}
	erase := map[uint64]bool{alice[1]: true, alice[2]: true, alice[3]: true}
	if _, err := l.Shred(ctx, "default", refs, nil, erase); err != nil {
		t.Fatal(err)
	}
	n := 0
	err = l.ReadEntryHeads(ctx, "default", idxs, func(h *Entry) error {
		want, err := l.GetEntry(ctx, "default", idxs[n])
		if err != nil {
			return err
		}
		n++
		if h.Header.Index != want.Header.Index || string(h.HeaderBytes) != string(want.HeaderBytes) || h.LeafHash != want.LeafHash {
			t.Errorf("entry %d: ReadEntryHeads header differs from GetEntry's", want.Header.Index)
		}
		if h.Erased != want.Erased || (h.ErasedBy == nil) != (want.ErasedBy == nil) || h.ErasedBy != nil && *h.ErasedBy != *want.ErasedBy {
			t.Errorf("entry %d: ReadEntryHeads erased %v by %v, GetEntry erased %v by %v", want.Header.Index, h.Erased, h.ErasedBy, want.Erased, want.ErasedBy)
		}
		if h.Erased != erase[want.Header.Index] {
			t.Errorf("entry %d: ReadEntryHeads erased = %v, want %v", want.Header.Index, h.Erased, erase[want.Header.Index])
		}
		if h.Payload != nil || h.Salt != nil {
			t.Errorf("entry %d: ReadEntryHeads gave a payload", want.Header.Index)
		}
		return nil
	})
	if err != nil || n != len(idxs) {
		t.Fatalf("ReadEntryHeads = %v after %d entries, want %d", err, n, len(idxs))
	}
	if err := l.ReadEntryHeads(ctx, "default", []uint64{1 << 40}, func(*Entry) error { return nil }); err == nil {
		t.Error("ReadEntryHeads of an index beyond the log = nil error")
	}
}
