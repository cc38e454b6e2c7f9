package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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

// waitRenewed waits, for at most 30 s, until plan id's lease runs past
// e.clock's now: for a renewal, if any comes. (2 s can be too short for
// a renewal's write, fsynced, on a loaded machine; a renewal that never
// comes still fails the test, through leaseEnded.)
func waitRenewed(t *testing.T, e *env, id string) {
	for deadline := time.Now().Add(30 * time.Second); !leaseUntil(t, e, id).After(e.clock.Now()) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
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
			waitRenewed(t, e, "hal-1")
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

// leaseLossEnv is a test environment whose leases are renewed every 5 ms,
// for tests that make a node lose one (testHookAfterTombstone, reset at
// the end).
func leaseLossEnv(t *testing.T) *env {
	every := leaseRenewEvery
	t.Cleanup(func() { testHookAfterTombstone, leaseRenewEvery = nil, every })
	leaseRenewEvery = 5 * time.Millisecond
	return newEnv(t)
}

// TestLeaseLostDuringLongWork: if another node took the lease meanwhile
// (say this process stalled past the lease), the holder's next renewal
// fails: it stops, writes nothing more, and reports ErrBusy; the node
// that took it finishes the plan.
func TestLeaseLostDuringLongWork(t *testing.T) {
	ctx, e := context.Background(), leaseLossEnv(t)
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
	if err := c.runPlan(ctx, mustPlan(t, c, "ivy-1")); err != nil {
		t.Fatalf("node c's runPlan() = %v", err)
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

// handTicker replaces keepLease's clock with tickers the test ticks by
// hand, and counts the writes of plan id's lease record.
type handTicker struct {
	mu      sync.Mutex
	tickers []chan time.Time
	writes  int
}

func newHandTicker(t *testing.T, id string) *handTicker {
	h := &handTicker{}
	old := leaseTicker
	t.Cleanup(func() { leaseTicker, testHookLeaseWritten = old, nil })
	leaseTicker = func() (<-chan time.Time, func()) {
		c := make(chan time.Time)
		h.mu.Lock()
		h.tickers = append(h.tickers, c)
		h.mu.Unlock()
		return c, func() {
			h.mu.Lock()
			h.tickers = slices.DeleteFunc(h.tickers, func(x chan time.Time) bool { return x == c })
			h.mu.Unlock()
		}
	}
	testHookLeaseWritten = func(_, got string) {
		if got == id {
			h.mu.Lock()
			h.writes++
			h.mu.Unlock()
		}
	}
	return h
}

func (h *handTicker) count() int { h.mu.Lock(); defer h.mu.Unlock(); return h.writes }

// tick ticks every running renewal once; it returns how many it ticked.
func (h *handTicker) tick(now time.Time) (int, error) {
	h.mu.Lock()
	running := slices.Clone(h.tickers)
	h.mu.Unlock()
	for _, c := range running {
		select {
		case c <- now:
		case <-time.After(10 * time.Second):
			return 0, errors.New("a renewal took no tick in 10s")
		}
	}
	return len(running), nil
}

// period ticks every running renewal once and waits until each tick has
// been acted on (one write of the lease each); it returns the ticks.
func (h *handTicker) period(now time.Time) (int, error) {
	before := h.count()
	n, err := h.tick(now)
	if err != nil {
		return 0, err
	}
	for i := 0; h.count()-before < n; i++ {
		if i == 10000 {
			return 0, fmt.Errorf("%d ticks made %d lease writes in 10s", n, h.count()-before)
		}
		time.Sleep(time.Millisecond)
	}
	return n, nil
}

// TestLeaseRenewedOncePerPeriod: a plan's run renews its lease from one
// place. While a long step of complete runs (here the moment after the
// tombstone, where Shred runs) inside Erase, which renews the lease while
// it plans, each renewal period writes the lease once, not once for
// Erase and once more for complete.
func TestLeaseRenewedOncePerPeriod(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	h := newHandTicker(t, "kit-1")
	idxs := e.spans(t, "kit", "", 1, 3, false, "k")
	const periods = 5
	writes := -1
	testHookAfterTombstone = func() error {
		before := h.count()
		for range periods {
			e.clock.Add(leaseRenewEvery)
			if _, err := h.period(e.clock.Now()); err != nil {
				return err
			}
		}
		writes = h.count() - before
		return nil
	}
	er, err := e.s.Erase(ctx, "default", eraseReq("kit-1", "kit"))
	if err != nil || er.State != "done" {
		t.Fatalf("Erase() = %+v, %v; want done", er, err)
	}
	if writes != periods {
		t.Errorf("lease writes during %d renewal periods of a long step of complete = %d, want %d (one renewal per period)", periods, writes, periods)
	}
	for i, gone := range e.erased(t, idxs) {
		if !gone {
			t.Errorf("entry %d not erased", idxs[i])
		}
	}
}

// TestKeepLeaseStopTwice: keepLease's stop may be called more than once:
// a second call returns what the first did, writes nothing and does not
// panic, whether the lease was kept or lost meanwhile.
func TestKeepLeaseStopTwice(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, c := e.node("a"), e.node("c")
	for _, lose := range []bool{false, true} {
		id := fmt.Sprintf("stop-%v", lose)
		t.Run(id, func(t *testing.T) {
			h := newHandTicker(t, id)
			if err := a.acquire(ctx, "default", id); err != nil {
				t.Fatal(err)
			}
			lctx, stop := a.keepLease(ctx, "default", id)
			if _, err := h.period(e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			var want error
			if lose {
				// Node a stalls past its lease; node c takes it, and
				// node a's next renewal finds it lost.
				e.clock.Add(leaseTTL + time.Second)
				if err := c.acquire(ctx, "default", id); err != nil {
					t.Fatal(err)
				}
				if _, err := h.tick(e.clock.Now()); err != nil {
					t.Fatal(err)
				}
				select {
				case <-lctx.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("the work's context did not end in 10s after the lease was lost")
				}
				want = errLeaseLost
			}
			first := stop()
			before := h.count()
			second := stop()
			if !errors.Is(first, want) || first != want {
				t.Errorf("stop() = %v, want %v", first, want)
			}
			if second != first {
				t.Errorf("stop() again = %v, want %v (the first call's result)", second, first)
			}
			if n := h.count() - before; n != 0 {
				t.Errorf("stop() again wrote the lease %d times, want 0", n)
			}
		})
	}
}

// TestEraseLostLeaseNamesPlan: an Erase that loses its plan's lease says
// which plan (its request id), as runPlan does, and never names the
// subject.
func TestEraseLostLeaseNamesPlan(t *testing.T) {
	ctx, e := context.Background(), leaseLossEnv(t)
	a, c := e.node("a"), e.node("c")
	const id, subject = "req-7341", "quentin-subject"
	e.spans(t, subject, "", 1, 2, false, "q")
	testHookAfterTombstone = func() error {
		// Node c takes the lease as if node a's had ended unrenewed.
		return e.l.UpdateState(ctx, "default", stateLease+id, func(old []byte) ([]byte, error) {
			var l lease
			json.Unmarshal(old, &l)
			return json.Marshal(&lease{Node: "c", Run: c.runID(), Until: e.clock.Now().Add(leaseTTL), Token: l.Token + 1})
		})
	}
	_, err := a.Erase(ctx, "default", eraseReq(id, subject))
	testHookAfterTombstone = nil
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Erase() after losing the lease = %v, want ErrBusy", err)
	}
	if msg := err.Error(); !strings.Contains(msg, id) || strings.Contains(msg, subject) {
		t.Errorf("Erase() after losing the lease = %q, want it to name plan %q and not the subject", msg, id)
	}
}
