package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// heldPlanID returns the id of the plan of tenant default whose lease s
// holds and whose id starts with prefix ("" if none).
func heldPlanID(s *Service, prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.tokens {
		if id, ok := strings.CutPrefix(k, "default/"); ok && strings.HasPrefix(id, prefix) {
			return id
		}
	}
	return ""
}

// longStepSeenBy makes the step after the tombstone last 16 minutes of
// the lease's clock, in steps of 4, and records whether node c finds the
// lease of the plan id() names ended after each.
func longStepSeenBy(t *testing.T, e *env, c *Service, id func() string, ended *[]bool) func() error {
	return func() error {
		for range 4 {
			e.clock.Add(4 * time.Minute)
			waitRenewed(t, e, id())
			x, err := c.leaseEnded(context.Background(), "default", id())
			if err != nil {
				return err
			}
			*ended = append(*ended, x)
		}
		return nil
	}
}

// TestSweepRenewsItsLease: a sweep's plan, run by runPlan, keeps
// its lease through a step longer than the lease.
func TestSweepRenewsItsLease(t *testing.T) {
	fastRenewal(t)
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	idxs := e.spans(t, "olga", "", 1, 2, false, "o")
	e.clock.Add(61 * Day)
	c := e.node("c")
	var ended []bool
	testHookAfterTombstone = longStepSeenBy(t, e, c, func() string { return heldPlanID(e.s, "sweep-") }, &ended)
	r, err := e.s.Sweep(ctx, "default")
	t.Logf("lease ended as node c saw it: %v; Sweep() = %+v, %v", ended, r, err)
	for i, x := range ended {
		if x {
			t.Errorf("after %d minutes of the sweep's step, node c finds its lease ended", 4*(i+1))
		}
	}
	if err != nil || r.Erased != 2 {
		t.Fatalf("Sweep() = %+v, %v", r, err)
	}
	e.wantErased(t, idxs, "")
}

// TestSweepLeaseLostStopsWrites: a sweep whose lease another node
// takes mid-run stops, destroys nothing, reports ErrBusy, and its renewal
// goroutine ends.
func TestSweepLeaseLostStopsWrites(t *testing.T) {
	fastRenewal(t)
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	idxs := e.spans(t, "olga", "", 1, 2, false, "o")
	e.clock.Add(61 * Day)
	c := e.node("c")
	var id string
	testHookAfterTombstone = func() error {
		id = heldPlanID(e.s, "sweep-")
		err := e.l.UpdateState(ctx, "default", stateLease+id, func(old []byte) ([]byte, error) {
			var l lease
			json.Unmarshal(old, &l)
			return json.Marshal(&lease{Node: "c", Run: c.runID(), Until: e.clock.Now().Add(leaseTTL), Token: l.Token + 1})
		})
		if err != nil {
			return err
		}
		tok := leaseToken(t, e, id)
		c.heldToken("default", id, &tok)
		// Wait for a renewal to find it lost (real clock, 5 ms a period).
		time.Sleep(50 * time.Millisecond)
		return nil
	}
	_, err := e.s.Sweep(ctx, "default")
	testHookAfterTombstone = nil
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Sweep() after losing the lease = %v, want ErrBusy", err)
	}
	if got := e.erased(t, idxs); got[0] || got[1] {
		t.Errorf("the sweep destroyed keys after losing its lease: erased %v", got)
	}
	if err := c.runPlan(ctx, mustPlan(t, c, id)); err != nil {
		t.Fatalf("node c's runPlan() = %v", err)
	}
	e.wantErased(t, idxs, " by node c")
}

// TestResumeRenewsItsLease: a plan interrupted after its
// tombstone and finished by another node's Resume keeps its lease while
// Resume's long step runs.
func TestResumeRenewsItsLease(t *testing.T) {
	fastRenewal(t)
	ctx := context.Background()
	e := newEnv(t)
	a, b, c := e.node("a"), e.node("b"), e.node("c")
	idxs := e.spans(t, "rue", "", 1, 3, false, "r")
	testHookAfterTombstone = func() error { return errKilled }
	if _, err := a.Erase(ctx, "default", eraseReq("rue-1", "rue")); !errors.Is(err, errKilled) {
		t.Fatalf("Erase() = %v, want the kill", err)
	}
	var ended []bool
	testHookAfterTombstone = longStepSeenBy(t, e, c, func() string { return "rue-1" }, &ended)
	err := b.Resume(ctx)
	t.Logf("lease ended as node c saw it during b's Resume: %v; Resume() = %v, unfinished %v", ended, err, b.Unfinished())
	if len(ended) != 4 {
		t.Fatalf("Resume did not run the plan's long step (saw %d periods)", len(ended))
	}
	for i, x := range ended {
		if x {
			t.Errorf("after %d minutes of Resume's step, node c finds the lease ended", 4*(i+1))
		}
	}
	if err != nil || len(b.Unfinished()) != 0 {
		t.Fatalf("Resume() = %v, unfinished %v", err, b.Unfinished())
	}
	e.wantErased(t, idxs, "")
}

