package retention

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// A plan whose first tombstone is committed is carried out only if it is
// the plan the tombstone was made from: the stored plan here differs from
// the committed tombstone (as when a process that lost the lease appended
// the tombstone of its own plan: docs/RETENTION.md, "What the checks leave
// open"), so resuming it destroys nothing and leaves it unfinished.
func TestResumeRefusesAPlanThatIsNotTheOneCommitted(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	idxs := e.spans(t, "ida", "", 1, 3, false, "i")
	testHookAfterTombstone = func() error { return errKilled }
	if _, err := e.s.Erase(ctx, "default", eraseReq("ida-1", "ida")); !errors.Is(err, errKilled) {
		t.Fatalf("Erase() = %v, want the kill", err)
	}
	testHookAfterTombstone = nil
	er, err := e.s.getErasure(ctx, "default", "ida-1", false)
	if err != nil {
		t.Fatal(err)
	}
	er.Erase = er.Erase[:len(er.Erase)-1]
	if err := e.s.acquire(ctx, "default", "ida-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.putErasure(ctx, er); err != nil {
		t.Fatal(err)
	}
	e.s.release(ctx, "default", "ida-1")
	if err := e.s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.s.Unfinished(); fmt.Sprint(got) != "[default/ida-1]" {
		t.Errorf("Unfinished() = %v, want the plan that is not the one committed", got)
	}
	if got := fmt.Sprint(e.erased(t, idxs)); got != "[false false false]" {
		t.Errorf("erased %s, want nothing destroyed", got)
	}
}
