package retention

import (
	"context"
	"testing"
)

// TestAttack26SetPolicyRetryOfTheWinnerIsAborted: a compliance officer
// sets a policy from revision 1; it is recorded as revision 2 but the
// answer is lost (a timeout, a proxy). The client retries the identical
// request (same rules, same revision edited, same author and reason):
// it is told ABORTED, "the policy was changed meanwhile", though the
// only change is its own. An idempotent retry should be answered with
// revision 2 and its entry's index, as an unchanged write is.
func TestAttack26SetPolicyRetryOfTheWinnerIsAborted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, _, err := setDays(t, e.s, 0, 400); err != nil {
		t.Fatal(err)
	}
	first, at, err := setDays(t, e.s, 1, 500)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := e.l.Size(ctx, "default")
	p, idx, err := setDays(t, e.s, 1, 500) // the same request, retried
	t.Logf("retry of the recorded change: %+v, %d, %v", p, idx, err)
	if err != nil || p.Revision != first.Revision || idx != at {
		t.Errorf("SetPolicy(retry of the change recorded as revision %d at %d) = %v; want revision %d at index %d (the retry's own change)", first.Revision, at, err, first.Revision, at)
	}
	if now, _ := e.l.Size(ctx, "default"); now != size {
		t.Errorf("the retry appended %d entries", now-size)
	}
}
