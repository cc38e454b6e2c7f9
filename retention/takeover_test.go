package retention

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

// The periodic takeover of plans whose lease ended, and the list the
// health check reads (found by attack 16).

// leaseToken returns the fencing token of plan id's lease (0: none).
func leaseToken(t *testing.T, e *env, id string) uint64 {
	t.Helper()
	b, err := e.l.GetState(context.Background(), "default", stateLease+id)
	if err != nil {
		return 0
	}
	var l lease
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	return l.Token
}

// TestTakeOverDropsAStaleRunningRecord: a record of the index of running
// plans that names a finished plan (the index built while a plan
// finished) is dropped by takeOver, which reads the header first and takes
// no lease of a plan done. Before, every takeOver took and gave up that
// plan's lease (two fsynced writes) and left the record for the next.
func TestTakeOverDropsAStaleRunningRecord(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "ada", "", 1, 2, false, "a")
	er, err := e.s.Erase(ctx, "default", eraseReq("ada-1", "ada"))
	if err != nil || er.State != "done" {
		t.Fatalf("Erase() = %+v, %v", er, err)
	}
	// The stale record the index build can leave.
	if err := e.l.PutStates(ctx, "default", []string{stateRunning + er.ID}, [][]byte{{}}); err != nil {
		t.Fatal(err)
	}
	before := leaseToken(t, e, er.ID)
	for i := 0; i < 3; i++ {
		if err := e.s.takeOver(ctx); err != nil {
			t.Fatal(err)
		}
	}
	running, err := e.s.runningPlans(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	after := leaseToken(t, e, er.ID)
	t.Logf("after 3 takeovers: running plans %v, the finished plan's lease token %d -> %d, Unfinished() = %v", running, before, after, e.s.Unfinished())
	if len(running) != 0 || after != before {
		t.Errorf("a finished plan's stale running record: still indexed %v after 3 takeovers, its lease taken %d times; want the record dropped at the first and the lease of a finished plan never taken", running, after-before)
	}
}

// TestResumeKeepsListingAPlanThatFailedMeanwhile: Resume lists and
// unlists its plans one by one; it used to replace the whole list after
// each plan, dropping one that an erasure failing on the same server
// listed meanwhile (the health check then said SERVING).
func TestResumeKeepsListingAPlanThatFailedMeanwhile(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone, testHookBeforeCommit = nil, nil })
	ctx := context.Background()
	e := newEnv(t)
	// Four erasures interrupted after their tombstones: Resume's work.
	testHookAfterTombstone = func() error { return errKilled }
	for _, who := range []string{"ann", "bob", "dan", "eve"} {
		e.spans(t, who, "", byte(len(who)+int(who[0])), 2, false, who)
		if _, err := e.s.Erase(ctx, "default", eraseReq(who+"-1", who)); !errors.Is(err, errKilled) {
			t.Fatalf("Erase(%s) = %v, want the kill", who, err)
		}
	}
	e.spans(t, "cat", "", 9, 2, false, "c")
	e.l.Close()
	e.open(t) // the restart
	injected := errors.New("injected storage error")
	testHookBeforeCommit = func(er *Erasure, _ int) error {
		if er.ID == "cat-1" {
			return injected
		}
		return nil
	}
	calls := 0
	failed := make(chan error, 1)
	testHookAfterTombstone = func() error {
		calls++
		if calls == 1 {
			// A request arrives while Resume carries out its first plan;
			// it waits for Resume's lock long enough to be handed it next.
			go func() {
				_, err := e.s.Erase(ctx, "default", eraseReq("cat-1", "cat"))
				failed <- err
			}()
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	}
	if err := e.s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-failed; !errors.Is(err, injected) {
		t.Fatalf("the request's Erase() = %v, want the injected error", err)
	}
	running, err := e.s.runningPlans(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after Resume: running plans %v, Unfinished() = %v", running, e.s.Unfinished())
	if slices.Contains(running, "cat-1") && !slices.Contains(e.s.Unfinished(), "default/cat-1") {
		t.Errorf("the erasure that failed during Resume is running (stored, executing) but not listed by Unfinished(): the health check says SERVING")
	}
}

// TestTakeOverElsewhereClearsTheFailedNodesList: a node lists a plan that
// failed on it; when another node takes it over and finishes it, the
// first node's next takeOver unlists it (it stayed NOT_SERVING for as
// long as it ran).
func TestTakeOverElsewhereClearsTheFailedNodesList(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	a, c := e.node("a"), e.node("c")
	idxs := e.spans(t, "fay", "", 1, 3, false, "f")
	injected := errors.New("injected storage error")
	testHookAfterTombstone = func() error { return injected }
	if _, err := c.Erase(ctx, "default", eraseReq("fay-1", "fay")); !errors.Is(err, injected) {
		t.Fatalf("node c's Erase() = %v, want the injected error", err)
	}
	testHookAfterTombstone = nil
	t.Logf("after node c's failed erasure: node c's Unfinished() = %v", c.Unfinished())
	if err := a.takeOver(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := a.ErasureStatus(ctx, "default", "fay-1")
	if err != nil || st.State != "done" || slices.Contains(e.erased(t, idxs), false) {
		t.Fatalf("node a's takeover: plan %+v, %v, erased %v; want it done", st, err, e.erased(t, idxs))
	}
	for i := 0; i < 3; i++ { // node c's periodic takeovers, 10 minutes apart
		e.clock.Add(leaseTTL)
		if err := c.takeOver(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("plan done by node a; after 3 of node c's takeovers, node c's Unfinished() = %v", c.Unfinished())
	if len(c.Unfinished()) > 0 {
		t.Errorf("node c's health lists %v, a plan node a finished: NOT_SERVING for as long as node c runs", c.Unfinished())
	}
}
