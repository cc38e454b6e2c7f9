package retention

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// leaseUntil returns when plan id's lease ends.
func leaseUntil(t *testing.T, e *env, id string) time.Time {
	t.Helper()
	b, err := e.l.GetState(context.Background(), "default", stateLease+id)
	if err != nil {
		t.Fatal(err)
	}
	var l lease
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	return l.Until
}

// TestLeaseRenewedDuringLongWork: while one step of a plan (here the
// moment after its tombstone, where Shred runs) takes longer than the
// lease, its holder renews the lease, so another node never finds it
// ended and takes the plan over while it still runs.
func TestLeaseRenewedDuringLongWork(t *testing.T) {
	every := leaseRenewEvery
	t.Cleanup(func() { testHookAfterTombstone, leaseRenewEvery = nil, every })
	leaseRenewEvery = 5 * time.Millisecond // of the real clock; the lease's is e.clock
	ctx := context.Background()
	e := newEnv(t)
	a, c := e.node("a"), e.node("c")
	idxs := e.spans(t, "hal", "", 1, 3, false, "h")
	var endedForC []bool
	testHookAfterTombstone = func() error {
		// The step takes 16 minutes of the lease's clock, in steps of 4.
		for range 4 {
			e.clock.Add(4 * time.Minute)
			for i := 0; i < 400 && !leaseUntil(t, e, "hal-1").After(e.clock.Now()); i++ {
				time.Sleep(5 * time.Millisecond) // for a renewal, if any comes
			}
			ended, err := c.leaseEnded(ctx, "default", "hal-1")
			if err != nil {
				return err
			}
			endedForC = append(endedForC, ended)
		}
		return nil
	}
	er, err := a.Erase(ctx, "default", eraseReq("hal-1", "hal"))
	t.Logf("lease ended, as node c saw it after each 4 minutes of a 16-minute step: %v; Erase() = %v", endedForC, err)
	for i, ended := range endedForC {
		if ended {
			t.Errorf("after %d minutes of node a's step, node c finds the lease ended (it could take the plan over while node a still works on it)", 4*(i+1))
		}
	}
	if err != nil || er.State != "done" {
		t.Fatalf("node a's Erase() = %+v, %v; want done", er, err)
	}
	for i, gone := range e.erased(t, idxs) {
		if !gone {
			t.Errorf("entry %d not erased", idxs[i])
		}
	}
}

// TestLeaseLostDuringLongWork: if another node took the lease meanwhile
// (say this process stalled past the lease), the holder's next renewal
// fails: it stops, writes nothing more, and reports ErrBusy; the node
// that took it finishes the plan.
func TestLeaseLostDuringLongWork(t *testing.T) {
	every := leaseRenewEvery
	t.Cleanup(func() { testHookAfterTombstone, leaseRenewEvery = nil, every })
	leaseRenewEvery = 5 * time.Millisecond
	ctx := context.Background()
	e := newEnv(t)
	a, c := e.node("a"), e.node("c")
	idxs := e.spans(t, "ivy", "", 1, 3, false, "i")
	testHookAfterTombstone = func() error {
		// Node c takes the lease as if node a's had ended unrenewed.
		err := e.l.UpdateState(ctx, "default", stateLease+"ivy-1", func(old []byte) ([]byte, error) {
			var l lease
			json.Unmarshal(old, &l)
			return json.Marshal(&lease{Node: "c", Run: c.runID(), Until: e.clock.Now().Add(leaseTTL), Token: l.Token + 1})
		})
		if err != nil {
			return err
		}
		tok := leaseToken(t, e, "ivy-1")
		c.heldToken("default", "ivy-1", &tok)
		return nil
	}
	_, err := a.Erase(ctx, "default", eraseReq("ivy-1", "ivy"))
	testHookAfterTombstone = nil
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("node a's Erase() after losing the lease = %v, want ErrBusy", err)
	}
	if got := e.erased(t, idxs); got[0] || got[1] || got[2] {
		t.Errorf("node a destroyed keys after losing the lease: erased %v", got)
	}
	if err := c.complete(ctx, mustPlan(t, c, "ivy-1")); err != nil {
		t.Fatalf("node c's complete() = %v", err)
	}
	for i, gone := range e.erased(t, idxs) {
		if !gone {
			t.Errorf("entry %d not erased by node c", idxs[i])
		}
	}
}

func mustPlan(t *testing.T, s *Service, id string) *Erasure {
	t.Helper()
	er, err := s.getErasure(context.Background(), "default", id, false)
	if err != nil {
		t.Fatal(err)
	}
	return er
}