// settledGoroutines waits, for at most 10 s, for the goroutine count to
// fall to at most want, and returns the count. (2 s could be too short on
// a loaded machine for the goroutines of a run's last writes to end.)
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// steadyGoroutines returns the goroutine count once it has not changed
// for 5 looks 10 ms apart (at most 2 s of looking).
func steadyGoroutines() int {
	n, same := runtime.NumGoroutine(), 0
	for i := 0; i < 200 && same < 5; i++ {
		time.Sleep(10 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

// TestNoRenewalLeaks: no path of a plan's run leaves a renewal
// goroutine behind: Erase done, dry run, nothing to erase, reused id,
// lost lease; Sweep; Resume.
func TestNoRenewalLeaks(t *testing.T) {
	fastRenewal(t)
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	e.spans(t, "a1", "", 1, 2, false, "a")
	e.spans(t, "a2", "", 2, 2, false, "b")
	e.spans(t, "a3", "", 3, 2, false, "c")
	runtime.GC()
	before := steadyGoroutines()
	steps := []struct {
		name string
		run  func() error
	}{
		{"erase done", func() error { _, err := e.s.Erase(ctx, "default", eraseReq("x-1", "a1")); return err }},
		{"erase again (done)", func() error { _, err := e.s.Erase(ctx, "default", eraseReq("x-1", "a1")); return err }},
		{"dry run", func() error {
			r := eraseReq("x-2", "a2")
			r.DryRun = true
			_, err := e.s.Erase(ctx, "default", r)
			return err
		}},
		{"nothing to erase", func() error {
			_, err := e.s.Erase(ctx, "default", eraseReq("x-3", "nobody"))
			if errors.Is(err, ErrNothingToErase) {
				return nil
			}
			return err
		}},
		{"killed", func() error {
			testHookAfterTombstone = func() error { return errKilled }
			defer func() { testHookAfterTombstone = nil }()
			_, err := e.s.Erase(ctx, "default", eraseReq("x-4", "a2"))
			if errors.Is(err, errKilled) {
				return nil
			}
			return err
		}},
		{"resume", func() error { return e.s.Resume(ctx) }},
		{"sweep", func() error {
			e.clock.Add(61 * Day)
			_, err := e.s.Sweep(ctx, "default")
			return err
		}},
	}
	for _, st := range steps {
		if err := st.run(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if n := settledGoroutines(before); n > before {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("after %s: %d goroutines, %d before; keepLease's among them: %v", st.name, n, before, strings.Contains(string(buf), "keepLease"))
		}
	}
}

// TestStopRacesRenewal: stop called while a renewal is being
// ticked: once stop returns, no renewal writes the lease again, so the
// release that follows it stands (the lease ends at once, not 10 minutes
// later).
func TestStopRacesRenewal(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	var tick chan time.Time
	old := leaseTicker
	t.Cleanup(func() { leaseTicker, testHookLeaseWritten = old, nil })
	leaseTicker = func() (<-chan time.Time, func()) { return tick, func() {} }
	var writes atomic.Int64
	testHookLeaseWritten = func(string, string) { writes.Add(1) }
	for i := range 100 {
		id := fmt.Sprintf("race-%d", i)
		tick = make(chan time.Time)
		if err := e.s.acquire(ctx, "default", id); err != nil {
			t.Fatal(err)
		}
		_, stop := e.s.keepLease(ctx, "default", id)
		ticked := make(chan struct{})
		go func(c chan time.Time) {
			defer close(ticked)
			for range 3 {
				select {
				case c <- e.clock.Now():
				case <-time.After(time.Millisecond):
				}
			}
		}(tick)
		if i%2 == 0 {
			runtime.Gosched()
		}
		if err := stop(); err != nil {
			t.Fatalf("%s: stop() = %v", id, err)
		}
		after := writes.Load()
		e.s.release(ctx, "default", id)
		<-ticked
		if w := writes.Load(); w != after {
			t.Fatalf("%s: %d lease writes after stop returned", id, w-after)
		}
		if ended, err := e.node("c").leaseEnded(ctx, "default", id); err != nil || !ended {
			t.Fatalf("%s: after stop and release, node c finds the lease ended = %v, %v", id, ended, err)
		}
	}
}

// TestCallerGivesUpAfterTombstone: the caller of Erase gives up
// once the plan's tombstone is written: the plan still runs to the end
// (complete runs under the lease's context, not the caller's), and
// renewals still keep the lease while it does.
func TestCallerGivesUpAfterTombstone(t *testing.T) {
	fastRenewal(t)
	e := newEnv(t)
	c := e.node("c")
	idxs := e.spans(t, "gus", "", 1, 3, false, "g")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ended []bool
	long := longStepSeenBy(t, e, c, func() string { return "gus-1" }, &ended)
	testHookAfterTombstone = func() error { cancel(); return long() }
	er, err := e.s.Erase(ctx, "default", eraseReq("gus-1", "gus"))
	t.Logf("lease ended as node c saw it after the caller gave up: %v; Erase() = %v", ended, err)
	for i, x := range ended {
		if x {
			t.Errorf("after %d minutes, node c finds the lease ended", 4*(i+1))
		}
	}
	if err != nil || er.State != "done" {
		t.Fatalf("Erase() after its caller gave up past the tombstone = %+v, %v; want done", er, err)
	}
	e.wantErased(t, idxs, "")
}

// fastRenewal renews leases every 5 ms for the test and clears the
// tombstone hook after it.
func fastRenewal(t *testing.T) {
	every := leaseRenewEvery
	t.Cleanup(func() { testHookAfterTombstone, leaseRenewEvery = nil, every })
	leaseRenewEvery = 5 * time.Millisecond
}

// wantErased reports every entry of idxs that still reads as kept
// (by: who should have erased it, for the message).
func (e *env) wantErased(t *testing.T, idxs []uint64, by string) {
	t.Helper()
	for i, gone := range e.erased(t, idxs) {
		if !gone {
			t.Errorf("entry %d not erased%s", idxs[i], by)
		}
	}
}
