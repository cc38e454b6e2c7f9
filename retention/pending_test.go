package retention

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/ledger"
)

// An erasure never reports done while entries it selected are still
// readable under another plan that claimed them (its tombstone is in the
// log) and has not destroyed their keys: one another node is carrying
// out, or one whose finishing failed here (docs/RETENTION.md, "What the
// checks leave open").

// readable reports, for each entry, whether the ledger still reads its
// payload (GetEntry decrypts it; Erased: its key or ciphertext is gone).
func readable(t *testing.T, e *env, idxs []uint64) []bool {
	t.Helper()
	out := e.erased(t, idxs)
	for i := range out {
		out[i] = !out[i]
	}
	return out
}

// checkRetried checks the outcome of a request asked again once the
// plan it was refused beside is done: done, its receipt naming the
// entries it erased (later), every entry of the subject erased, each
// named by exactly one tombstone.
func checkRetried(t *testing.T, e *env, er *Erasure, err error, earlier, later []uint64) {
	t.Helper()
	if err != nil || er.State != "done" {
		t.Fatalf("Erase() asked again once the other plan was done = %+v, %v; want done", er, err)
	}
	var rc Receipt
	if err := json.Unmarshal(er.Receipt, &rc); err != nil {
		t.Fatal(err)
	}
	if rc.ErasedCount != uint64(len(later)) || !slices.Equal(er.Erase, later) {
		t.Errorf("receipt: %d erased, plan erased %v; want %d, %v (the entries no other request erased)", rc.ErasedCount, er.Erase, len(later), later)
	}
	all := append(slices.Clone(earlier), later...)
	if got := readable(t, e, all); slices.Contains(got, true) {
		t.Errorf("readable after both erasures: %v", got)
	}
	names := tombstoneNames(t, e)
	for _, i := range all {
		if len(names[i]) != 1 {
			t.Errorf("entry %d is named erased by %d tombstones %v", i, len(names[i]), names[i])
		}
	}
}

// checkBusy checks the refusal of an erasure beside another plan: ErrBusy
// naming that plan's request id and no subject, and nothing stored.
func checkBusy(t *testing.T, s *Service, err error, id, other, subject string) {
	t.Helper()
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), other) || strings.Contains(err.Error(), subject) {
		t.Fatalf("Erase(%s) beside the unfinished erasure %s = %v; want ErrBusy naming %s and not the subject", id, other, err, other)
	}
	if _, err := s.ErasureStatus(context.Background(), "default", id); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("ErasureStatus(%s) after the refusal = %v; want ErrNotFound (no plan written)", id, err)
	}
}

// TestEraseBesideAnotherNodesPlanIsNotDone: node a's erasure of a subject
// is past its tombstone and has not destroyed its keys; node b erases
// the same subject (with entries appended since). Node b must not answer
// done while node a's entries are readable.
func TestEraseBesideAnotherNodesPlanIsNotDone(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.node("a"), e.node("b")
	earlier := e.spans(t, "cust-8812", "", 1, 3, false, "s")
	var later []uint64
	var erB *Erasure
	var errB error
	var whenDone []bool
	fired := false
	testHookAfterTombstone = func() error {
		if fired {
			return nil
		}
		fired = true
		later = e.spans(t, "cust-8812", "", 2, 2, false, "s")
		erB, errB = b.Erase(ctx, "default", eraseReq("from-b", "cust-8812"))
		whenDone = readable(t, e, earlier)
		return nil
	}
	if _, err := a.Erase(ctx, "default", eraseReq("from-a", "cust-8812")); err != nil {
		t.Fatalf("node a's Erase() = %v", err)
	}
	testHookAfterTombstone = nil
	if errB == nil {
		t.Fatalf("node b's Erase() answered %q (erased %d) while node a's entries %v were readable: %v", erB.State, len(erB.Erase), earlier, whenDone)
	}
	checkBusy(t, b, errB, "from-b", "from-a", "cust-8812")
	er, err := b.Erase(ctx, "default", eraseReq("from-b", "cust-8812"))
	checkRetried(t, e, er, err, earlier, later)
	e.verify(t)
}

