package retention

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestOnDemandWorkTakesOverFirst: a plan whose process failed after its
// tombstone (its lease ended) is finished by the next sweep or erasure
// asked for on demand in its tenant, as SweepAll and Run do, before they
// plan: otherwise the entries it claimed stay readable, and out of every
// later plan, until the periodic takeover.
func TestOnDemandWorkTakesOverFirst(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	for _, on := range []string{"sweep", "erase"} {
		t.Run(on, func(t *testing.T) {
			e := newEnv(t)
			a, c := e.node("a"), e.node("c")
			idxs := e.spans(t, "fay", "", 1, 3, false, "f")
			e.spans(t, "gus", "", 2, 2, false, "g")
			injected := errors.New("injected storage error")
			testHookAfterTombstone = func() error { return injected }
			if _, err := c.Erase(ctx, "default", eraseReq("fay-1", "fay")); !errors.Is(err, injected) {
				t.Fatalf("node c's Erase() = %v, want the injected error", err)
			}
			testHookAfterTombstone = nil
			var err error
			if on == "sweep" {
				_, err = a.Sweep(ctx, "default")
			} else {
				_, err = a.Erase(ctx, "default", eraseReq("gus-1", "gus"))
			}
			if err != nil {
				t.Fatalf("node a's %s = %v", on, err)
			}
			st, err := a.ErasureStatus(ctx, "default", "fay-1")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("after node a's %s on demand: the failed plan is %q, its entries erased %v", on, st.State, e.erased(t, idxs))
			if st.State != "done" || slices.Contains(e.erased(t, idxs), false) {
				t.Errorf("node a's %s on demand left the plan whose lease ended %q, its entries erased %v; want it taken over and done first", on, st.State, e.erased(t, idxs))
			}
		})
	}
}
