package retention

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// Issue 9, item 1: an acknowledged hold binds every erasure and sweep that
// commits after it. These tests place holds while an erasure or a sweep
// runs and check, from the log alone, that the outcome is the one the
// order of the hold's entry and the first tombstone allows.

const raceEntries = 20000

// traceOf is the trace id appendSubject gives the entries of one batch.
func traceOf(trace uint32, batch int) string {
	var t [16]byte
	t[3] = byte(trace)
	t[7] = byte(batch)
	return hex.EncodeToString(t[:])
}

// checkOutcome checks what an erasure or sweep did against a hold placed
// meanwhile: if the hold's entry precedes the first tombstone, every entry
// it covers is kept (readable) and listed as held with the hold; whatever
// the order, every entry a tombstone names as erased is erased, and every
// entry it names as held is not.
func checkOutcome(t *testing.T, e *env, er *Erasure, hold *Hold, holdIndex uint64, covered []uint64) {
	t.Helper()
	ctx := context.Background()
	if er.State != "done" || len(er.Tombstones) == 0 {
		t.Fatalf("%s %s: state %q, tombstones %v", er.what(), er.ID, er.State, er.Tombstones)
	}
	heldBy := map[uint64]string{}
	erased := map[uint64]bool{}
	for _, ti := range er.Tombstones {
		en, err := e.l.GetEntry(ctx, "default", ti)
		if err != nil {
			t.Fatal(err)
		}
		var ts format.Tombstone
		if err := json.Unmarshal(en.Payload, &ts); err != nil {
			t.Fatal(err)
		}
		for _, te := range ts.Erased {
			erased[te.Index] = true
		}
		for _, h := range ts.Held {
			heldBy[h.Index] = h.HoldID
		}
	}
	for i := range erased {
		en, err := e.l.GetEntry(ctx, "default", i)
		if err != nil || !en.Erased {
			t.Fatalf("entry %d: the tombstone names it erased, GetEntry says erased = %v (%v)", i, en != nil && en.Erased, err)
		}
	}
	for i := range heldBy {
		if en, err := e.l.GetEntry(ctx, "default", i); err != nil || en.Erased {
			t.Fatalf("entry %d: the tombstone names it held, GetEntry says erased (%v)", i, err)
		}
	}
	if holdIndex > er.Tombstones[0] {
		return // the hold came after the commit: it binds what follows
	}
	receiptHeld := map[uint64]string{}
	if er.Kind == "" {
		for _, ts := range receiptTombstones(t, e, er) {
			for _, h := range ts.Held {
				receiptHeld[h.Index] = h.HoldID
			}
		}
	}
	for _, i := range covered {
		en, err := e.l.GetEntry(ctx, "default", i)
		if err != nil || en.Erased || en.Payload == nil {
			t.Fatalf("entry %d is covered by hold %s (entry %d), acknowledged before the first tombstone (%d), and was erased (%v)",
				i, hold.ID, holdIndex, er.Tombstones[0], err)
		}
		if heldBy[i] != hold.ID {
			t.Fatalf("entry %d: the tombstone lists it held by %q, want hold %s", i, heldBy[i], hold.ID)
		}
		if er.Kind == "" && receiptHeld[i] != hold.ID {
			t.Fatalf("entry %d: the receipt lists it held by %q, want hold %s", i, receiptHeld[i], hold.ID)
		}
	}
}

