package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestPostingBlockEncoding(t *testing.T) {
	for _, tc := range []struct {
		k       uint64
		entries []uint64
		want    []byte
	}{
		{k: 7, entries: []uint64{7}, want: nil}, // a format-2 term key
		{k: 7, entries: []uint64{5}, want: []byte{2}},
		{k: 9, entries: []uint64{3, 4, 9}, want: []byte{0, 5, 1}},
		{k: 300, entries: []uint64{0, 300}, want: []byte{0, 0xac, 0x02}},
	} {
		got := encodeBlock(tc.k, tc.entries)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("encodeBlock(%d, %v) = %x, want %x", tc.k, tc.entries, got, tc.want)
		}
		back, err := decodeBlock(tc.k, got)
		if err != nil || !slices.Equal(back, tc.entries) {
			t.Errorf("decodeBlock(%d, %x) = %v, %v; want %v", tc.k, got, back, err, tc.entries)
		}
	}
	for _, bad := range [][]byte{
		{0, 0},    // the same entry twice
		{8},       // below zero
		{0x80},    // truncated uvarint
		{3, 2, 3}, // below zero at the last
	} {
		if got, err := decodeBlock(7, bad); err == nil {
			t.Errorf("decodeBlock(7, %x) = %v, want an error", bad, got)
		}
	}
}

func FuzzDecodeBlock(f *testing.F) {
	f.Add(uint64(9), []byte{0, 5, 1})
	f.Add(uint64(0), []byte{})
	f.Fuzz(func(t *testing.T, k uint64, v []byte) {
		entries, err := decodeBlock(k, v)
		if err != nil {
			return
		}
		for i, e := range entries {
			if e > k || (i > 0 && e <= entries[i-1]) {
				t.Fatalf("decodeBlock(%d, %x) = %v: not ascending up to %d", k, v, entries, k)
			}
		}
		again, err := decodeBlock(k, encodeBlock(k, entries))
		if err != nil || !slices.Equal(again, entries) {
			t.Fatalf("re-encoded %v decodes to %v, %v", entries, again, err)
		}
	})
}

