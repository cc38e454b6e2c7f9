package retention

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/veritrace/veritrace/ledger"
)

// Issue 9, design item B: a sweep that expires the last live entry of a
// subject or a session destroys its pseudonym key with its data keys, so
// that the hold and access records naming it by pseudonym are linked to
// nobody; a subject with live entries or a hold in force keeps its key.
// Seen again later, the subject gets a new key: a new pseudonym.
func TestSweepDestroysPseudonymKeysOfExpiredSubjects(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	e.spans(t, "kim", "s-kim", 1, 3, false, "k")
	e.spans(t, "lou", "s-lou", 2, 2, false, "l")
	e.spans(t, "max", "s-max", 3, 2, false, "m")
	ref := func(field uint8, v string) ledger.TermRef {
		r, err := e.l.TermRefOf(ctx, "default", ledger.Term{Field: field, Value: []byte(v)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	kim, skim, lou, max := ref(ledger.SubjectField, "kim"), ref(sessionField, "s-kim"), ref(ledger.SubjectField, "lou"), ref(ledger.SubjectField, "max")
	// kim and her session are named by a released hold (and so have
	// pseudonym keys); lou is held; max is named by an access record
	// (made here as the server does) and has a span appended later.
	h, _, err := e.s.PlaceHold(ctx, "default", HoldScope{Subject: "kim"}, "CASE-1", "litigation", "co")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.PlaceHold(ctx, "default", HoldScope{Session: "s-kim"}, "CASE-1", "litigation", "co"); err != nil {
		t.Fatal(err)
	}
	hs, _ := e.s.Holds(ctx, "default", false)
	for _, x := range hs {
		if _, _, err := e.s.ReleaseHold(ctx, "default", x.ID, "case closed", "co"); err != nil {
			t.Fatal(err)
		}
	}
	oldKim := h.Scope.Pseudonym
	if _, _, err := e.s.PlaceHold(ctx, "default", HoldScope{Subject: "lou"}, "CASE-2", "litigation", "co"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.PseudonymKey(ctx, "default", max, true); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(40 * Day)
	e.spans(t, "max", "", 4, 1, false, "m2") // lives past the sweep
	e.clock.Add(21 * Day)                    // the first spans' 60 days are over
	r, err := e.s.Sweep(ctx, "default")
	if err != nil || r.Erased != 5 || r.Held != 2 {
		t.Fatalf("Sweep() = %+v, %v; want 5 erased (kim's, max's first), 2 held (lou's)", r, err)
	}
	for _, c := range []struct {
		name string
		r    ledger.TermRef
		gone bool
	}{{"kim", kim, true}, {"s-kim", skim, true}, {"lou (held)", lou, false}, {"max (live entry)", max, false}} {
		_, err := e.l.PseudonymKey(ctx, "default", c.r, false)
		if gone := errors.Is(err, ledger.ErrNotFound); gone != c.gone {
			t.Errorf("%s: pseudonym key gone after the sweep = %v (%v), want %v", c.name, gone, err, c.gone)
		}
	}
	all, err := e.s.Holds(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range all {
		switch {
		case x.Active() && (x.Scope.Erased || x.Scope.Subject != "lou"):
			t.Errorf("the hold in force on lou after the sweep: %+v", x.Scope)
		case !x.Active() && (!x.Scope.Erased || x.Scope.Subject != "" || x.Scope.Session != "" || x.Scope.Pseudonym == ""):
			t.Errorf("a released hold on kim after the sweep: %+v; want its id gone, its pseudonym kept", x.Scope)
		}
	}
	stored, _ := e.s.stored(ctx, "default", true)
	for _, x := range stored {
		if !x.Active() && x.Scope.Term != "" {
			t.Errorf("released hold %s keeps its index term after the sweep", x.ID)
		}
	}
	// kim, seen again, gets a new pseudonym.
	e.spans(t, "kim", "", 5, 1, false, "k2")
	h2, _, err := e.s.PlaceHold(ctx, "default", HoldScope{Subject: "kim"}, "CASE-3", "audit", "co")
	if err != nil || h2.Scope.Pseudonym == "" || h2.Scope.Pseudonym == oldKim {
		t.Errorf("PlaceHold(kim, again) = %+v, %v; want a new pseudonym (old %s)", h2, err, oldKim)
	}
	// No version of the destroyed keys' records is left in the key
	// database.
	e.l.Close()
	db := rawKeyDB(t, e.dir, e.keys.Master)
	defer db.Close()
	db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
		defer it.Close()
		for _, r := range []ledger.TermRef{skim} {
			key := append([]byte{0x25, 0, 0, 0, 1, r.Field}, r.MAC[:]...)
			for it.Seek(key); it.Valid() && bytes.HasPrefix(it.Item().Key(), key); it.Next() {
				t.Errorf("pseudonym key record %x (deleted %v) is still in the key database", it.Item().Key(), it.Item().IsDeletedOrExpired())
			}
		}
		return nil
	})
}

// A new span of a subject, and a hold placed on it, racing the sweep that
// expires the subject's last entries: the hold binds (its entries are
// kept by the next sweep and erasure), and whichever way the race went
// the subject has at most one pseudonym key, which names it in the hold
// while the hold is in force.
func TestSweepRacesNewDataOfTheSubject(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	for round := 0; round < 6; round++ {
		subject := string(rune('n'+round)) + "-subject"
		e.spans(t, subject, "", byte(1+round), 2, false, "old")
		if _, err := e.l.PseudonymKey(ctx, "default", mustRef(t, e, subject), true); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(61 * Day)
		var wg sync.WaitGroup
		var errS, errH error
		var h *Hold
		var fresh []uint64
		wg.Add(2)
		go func() { defer wg.Done(); _, errS = e.node("b").Sweep(ctx, "default") }()
		go func() {
			defer wg.Done()
			fresh = e.spans(t, subject, "", byte(100+round), 1, false, "new")
			h, _, errH = e.s.PlaceHold(ctx, "default", HoldScope{Subject: subject}, "CASE-R", "litigation", "co")
		}()
		wg.Wait()
		if errS != nil || errH != nil {
			t.Fatalf("round %d: Sweep() = %v, PlaceHold() = %v", round, errS, errH)
		}
		if got := e.erased(t, fresh); got[0] {
			t.Fatalf("round %d: the new span was erased", round)
		}
		hs, err := e.s.Holds(ctx, "default", false)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range hs {
			if x.ID == h.ID && (x.Scope.Erased || x.Scope.Subject != subject) {
				t.Errorf("round %d: the hold in force names its subject as %+v", round, x.Scope)
			}
		}
		if _, _, err := e.s.ReleaseHold(ctx, "default", h.ID, "done", "co"); err != nil {
			t.Fatal(err)
		}
	}
}

func mustRef(t *testing.T, e *env, subject string) ledger.TermRef {
	t.Helper()
	r, err := e.l.TermRefOf(context.Background(), "default", ledger.Term{Field: ledger.SubjectField, Value: []byte(subject)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// shortPolicy keeps spans 60 days.
func (e *env) shortPolicy(t *testing.T) {
	t.Helper()
	p := Policy{FloorDays: 30, Default: Rule{Class: DefaultClass, Days: 60, Mode: Governance}}
	if _, _, err := e.s.SetPolicy(context.Background(), "default", p, "co", "60 days"); err != nil {
		t.Fatal(err)
	}
}

// A sweep killed after its tombstone, before any key is destroyed, is
// finished by the restart's Resume: the pseudonym keys it planned to
// destroy are gone too.
func TestSweepKilledBeforeShredDestroysPseudonymKeysOnResume(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	e.spans(t, "olga", "s-olga", 1, 2, false, "o")
	ref := mustRef(t, e, "olga")
	if _, err := e.l.PseudonymKey(ctx, "default", ref, true); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(61 * Day)
	testHookAfterTombstone = func() error { return errKilled }
	if _, err := e.s.Sweep(ctx, "default"); !errors.Is(err, errKilled) {
		t.Fatalf("Sweep() = %v, want the kill", err)
	}
	testHookAfterTombstone = nil
	if _, err := e.l.PseudonymKey(ctx, "default", ref, false); err != nil {
		t.Fatalf("the pseudonym key is gone before the sweep was carried out: %v", err)
	}
	e.l.Close()
	e.open(t)
	if err := e.s.Resume(ctx); err != nil || len(e.s.Unfinished()) != 0 {
		t.Fatalf("Resume() = %v, unfinished %v", err, e.s.Unfinished())
	}
	if _, err := e.l.PseudonymKey(ctx, "default", ref, false); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("PseudonymKey after the resumed sweep = %v, want ErrNotFound", err)
	}
}
