package retention

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veritrace/veritrace/ledger"
)

// Attack 14: the multi-process erasure safety and pseudonym-key expiry
// work (design9), attacked. Each test names the defect it shows.

// skewedNode returns another node over e's ledger whose clock runs ahead
// of e's by skew (clock skew between nodes, or a node that looks at the
// lease after the holder has been slow that long).
func (e *env) skewedNode(name string, skew time.Duration) *Service {
	return &Service{L: e.l, SessionField: sessionField, Log: slog.New(slog.DiscardHandler), Node: name,
		Now: func() time.Time { return e.clock.Now().Add(skew) }}
}

// A sweep plans to destroy the pseudonym key of a subject whose last live
// entries expire; a new span of the subject is appended (and read, so its
// key is in use) after the sweep planned and before it commits. Nothing
// makes the sweep plan again (its commit precondition watches holds,
// tombstones and retention entries, not the subject's new data), so it
// destroys the key of a subject that has a live entry: the pseudonym
// changes under the live subject, and the access records written while it
// had data no longer link to it. docs/RETENTION.md: "A subject that still
// has live entries, or a hold in force, keeps its key and its pseudonym
// however much of its data expires."
func TestAttack14SweepDestroysKeyOfSubjectWithNewData(t *testing.T) {
	t.Cleanup(func() { testHookBeforeCommit = nil })
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	e.spans(t, "rosa", "", 1, 2, false, "old")
	ref := mustRef(t, e, "rosa")
	if _, err := e.l.PseudonymKey(ctx, "default", ref, true); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(61 * Day)
	var fresh []uint64
	var before string
	var fired atomic.Bool
	testHookBeforeCommit = func(er *Erasure, attempt int) error {
		if fired.Swap(true) {
			return nil
		}
		// The sweep's plan is stored, naming rosa's pseudonym key: rosa
		// sends a new span, and an auditor reads it (an allowed access
		// names rosa by her pseudonym, made or read here).
		fresh = e.spans(t, "rosa", "", 2, 1, false, "new")
		k, err := e.l.PseudonymKey(ctx, "default", ref, true)
		if err != nil {
			return err
		}
		before = k.Pseudonym("rosa")
		return nil
	}
	res, err := e.s.Sweep(ctx, "default")
	testHookBeforeCommit = nil
	if err != nil {
		t.Fatal(err)
	}
	if res.Erased != 2 {
		t.Fatalf("the sweep erased %d entries, want the 2 old ones", res.Erased)
	}
	if got := e.erased(t, fresh); got[0] {
		t.Fatal("the new span was erased")
	}
	k, err := e.l.PseudonymKey(ctx, "default", ref, false)
	if errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("DEFECT: the sweep destroyed the pseudonym key of a subject that has a live entry (appended after the sweep planned, before its tombstone): " +
			"the subject's pseudonym changes while it has data, and the access records naming it by its pseudonym no longer link to it")
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Pseudonym("rosa"); got != before {
		t.Fatalf("DEFECT: the live subject's pseudonym changed across the sweep")
	}
}

// Lease fencing covers the plan's header writes only. A node that is slow
// after its tombstone (or whose clock lags) loses the lease; another node
// takes the plan over and finishes it; the subject is then seen again and
// gets a new pseudonym key. The slow node wakes and carries on with the
// plan it holds in memory: Shred is not fenced by the lease, so it
// destroys the subject's NEW pseudonym key, though the subject has live
// data again. Only its final header write is refused.
func TestAttack14SlowHolderDestroysNewPseudonymKeyAfterTakeover(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	a := e.node("a")
	b := e.skewedNode("b", leaseTTL+time.Minute) // sees a's lease ended
	e.spans(t, "sven", "", 1, 3, false, "s")
	ref := mustRef(t, e, "sven")
	var fired atomic.Bool
	var errB error
	var fresh []uint64
	var newPseudonym string
	testHookAfterTombstone = func() error {
		if fired.Swap(true) {
			return nil // node b's run of the plan
		}
		// Node a is slow here, past its lease: node b takes the request
		// over (asked again) and finishes it.
		if _, errB = b.Erase(ctx, "default", eraseReq("sven-1", "sven")); errB != nil {
			return nil
		}
		// Sven is seen again: new data, and an allowed access naming him
		// makes his new pseudonym key.
		fresh = e.spans(t, "sven", "", 2, 1, false, "again")
		k, err := e.l.PseudonymKey(ctx, "default", ref, true)
		if err != nil {
			errB = err
			return nil
		}
		newPseudonym = k.Pseudonym("sven")
		return nil
	}
	_, errA := a.Erase(ctx, "default", eraseReq("sven-1", "sven"))
	testHookAfterTombstone = nil
	if errB != nil {
		t.Fatalf("node b's takeover: %v", errB)
	}
	t.Logf("node a's Erase after it lost the lease: %v", errA)
	if got := e.erased(t, fresh); got[0] {
		t.Fatal("DEFECT: the slow node erased the subject's new span")
	}
	k, err := e.l.PseudonymKey(ctx, "default", ref, false)
	if errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("DEFECT: a node that had lost the plan's lease (another node finished the plan) still destroyed pseudonym keys: " +
			"the subject's NEW pseudonym key, made after the takeover for its new data, is gone (Shred is not fenced by the lease)")
	}
	if err != nil {
		t.Fatal(err)
	}
	if k.Pseudonym("sven") != newPseudonym {
		t.Fatal("DEFECT: the subject's new pseudonym changed")
	}
}

// The lease names a node and a run, with no generation: a node that lost
// it (slow past its end) and finds it released by the node that took the
// plan over takes it again, as if it had never lost it, and its header
// write passes the fence. The slow node overwrites the finished plan with
// its own outcome: the receipt stored (what ErasureStatus and the receipt
// RPC answer) is not the one the node that carried the erasure out
// returned to its caller.
func TestAttack14LostLeaseRetakenAfterReleaseOverwritesReceipt(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	a := e.node("a")
	b := e.skewedNode("b", leaseTTL+time.Minute)
	e.spans(t, "tove", "", 1, 3, false, "t")
	var fired atomic.Bool
	var erB *Erasure
	var errB error
	testHookAfterTombstone = func() error {
		if !fired.Swap(true) {
			erB, errB = b.Erase(ctx, "default", eraseReq("tove-1", "tove"))
		}
		return nil
	}
	erA, errA := a.Erase(ctx, "default", eraseReq("tove-1", "tove"))
	testHookAfterTombstone = nil
	if errB != nil {
		t.Fatalf("node b's takeover: %v", errB)
	}
	st, err := b.ErasureStatus(ctx, "default", "tove-1")
	if err != nil {
		t.Fatal(err)
	}
	if errA == nil && string(erA.Receipt) == string(st.Receipt) && string(erB.Receipt) != string(st.Receipt) {
		t.Fatalf("DEFECT: node a, which lost the plan's lease to node b, took it again once node b released it and rewrote the finished plan: "+
			"the stored receipt is node a's (completed %s), not the one node b returned to its caller (completed %s); the lease has no generation to fence a stale holder",
			erA.CompletedAt.Format(time.RFC3339), erB.CompletedAt.Format(time.RFC3339))
	}
	if string(erB.Receipt) != string(st.Receipt) {
		t.Fatalf("DEFECT: the stored receipt is not the one node b returned (node a: %v)", errA)
	}
}
