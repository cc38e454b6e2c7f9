package retention

import (
	"context"
	"encoding/json"
	"testing"
)

// Attack 16: the periodic takeover of plans whose lease ended (fix 15),
// attacked.

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

// A record of the index of running plans that names a finished plan (the
// index built while another node's plan finished: runningPlans says it
// may list one) is never deleted by takeOver: every takeOver, every 10
// minutes for as long as the server runs, takes and gives up that
// finished plan's lease (two fsynced writes, its token raised) and leaves
// the record for the next. Only a plan being made (claimed) drops it, and
// with sweeps disabled and no erasure asked that never happens.
func TestTakeOverLeavesAStaleRunningRecord(t *testing.T) {
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