// onlyErasure returns the tenant's one erasure or sweep.
func (e *env) onlyErasure(t *testing.T) *Erasure {
	t.Helper()
	ctx := context.Background()
	ss, _, err := e.s.Erasures(ctx, "default", "", 10)
	if err != nil || len(ss) != 1 {
		t.Fatalf("Erasures() = %v, %v; want one", ss, err)
	}
	er, err := e.s.ErasureStatus(ctx, "default", ss[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return er
}

// A hold placed while an erasure of 20,000 entries is paused between its
// plan and its commit binds it: the erasure plans again.
func TestHoldPlacedBeforeAnErasureCommitsBindsIt(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	last := e.appendSubject(t, "x", raceEntries, 1)
	var hold *Hold
	var holdIndex uint64
	testHookBeforeCommit = func(er *Erasure, attempt int) error {
		if attempt == 0 {
			var err error
			hold, holdIndex, err = e.s.PlaceHold(ctx, "default", HoldScope{TraceID: traceOf(1, 3)}, "CASE-1", "litigation", "co")
			return err
		}
		return nil
	}
	t.Cleanup(func() { testHookBeforeCommit = nil })
	er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "r1", Subject: "x", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
	if err != nil {
		t.Fatal(err)
	}
	covered, err := e.l.SpansOfTrace(ctx, "default", [16]byte{3: 1, 7: 3}, last+1)
	if err != nil || len(covered) != ledger.MaxBatch {
		t.Fatalf("SpansOfTrace = %d entries, %v", len(covered), err)
	}
	if len(er.Held) != len(covered) || len(er.Erase) != raceEntries-len(covered) {
		t.Errorf("erasure: %d erased, %d held; want %d, %d", len(er.Erase), len(er.Held), raceEntries-len(covered), len(covered))
	}
	checkOutcome(t, e, er, hold, holdIndex, covered)
}

// The same for a sweep.
func TestHoldPlacedBeforeASweepCommitsBindsIt(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	last := e.appendSubject(t, "x", 3000, 1)
	e.clock.Add(200 * Day)
	var hold *Hold
	var holdIndex uint64
	testHookBeforeCommit = func(er *Erasure, attempt int) error {
		if attempt == 0 {
			var err error
			hold, holdIndex, err = e.s.PlaceHold(ctx, "default", HoldScope{TraceID: traceOf(1, 1)}, "CASE-1", "litigation", "co")
			return err
		}
		return nil
	}
	t.Cleanup(func() { testHookBeforeCommit = nil })
	res, err := e.s.Sweep(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if res.Held != ledger.MaxBatch || res.Erased != 2000 {
		t.Errorf("Sweep() = %d erased, %d held; want 2000, 1000", res.Erased, res.Held)
	}
	covered, err := e.l.SpansOfTrace(ctx, "default", [16]byte{3: 1, 7: 1}, last+1)
	if err != nil {
		t.Fatal(err)
	}
	checkOutcome(t, e, e.onlyErasure(t), hold, holdIndex, covered)
}

// Holds placed again and again while an erasure commits make it give up
// with ErrHoldsChanging, having destroyed nothing; asking again finishes it.
func TestErasureGivesUpWhileHoldsKeepComing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	idxs := e.spans(t, "x", "s", 1, 4, false, "x")
	testHookBeforeCommit = func(er *Erasure, attempt int) error {
		_, _, err := e.s.PlaceHold(ctx, "default", HoldScope{Session: fmt.Sprintf("other-%d", attempt)}, "CASE-1", "litigation", "co")
		return err
	}
	req := ErasureRequest{ID: "r1", Subject: "x", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}
	if _, err := e.s.Erase(ctx, "default", req); !errors.Is(err, ErrHoldsChanging) {
		t.Fatalf("Erase() = %v, want ErrHoldsChanging", err)
	}
	if got := e.erased(t, idxs); got[0] {
		t.Fatalf("entries erased by an erasure that did not commit: %v", got)
	}
	testHookBeforeCommit = nil
	er, err := e.s.Erase(ctx, "default", req)
	if err != nil || er.State != "done" || len(er.Erase) != 4 {
		t.Fatalf("Erase(again) = %+v, %v", er, err)
	}
}

// A true race, without hooks: a hold is placed at some moment while an
// erasure or a sweep of 20,000 entries runs, a few times over. Whatever
// the moment, the outcome agrees with the order of the hold's entry and
// the first tombstone in the log.
func TestHoldRacing(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(e *env) (*Erasure, error)
	}{
		{"erasure", func(e *env) (*Erasure, error) {
			return e.s.Erase(ctx, "default", ErasureRequest{ID: "r1", Subject: "x", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
		}},
		{"sweep", func(e *env) (*Erasure, error) {
			e.clock.Add(200 * Day)
			if _, err := e.s.Sweep(ctx, "default"); err != nil {
				return nil, err
			}
			return e.onlyErasure(t), nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for run := range 3 {
				e := newEnv(t)
				last := e.appendSubject(t, "x", raceEntries, 1)
				covered, err := e.l.SpansOfTrace(ctx, "default", [16]byte{3: 1, 7: 5}, last+1)
				if err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				var hold *Hold
				var holdIndex uint64
				var herr error
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(time.Duration(run) * 150 * time.Millisecond)
					hold, holdIndex, herr = e.s.PlaceHold(ctx, "default", HoldScope{TraceID: traceOf(1, 5)}, "CASE-1", "litigation", "co")
				}()
				er, err := tc.run(e)
				wg.Wait()
				if err != nil || herr != nil {
					t.Fatalf("run %d: %s = %v, PlaceHold() = %v", run, tc.name, err, herr)
				}
				checkOutcome(t, e, er, hold, holdIndex, covered)
				t.Logf("run %d: hold entry %d, first tombstone %d, %d held", run, holdIndex, er.Tombstones[0], len(er.Held))
			}
		})
	}
}

// A crash between the tombstone and the destruction of the keys: the
// restart's Resume destroys them, the tombstone is not written twice.
func TestCrashBetweenTombstoneAndKeyDestruction(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	idxs := e.spans(t, "x", "s", 1, 3, false, "x")
	testHookAfterTombstone = func() error { return errors.New("killed") }
	_, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "r1", Subject: "x", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
	testHookAfterTombstone = nil
	if err == nil {
		t.Fatal("Erase() with a kill after its tombstone = nil")
	}
	size, _ := e.l.Size(ctx, "default")
	if got := e.erased(t, idxs); got[0] {
		t.Fatalf("erased before the kill: %v", got)
	}
	e.l.Close()
	e.open(t)
	if err := e.s.Resume(ctx); err != nil || len(e.s.Unfinished()) != 0 {
		t.Fatalf("Resume() = %v, unfinished %v", err, e.s.Unfinished())
	}
	if got := e.erased(t, idxs); !got[0] || !got[1] || !got[2] {
		t.Errorf("after Resume: erased = %v", got)
	}
	if after, _ := e.l.Size(ctx, "default"); after != size {
		t.Errorf("Resume appended %d entries; the tombstone was there already", after-size)
	}
	st, err := e.s.ErasureStatus(ctx, "default", "r1")
	if err != nil || st.State != "done" || len(st.Pseudonyms) != 0 || st.SelectorRef != "" {
		t.Fatalf("ErasureStatus = %+v, %v", st, err)
	}
	e.verify(t)
}

// A crash between a hold's state and its entry leaves the data held: the
// hold is in force though never acknowledged.
func TestCrashBetweenHoldStateAndHoldEntry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	idxs := e.spans(t, "x", "s", 1, 2, false, "x")
	h := &Hold{ID: "h1", Scope: HoldScope{Subject: "x"}, CaseRef: "C", Reason: "r", PlacedAt: e.clock.Now()}
	k, err := e.s.pseudonymKey(ctx, "default", ledger.SubjectField, "x", true)
	if err != nil {
		t.Fatal(err)
	}
	h.Scope.Kind, h.Scope.Pseudonym, h.Scope.Sealed, h.Scope.Term = "subject", k.Pseudonym("x"), k.Seal([]byte("x")), k.Ref.String()
	if err := e.s.putHold(ctx, "default", h); err != nil { // then the kill
		t.Fatal(err)
	}
	e.l.Close()
	e.open(t)
	er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "r1", Subject: "x", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.erased(t, idxs); got[0] || got[1] || len(er.Held) != 2 {
		t.Errorf("erased = %v, held %v; want both held", got, er.Held)
	}
}

// A plan that cannot be finished never stops Resume (nor the server's
// start): it is logged, listed by Unfinished (the health check reports it)
// and finished by a later Resume.
func TestResumeListsWhatItCannotFinish(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	idxs := e.spans(t, "x", "s", 1, 2, false, "x")
	testHookAfterTombstone = func() error { return errors.New("killed") }
	t.Cleanup(func() { testHookAfterTombstone = nil })
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "r1", Subject: "x", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}); err == nil {
		t.Fatal("Erase() with a kill after its tombstone = nil")
	}
	e.l.Close()
	e.open(t)
	if err := e.s.Resume(ctx); err != nil {
		t.Fatalf("Resume() = %v, want nil: a plan it cannot finish must not stop the start", err)
	}
	if got := e.s.Unfinished(); len(got) != 1 || got[0] != "default/r1" {
		t.Fatalf("Unfinished() = %v, want [default/r1]", got)
	}
	testHookAfterTombstone = nil
	if err := e.s.Resume(ctx); err != nil || len(e.s.Unfinished()) != 0 {
		t.Fatalf("Resume() again = %v, unfinished %v", err, e.s.Unfinished())
	}
	if got := e.erased(t, idxs); !got[0] || !got[1] {
		t.Errorf("erased = %v after the second Resume", got)
	}
}
