package retention

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// A policy carries the revision it was edited from; SetPolicy records it
// only if that is the current revision (an optimistic-concurrency check),
// so that an edit made from an out-of-date copy never overwrites a
// colleague's change.

func setDays(t *testing.T, s *Service, rev, days int) (*Policy, uint64, error) {
	t.Helper()
	p := DefaultPolicy()
	p.Revision, p.Default.Days = rev, days
	return s.SetPolicy(context.Background(), "default", p, "co", fmt.Sprintf("%d days", days))
}

func TestSetPolicyRefusesAStaleRevision(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if p, _, err := setDays(t, e.s, 0, 400); err != nil || p.Revision != 1 {
		t.Fatalf("SetPolicy(from the default, revision 0) = %+v, %v; want revision 1", p, err)
	}
	if p, _, err := setDays(t, e.s, 1, 500); err != nil || p.Revision != 2 {
		t.Fatalf("SetPolicy(from revision 1) = %+v, %v; want revision 2", p, err)
	}
	size, err := e.l.Size(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, edited := range []int{1, 0, 3, 7} {
		_, _, err := setDays(t, e.s, edited, 600)
		var stale *StaleError
		if !errors.Is(err, ErrPolicyChanged) || !errors.As(err, &stale) || stale.Current != 2 || stale.Edited != edited {
			t.Fatalf("SetPolicy(edited revision %d, current 2) = %v; want a *StaleError{Current: 2, Edited: %d}", edited, err, edited)
		}
		for _, want := range []string{"revision 2", fmt.Sprintf("you edited revision %d", edited), "show it again"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("SetPolicy(edited revision %d) = %q, does not say %q", edited, err, want)
			}
		}
	}
	if now, _ := e.l.Size(ctx, "default"); now != size {
		t.Errorf("refused changes appended %d entries", now-size)
	}
	if p, err := e.s.Policy(ctx, "default"); err != nil || p.Revision != 2 || p.Default.Days != 500 {
		t.Fatalf("Policy() = %+v, %v; want revision 2 keeping 500 days", p, err)
	}
}

func TestSetPolicyUnchangedWritesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	set, at, err := setDays(t, e.s, 0, 400)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := e.l.Size(ctx, "default")
	cur, err := e.s.Policy(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	// The policy as shown, set again with another reason and author.
	p, idx, err := e.s.SetPolicy(ctx, "default", *cur, "someone else", "no change")
	if err != nil || p.Revision != 1 || idx != at || p.UpdatedBy != set.UpdatedBy || p.Reason != set.Reason {
		t.Fatalf("SetPolicy(unchanged) = %+v, %d, %v; want revision 1 as recorded at index %d", p, idx, err, at)
	}
	if now, _ := e.l.Size(ctx, "default"); now != size {
		t.Errorf("an unchanged policy appended %d entries", now-size)
	}
	// The default, never set, set as it is: nothing recorded either.
	e2 := newEnv(t)
	if p, idx, err := e2.s.SetPolicy(ctx, "default", DefaultPolicy(), "co", ""); err != nil || p.Revision != 0 || idx != 0 {
		t.Fatalf("SetPolicy(the default, unchanged) = %+v, %d, %v; want revision 0, no entry", p, idx, err)
	}
}

// Another node records a change between this node's reading of the
// policy and its append: the revision's entry is the precondition, checked
// where the append commits, so this node's change is refused.
func TestNodesSetPolicyFromTheSameRevisionInterleaved(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.node("a"), e.node("b")
	if _, _, err := setDays(t, a, 0, 400); err != nil {
		t.Fatal(err)
	}
	var bErr error
	a.beforePolicyAppend = func() { _, _, bErr = setDays(t, b, 1, 500) }
	_, _, aErr := setDays(t, a, 1, 600)
	if bErr != nil {
		t.Fatalf("node b's SetPolicy(from revision 1) = %v", bErr)
	}
	var stale *StaleError
	if !errors.As(aErr, &stale) || stale.Current != 2 || stale.Edited != 1 {
		t.Fatalf("node a's SetPolicy(from revision 1, after node b recorded revision 2) = %v; want a *StaleError{Current: 2, Edited: 1}", aErr)
	}
	for _, s := range []*Service{a, b} {
		if p, err := s.Policy(ctx, "default"); err != nil || p.Revision != 2 || p.Default.Days != 500 {
			t.Fatalf("Policy() on node %s = %+v, %v; want node b's revision 2 (500 days)", s.Node, p, err)
		}
	}
	e.verify(t)
}

// Two nodes set different policies from the same revision at once, many
// times: exactly one wins each time, the other is told to show it again.
func TestNodesSetPolicyFromTheSameRevisionRaced(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.node("a"), e.node("b")
	for round := 0; round < 60; round++ {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []*Service{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errs[i] = setDays(t, s, round, 400+10*round+i)
			}()
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrPolicyChanged):
				t.Fatalf("round %d: node %d: SetPolicy() = %v; want success or ErrPolicyChanged", round, i, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d of two changes from revision %d were recorded (%v); want exactly one", round, won, round, errs)
		}
		p, err := a.Policy(ctx, "default")
		if err != nil || p.Revision != round+1 {
			t.Fatalf("round %d: Policy() = %+v, %v; want revision %d", round, p, err, round+1)
		}
	}
}

// TestSetPolicyRetryOfTheRecordedChangeIsAnswered: a compliance officer
// sets a policy from revision 1; it is recorded as revision 2 but the
// answer is lost (a timeout, a proxy). The identical retry (same rules,
// same revision edited, same reason) is answered with revision 2 and its
// entry's index and appends nothing; a request from revision 1 that
// differs in its rules or its reason is still refused as stale.
func TestSetPolicyRetryOfTheRecordedChangeIsAnswered(t *testing.T) {
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
	if err != nil || p.Revision != first.Revision || idx != at {
		t.Errorf("SetPolicy(retry of the change recorded as revision %d at %d) = %+v, %d, %v; want revision %d at index %d (the retry's own change)", first.Revision, at, p, idx, err, first.Revision, at)
	}
	other := DefaultPolicy()
	other.Revision, other.Default.Days = 1, 500
	if _, _, err := e.s.SetPolicy(ctx, "default", other, "co", "another reason"); !errors.Is(err, ErrPolicyChanged) {
		t.Errorf("SetPolicy(from revision 1, the recorded rules, another reason) = %v, want ErrPolicyChanged", err)
	}
	if _, _, err := setDays(t, e.s, 1, 600); !errors.Is(err, ErrPolicyChanged) {
		t.Errorf("SetPolicy(from revision 1, other rules) = %v, want ErrPolicyChanged", err)
	}
	if now, _ := e.l.Size(ctx, "default"); now != size {
		t.Errorf("the retries appended %d entries", now-size)
	}
}
