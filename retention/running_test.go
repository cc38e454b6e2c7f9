package retention

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A plan reads the headers of the running plans only (claimed), not those
// of every erasure and sweep the tenant ever made: a finished plan's
// header, even one no reader could parse, costs a new plan nothing.
func TestClaimedReadsRunningPlansOnly(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "ada", "", 1, 2, false, "a")
	bob := e.spans(t, "bob", "", 2, 2, false, "b")
	if _, err := e.s.Erase(ctx, "default", eraseReq("done-1", "ada")); err != nil {
		t.Fatal(err)
	}
	if err := e.l.PutState(ctx, "default", stateErasure+"done-1", []byte("{not a plan")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Erase(ctx, "default", eraseReq("next", "bob")); err != nil {
		t.Fatalf("Erase() after a finished plan = %v, want success (finished plans are not read)", err)
	}
	if got := e.erased(t, bob); !got[0] || !got[1] {
		t.Errorf("bob's entries erased = %v, want both", got)
	}
}

// The index of running plans: a plan is in it while it is "executing" and
// leaves it in the write that finishes it. A plan stored by an earlier
// build (no index) is found by the index's first build, so that another
// process's erasure of the same entries still leaves them to the
// tombstone that named them first.
func TestRunningPlansIndex(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	cleo := e.spans(t, "cleo", "s-shared", 1, 3, false, "c")
	dan := e.spans(t, "dan", "s-shared", 2, 2, false, "d")
	running := func() []string {
		t.Helper()
		ids, err := e.s.runningPlans(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	// Node a's erasure of cleo stops after its first tombstone: its plan
	// is running and claims cleo's entries.
	crash := errors.New("killed")
	testHookAfterTombstone = func() error { return crash }
	a := e.node("a")
	if _, err := a.Erase(ctx, "default", eraseReq("from-a", "cleo")); !errors.Is(err, crash) {
		t.Fatalf("Erase() = %v, want the injected crash", err)
	}
	testHookAfterTombstone = nil
	// Node a still holds the plan's lease (it works on it), so that node
	// b's erasure does not take it over first (Erase's takeOverTenant).
	if err := a.acquire(ctx, "default", "from-a"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(running(), ","); got != "from-a" {
		t.Fatalf("running plans = %q, want from-a", got)
	}
	// As an earlier build left it: the plan, no index.
	if err := e.l.DeleteStates(ctx, "default", []string{stateRunning + "from-a", stateRunningIndexed}); err != nil {
		t.Fatal(err)
	}
	// Node b's erasure of the shared session finds from-a through the
	// index just built: it does not go ahead beside it (cleo's entries are
	// still readable), and writes nothing.
	b := e.node("b")
	fromB := ErasureRequest{ID: "from-b", Session: "s-shared", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}
	var busy *BusyError
	if _, err := b.Erase(ctx, "default", fromB); !errors.As(err, &busy) || busy.Plan != "from-a" {
		t.Fatalf("node b's Erase() beside from-a = %v, want a BusyError naming from-a", err)
	}
	if got := strings.Join(running(), ","); got != "from-a" {
		t.Errorf("running plans after the index was built = %q, want from-a", got)
	}
	e.clock.Add(leaseTTL) // node a's lease ends
	if err := e.s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if got := running(); len(got) != 0 {
		t.Errorf("running plans after from-a finished = %q, want none", got)
	}
	if er, err := b.Erase(ctx, "default", fromB); err != nil || len(er.Erase) != len(dan) {
		t.Fatalf("node b's Erase() asked again after from-a finished = %+v, %v; want dan's %d entries erased", er, err, len(dan))
	}
	for _, idxs := range [][]uint64{cleo, dan} {
		for i, gone := range e.erased(t, idxs) {
			if !gone {
				t.Errorf("entry %d not erased", idxs[i])
			}
		}
	}
	for i, by := range tombstoneNames(t, e) {
		if len(by) != 1 {
			t.Errorf("entry %d is named erased by %d tombstones %v", i, len(by), by)
		}
	}
	e.verify(t)
}