// TestEraseBesideAFailedPlanIsNotDone: one process; an erasure whose
// finishing failed past its tombstone (listed unfinished), and failed
// again when the next erasure took it over first. The next erasure of
// the same subject must not answer done while its entries are readable.
func TestEraseBesideAFailedPlanIsNotDone(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	earlier := e.spans(t, "cust-9921", "", 1, 3, false, "t")
	injected := errors.New("injected storage error")
	calls := 0
	testHookAfterTombstone = func() error {
		calls++
		if calls <= 2 { // the erasure, then its takeover by the next one
			return injected
		}
		return nil
	}
	if _, err := e.s.Erase(ctx, "default", eraseReq("first", "cust-9921")); !errors.Is(err, injected) {
		t.Fatalf("Erase(first) = %v, want the injected error", err)
	}
	if got := e.s.Unfinished(); !slices.Equal(got, []string{"default/first"}) {
		t.Fatalf("Unfinished() = %v", got)
	}
	later := e.spans(t, "cust-9921", "", 2, 2, false, "t")
	er, err := e.s.Erase(ctx, "default", eraseReq("second", "cust-9921"))
	if err == nil {
		t.Fatalf("Erase(second) answered %q (erased %d) beside the unfinished first, whose entries are readable: %v", er.State, len(er.Erase), readable(t, e, earlier))
	}
	checkBusy(t, e.s, err, "second", "first", "cust-9921")
	testHookAfterTombstone = nil
	er, err = e.s.Erase(ctx, "default", eraseReq("second", "cust-9921"))
	checkRetried(t, e, er, err, earlier, later)
	if got := e.s.Unfinished(); len(got) != 0 {
		t.Errorf("Unfinished() after both finished = %v", got)
	}
	e.verify(t)
}

// TestEraseReplannedBesideAPlanCommittedMeanwhile: node b's plan is
// stored; before it commits, node a's erasure of the same subject commits
// its tombstone and then fails (its keys not destroyed). Node b's commit
// is refused and it plans again beside node a's plan: it must not answer
// done. Its plan stays stored, uncommitted and unlisted; asked again once
// node a's plan can be finished, both are carried out (Erase takes the
// plans whose lease ended over first).
func TestEraseReplannedBesideAPlanCommittedMeanwhile(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone, testHookBeforeCommit = nil, nil })
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.node("a"), e.node("b")
	earlier := e.spans(t, "cust-4471", "", 1, 3, false, "c")
	injected := errors.New("injected storage error")
	var errA error
	fired := false
	testHookBeforeCommit = func(er *Erasure, attempt int) error {
		if er.ID != "from-b" || fired {
			return nil
		}
		fired = true
		testHookAfterTombstone = func() error { testHookAfterTombstone = nil; return injected }
		_, errA = a.Erase(ctx, "default", eraseReq("from-a", "cust-4471"))
		return nil
	}
	_, err := b.Erase(ctx, "default", eraseReq("from-b", "cust-4471"))
	testHookBeforeCommit = nil
	if !errors.Is(errA, injected) {
		t.Fatalf("node a's Erase() = %v, want the injected error", errA)
	}
	if err == nil {
		t.Fatalf("node b's Erase() answered done beside from-a, whose entries are readable: %v", readable(t, e, earlier))
	}
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Plan != "from-a" || strings.Contains(err.Error(), "cust-4471") {
		t.Fatalf("node b's Erase() = %v; want a BusyError naming from-a and not the subject", err)
	}
	if got := b.Unfinished(); len(got) != 0 {
		t.Errorf("node b lists %v: a plan refused beside another is not a failure", got)
	}
	if st, err := b.ErasureStatus(ctx, "default", "from-b"); err != nil || st.State != "executing" || st.Tombstone != nil || len(st.Tombstones) != 0 {
		t.Fatalf("from-b after the refusal: %+v, %v; want stored, executing, with no tombstone", st, err)
	}
	later := e.spans(t, "cust-4471", "", 2, 2, false, "c")
	er, err := b.Erase(ctx, "default", eraseReq("from-b", "cust-4471"))
	checkRetried(t, e, er, err, earlier, later)
	e.verify(t)
}
