package retention

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/veritrace/veritrace/ledger"
)

// Attack24: two nodes given one request id at once with different
// subjects (a client that reused its id for another subject), both past
// the lookup before either stores the hold. The one refused
// (ErrHoldRequestReused) places nothing, and must write nothing either:
// no pseudonym key for a subject that has no data and no hold (a
// refused request makes no key, docs/ACCESS.md "Pseudonyms"; a key for
// it would also make the id "named" for ever after, so the id asked again
// after the first hold's subject is erased no longer matches).
func TestAttack24RefusedHoldRequestMakesNoPseudonymKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "alice", "", 1, 2, false, "a")
	// Two subjects without data: whichever request loses, its subject
	// must be left without a key.
	var arrived sync.WaitGroup
	arrived.Add(2)
	testHookHold = func(step string) error {
		if step == "looked up" {
			arrived.Done()
			arrived.Wait()
		}
		return nil
	}
	t.Cleanup(func() { testHookHold = nil })
	reqs := []HoldRequest{holdReq("reused", HoldScope{Subject: "nobody-1"}), holdReq("reused", HoldScope{Subject: "nobody-2"})}
	var errs [2]error
	var wg sync.WaitGroup
	for i, s := range []*Service{e.node("a"), e.node("b")} {
		wg.Add(1)
		go func() { defer wg.Done(); _, _, errs[i] = s.PlaceHoldRequest(ctx, "default", reqs[i]) }()
	}
	wg.Wait()
	testHookHold = nil
	refused := -1
	for i, err := range errs {
		if errors.Is(err, ErrHoldRequestReused) {
			refused = i
		} else if err != nil {
			t.Fatalf("PlaceHoldRequest(%v) = %v", reqs[i].Scope, err)
		}
	}
	if refused < 0 {
		t.Fatalf("two PlaceHoldRequest(same id, other subjects) at once = %v; want one refused", errs)
	}
	ref, err := e.l.TermRefOf(ctx, "default", ledger.Term{Field: ledger.SubjectField, Value: []byte(reqs[refused].Scope.Subject)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.PseudonymKey(ctx, "default", ref, false); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("after the refused request for a subject without data: its pseudonym key lookup = %v, want ErrNotFound (the refused request made a key)", err)
	}
}