// termBlocks returns every posting block of the log database: key (hex)
// to entries.
func termBlocks(t *testing.T, l *Ledger) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsTerm}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().KeyCopy(nil)
			_, entries, err := blockEntries(key[:len(key)-8], it.Item())
			if err != nil {
				return err
			}
			out[fmt.Sprintf("%x", key)] = entries
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The entries of one group that carry a term share one posting block;
// Postings pages through blocks from any index, HasTerm and HaveTerms
// answer for entries inside a block's range that it does not hold, and an
// erasure removes its entries from blocks shared with other subjects,
// deleting a block it empties, so no block names an erased entry.
func TestPostingBlocks(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	model := Term{Field: 5, Value: []byte("model-a")}
	batch := func(first int, n int) []Record {
		var recs []Record
		for i := first; i < first+n; i++ {
			subject := []string{"alice", "bob"}[i%2]
			r := subjectSpan(i, subject, fmt.Sprint(subject, " payload ", i))
			r.Terms = []Term{model, model} // named twice: held once
			recs = append(recs, r)
		}
		return recs
	}
	mustAppend(t, l, "default", batch(0, 10)...) // entries 0-9: one block per term
	mustAppend(t, l, "default", batch(10, 3)...) // 10-12: a second block
	bare := span(100, "bare")
	bare.Subject = ""
	mustAppend(t, l, "default", bare) // 13: none of these terms (only its trace's, having no subject)
	blocks := termBlocks(t, l)
	delete(blocks, bareBlock(t, blocks))
	if len(blocks) != 6 {
		t.Errorf("%d posting blocks besides entry 13's, want 6 (model, alice, bob, twice): %v", len(blocks), blocks)
	}

	for _, tc := range []struct {
		from      uint64
		limit     int
		want      []uint64
		wantNext  uint64
		wantError bool
	}{
		{from: 0, limit: 100, want: []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{from: 3, limit: 4, want: []uint64{3, 4, 5, 6}, wantNext: 7},
		{from: 7, limit: 4, want: []uint64{7, 8, 9, 10}, wantNext: 11},
		{from: 11, limit: 4, want: []uint64{11, 12}},
		{from: 13, limit: 4, want: nil},
	} {
		got, next, err := l.Postings(ctx, "default", model, tc.from, tc.limit)
		if err != nil || !slices.Equal(got, tc.want) || next != tc.wantNext {
			t.Errorf("Postings(model, %d, %d) = %v, %d, %v; want %v, %d", tc.from, tc.limit, got, next, err, tc.want, tc.wantNext)
		}
	}
	alice := Term{Field: SubjectField, Value: []byte("alice")}
	for i := uint64(0); i < 14; i++ {
		if got, err := l.HasTerm(ctx, "default", alice, i); err != nil || got != (i%2 == 0 && i < 13) {
			t.Errorf("HasTerm(alice, %d) = %v, %v; want %v", i, got, err, i%2 == 0 && i < 13)
		}
	}
	have, err := l.HaveTerms(ctx, "default", []Term{model, alice}, []uint64{13, 12, 1, 0, 9, 10})
	if want := []bool{false, true, false, true, false, true}; err != nil || !slices.Equal(have, want) {
		t.Errorf("HaveTerms(model, alice) = %v, %v; want %v", have, err, want)
	}

	shred := func(subject string) {
		t.Helper()
		idxs, err := l.EntryIndexes(ctx, "default", Term{Field: SubjectField, Value: []byte(subject)})
		if err != nil {
			t.Fatal(err)
		}
		keys, _, err := l.KeysOf(ctx, "default", idxs)
		if err != nil {
			t.Fatal(err)
		}
		var refs []*KeyRef
		erase := map[uint64]bool{}
		for _, k := range keys {
			refs = append(refs, k)
		}
		for _, i := range idxs {
			erase[i] = true
		}
		if _, err := l.Shred(ctx, "default", refs, nil, erase); err != nil {
			t.Fatal(err)
		}
	}
	shred("alice")
	if got, _, err := l.Postings(ctx, "default", model, 0, 100); err != nil || !slices.Equal(got, []uint64{1, 3, 5, 7, 9, 11}) {
		t.Errorf("Postings(model) after erasing alice = %v, %v; want bob's entries", got, err)
	}
	if got, err := l.HasTerm(ctx, "default", model, 12); err != nil || got {
		t.Errorf("HasTerm(model, 12) after erasing alice = %v, %v; want false", got, err)
	}
	for key, entries := range termBlocks(t, l) {
		for _, e := range entries {
			if e%2 == 0 {
				t.Errorf("block %s still names alice's erased entry %d", key, e)
			}
		}
	}
	shred("bob")
	if blocks := termBlocks(t, l); len(blocks) != 1 || bareBlock(t, blocks) == "" {
		t.Errorf("posting blocks left after erasing every entry but 13: %v; want only entry 13's", blocks)
	}
	if got, _, err := l.Postings(ctx, "default", model, 0, 100); err != nil || len(got) != 0 {
		t.Errorf("Postings(model) after erasing everyone = %v, %v", got, err)
	}
}

// bareBlock returns the key of the one block holding entry 13 alone (the
// trace term of a span without subject), "" if there is none.
func bareBlock(t *testing.T, blocks map[string][]uint64) string {
	t.Helper()
	found := ""
	for k, entries := range blocks {
		if slices.Equal(entries, []uint64{13}) {
			if found != "" {
				t.Errorf("blocks %s and %s both hold entry 13 alone", found, k)
			}
			found = k
		}
	}
	return found
}

// writeTermsV2 rewrites the posting blocks of a log database as formats 1
// and 2 stored index terms: a key per term and entry, with an empty value.
func writeTermsV2(t *testing.T, db *badger.DB) {
	t.Helper()
	err := db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsTerm}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().KeyCopy(nil)
			prefix := key[:len(key)-8]
			_, entries, err := blockEntries(prefix, it.Item())
			if err != nil {
				return err
			}
			if err := txn.Delete(key); err != nil {
				return err
			}
			for _, e := range entries {
				if err := txn.Set(binary.BigEndian.AppendUint64(slices.Clip(prefix), e), nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An erasure of more entries than one of its transactions holds (1,024)
// finds a block that an earlier transaction of it left partly erased.
func TestPostingBlocksErasedAcrossTransactions(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	model := Term{Field: 5, Value: []byte("model-a")}
	for _, n := range []int{1000, 100} { // blocks of entries 0-999 and 1000-1099
		recs := make([]Record, n)
		for i := range recs {
			recs[i] = subjectSpan(i+1000*(n/1000), "carol", "p")
			recs[i].SpanID[2] = byte(n)
			recs[i].Terms = []Term{model}
		}
		mustAppend(t, l, "default", recs...)
	}
	mustAppend(t, l, "default", func() Record { r := subjectSpan(5000, "dave", "q"); r.Terms = []Term{model}; return r }())
	idxs, err := l.EntryIndexes(ctx, "default", Term{Field: SubjectField, Value: []byte("carol")})
	if err != nil || len(idxs) != 1100 {
		t.Fatalf("EntryIndexes(carol) = %d entries, %v; want 1100", len(idxs), err)
	}
	keys, _, err := l.KeysOf(ctx, "default", idxs)
	if err != nil {
		t.Fatal(err)
	}
	var refs []*KeyRef
	for _, k := range keys {
		refs = append(refs, k)
	}
	erase := map[uint64]bool{}
	for _, i := range idxs {
		erase[i] = true
	}
	if erased, err := l.Shred(ctx, "default", refs, nil, erase); err != nil || len(erased) != 1100 {
		t.Fatalf("Shred(carol) = %d erased, %v; want 1100", len(erased), err)
	}
	if got, _, err := l.Postings(ctx, "default", model, 0, 2000); err != nil || !slices.Equal(got, []uint64{1100}) {
		t.Errorf("Postings(model) after erasing carol = %v, %v; want only dave's entry 1100", got, err)
	}
	if blocks := termBlocks(t, l); len(blocks) != 2 {
		t.Errorf("posting blocks left: %v; want dave's model and subject blocks", blocks)
	}
}
