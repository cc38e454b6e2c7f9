package retention

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/veritrace/veritrace/ledger"
)

// An erasure destroys the subject's pseudonym key as it destroys data
// keys: after it, no version of its record is left in the key database's
// memtables or files, and the hold placed on the subject names it only by
// a pseudonym nothing can link to the id.
func TestErasureDestroysThePseudonymKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "x", "s-x", 1, 3, false, "x")
	h, _, err := e.s.PlaceHold(ctx, "default", HoldScope{Subject: "x"}, "CASE-1", "litigation", "co")
	if err != nil {
		t.Fatal(err)
	}
	if h.Scope.Pseudonym == "" || h.Scope.Pseudonym == "x" {
		t.Fatalf("PlaceHold() scope %+v: want a pseudonym", h.Scope)
	}
	if _, _, err := e.s.ReleaseHold(ctx, "default", h.ID, "case closed", "co"); err != nil {
		t.Fatal(err)
	}
	ref, err := e.l.TermRefOf(ctx, "default", ledger.Term{Field: ledger.SubjectField, Value: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	session, err := e.l.TermRefOf(ctx, "default", ledger.Term{Field: sessionField, Value: []byte("s-x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.PseudonymKey(ctx, "default", session, true); err != nil { // named by an access record, say
		t.Fatal(err)
	}
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "r1", Subject: "x", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []ledger.TermRef{ref, session} {
		if _, err := e.l.PseudonymKey(ctx, "default", r, false); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("PseudonymKey(%s) after the erasure = %v, want ErrNotFound", r, err)
		}
	}
	hs, err := e.s.Holds(ctx, "default", true)
	if err != nil || len(hs) != 1 || !hs[0].Scope.Erased || hs[0].Scope.Subject != "" || hs[0].Scope.Term != "" {
		t.Fatalf("Holds() after the erasure = %+v, %v; want the hold, its subject erased", hs, err)
	}
	stored, err := e.s.stored(ctx, "default", true)
	if err != nil || stored[0].Scope.Term != "" {
		t.Errorf("the hold's state keeps the subject's index term after the erasure: %+v, %v", stored, err)
	}
	e.l.Close()
	db := rawKeyDB(t, e.dir, e.keys.Master)
	defer db.Close()
	db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
		defer it.Close()
		for _, r := range []ledger.TermRef{ref, session} {
			key := append(binary.BigEndian.AppendUint32([]byte{0x25}, 1), r.Field)
			key = append(key, r.MAC[:]...)
			for it.Seek(key); it.Valid() && bytes.HasPrefix(it.Item().Key(), key); it.Next() {
				t.Errorf("pseudonym key record %x (version %d, deleted %v) is still in the key database", it.Item().Key(), it.Item().Version(), it.Item().IsDeletedOrExpired())
			}
		}
		return nil
	})
}
