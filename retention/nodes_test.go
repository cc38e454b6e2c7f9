package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// Two nodes over one database: two Service values over the same ledger,
// sharing no memory (no mutex, no policy cache). Every safety property
// of erasures, sweeps, policy changes and hold releases must hold between
// them, as it holds within one (issue 9, design item A).

// node returns a second Service over e's ledger: another node.
func (e *env) node(name string) *Service {
	return &Service{L: e.l, SessionField: sessionField, Now: e.clock.Now, Log: slog.New(slog.DiscardHandler), Node: name}
}

// tombstoneNames returns, for every entry any tombstone of the log names
// as erased, the tombstones naming it.
func tombstoneNames(t *testing.T, e *env) map[uint64][]uint64 {
	t.Helper()
	ctx := context.Background()
	out := map[uint64][]uint64{}
	for from := uint64(0); ; {
		ens, next, err := e.l.EntriesOfKind(ctx, "default", format.KindTombstone, from, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range ens {
			var ts format.Tombstone
			if err := json.Unmarshal(en.Payload, &ts); err != nil {
				t.Fatal(err)
			}
			for _, te := range ts.Erased {
				out[te.Index] = append(out[te.Index], en.Header.Index)
			}
		}
		if next == 0 {
			return out
		}
		from = next
	}
}

func eraseReq(id, subject string) ErasureRequest {
	return ErasureRequest{ID: id, Subject: subject, LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}
}

// Two nodes given the same request id for different subjects at once:
// one request is carried out, the other refused; never both under one id.
func TestNodesSameRequestIDDifferentSubjects(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.node("a"), e.node("b")
	for i := 0; i < 12; i++ {
		sa, sb := fmt.Sprintf("ann-%d", i), fmt.Sprintf("bob-%d", i)
		ia := e.spans(t, sa, "", byte(2*i+1), 3, false, "a")
		ib := e.spans(t, sb, "", byte(2*i+2), 3, false, "b")
		id := fmt.Sprintf("same-%d", i)
		var wg sync.WaitGroup
		var errA, errB error
		wg.Add(2)
		go func() { defer wg.Done(); _, errA = a.Erase(ctx, "default", eraseReq(id, sa)) }()
		go func() { defer wg.Done(); _, errB = b.Erase(ctx, "default", eraseReq(id, sb)) }()
		wg.Wait()
		ea, eb := e.erased(t, ia)[0], e.erased(t, ib)[0]
		if ea && eb {
			t.Fatalf("round %d: request id %q erased both subjects (errors %v, %v)", i, id, errA, errB)
		}
		for _, err := range []error{errA, errB} {
			if err != nil && !errors.Is(err, ErrRequestIDReused) && !errors.Is(err, ErrBusy) {
				t.Fatalf("round %d: Erase() = %v, want success, ErrRequestIDReused or ErrBusy", i, err)
			}
		}
	}
	e.verify(t)
}

// Two nodes erasing the same subject under two request ids: every entry
// is named erased by exactly one tombstone, the first to commit; the
// other request's receipt names only what it erased.
func TestNodesEraseSameSubject(t *testing.T) {
	t.Cleanup(func() { testHookBeforeCommit = nil })
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.node("a"), e.node("b")
	// Deterministic: node b erases the subject while node a's plan for
	// it is stored and not yet committed.
	idxs := e.spans(t, "cleo", "s-cleo", 1, 4, false, "c")
	var fired atomic.Bool
	var errB error
	testHookBeforeCommit = func(er *Erasure, attempt int) error {
		if !fired.Swap(true) {
			_, errB = b.Erase(ctx, "default", eraseReq("from-b", "cleo"))
		}
		return nil
	}
	erA, errA := a.Erase(ctx, "default", eraseReq("from-a", "cleo"))
	testHookBeforeCommit = nil
	if errA != nil || errB != nil {
		t.Fatalf("Erase() = %v (a), %v (b)", errA, errB)
	}
	if got := fmt.Sprint(e.erased(t, idxs)); got != "[true true true true]" {
		t.Fatalf("erased: %s", got)
	}
	for i, by := range tombstoneNames(t, e) {
		if len(by) != 1 {
			t.Errorf("entry %d is named erased by %d tombstones %v", i, len(by), by)
		}
	}
	if len(erA.Erase) != 0 {
		t.Errorf("request from-a, committed second, says it erased %d entries", len(erA.Erase))
	}
	// And raced, many times.
	for i := 0; i < 10; i++ {
		subject := fmt.Sprintf("dora-%d", i)
		e.spans(t, subject, "", byte(10+i), 3, false, "d")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for k, s := range []*Service{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[k] = s.Erase(ctx, "default", eraseReq(fmt.Sprintf("r%d-%d", i, k), subject))
			}()
		}
		wg.Wait()
		for k, err := range errs {
			if errors.Is(err, ErrBusy) {
				// Beside the other's plan, committed and not yet done:
				// refused, nothing done; asked again now that it is.
				_, err = []*Service{a, b}[k].Erase(ctx, "default", eraseReq(fmt.Sprintf("r%d-%d", i, k), subject))
			}
			if err != nil && !errors.Is(err, ErrNothingToErase) {
				t.Fatalf("round %d: Erase() = %v", i, err)
			}
		}
	}
	for i, by := range tombstoneNames(t, e) {
		if len(by) != 1 {
			t.Errorf("entry %d is named erased by %d tombstones %v", i, len(by), by)
		}
	}
	e.verify(t)
}

// A policy set on one node binds the next sweep of every other node: a
// sweep never erases under a superseded policy, whichever node loaded it.
func TestNodesSweepAfterPolicyChangeElsewhere(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.node("a"), e.node("b")
	idxs := e.spans(t, "erin", "", 1, 3, false, "e")
	if _, err := b.Sweep(ctx, "default"); err != nil { // b has read the policy
		t.Fatal(err)
	}
	p, err := a.Policy(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	p.Default.Days = 400
	if p, _, err = a.SetPolicy(ctx, "default", *p, "co", "keep a year"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(200 * Day)
	if r, err := b.Sweep(ctx, "default"); err != nil || r.Erased != 0 {
		t.Fatalf("node b's sweep after node a kept data 400 days = %+v, %v; want nothing erased", r, err)
	}
	if got := fmt.Sprint(e.erased(t, idxs)); got != "[false false false]" {
		t.Errorf("erased after the sweep: %s", got)
	}
	// The other way, raced: node b sets the policy while node a sweeps.
	// A sweep whose tombstone follows the policy's entry erases nothing.
	p.Default.Days = 30
	if p, _, err = b.SetPolicy(ctx, "default", *p, "co", "back to 30 days"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		e.clock.Add(40 * Day)
		more := e.spans(t, fmt.Sprintf("fay-%d", i), "", byte(20+i), 2, false, "f")
		e.clock.Add(40 * Day)
		p.Default.Days = 4000 + i
		var wg sync.WaitGroup
		var res *SweepResult
		var errS, errP error
		var at uint64
		wg.Add(2)
		go func() { defer wg.Done(); res, errS = a.Sweep(ctx, "default") }()
		go func() { defer wg.Done(); p, at, errP = b.SetPolicy(ctx, "default", *p, "co", "keep") }()
		wg.Wait()
		if errS != nil || errP != nil {
			t.Fatalf("round %d: Sweep() = %v, SetPolicy() = %v", i, errS, errP)
		}
		if res.Tombstone != nil && *res.Tombstone > at && res.Erased > 0 {
			t.Fatalf("round %d: the sweep's tombstone (%d) follows the policy keeping data 4000 days (%d), and it erased %d entries", i, *res.Tombstone, at, res.Erased)
		}
		_ = more
	}
	e.verify(t)
}

// A hold released on one node while another erases what it covers: if the
// release precedes the erasure's tombstone, the erasure erases what the
// hold covered; never does a tombstone name a hold released before it.
func TestNodesReleaseHoldDuringErasure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.node("a"), e.node("b")
	for i := 0; i < 12; i++ {
		subject := fmt.Sprintf("gus-%d", i)
		e.spans(t, subject, "", byte(1+i), 3, false, "g")
		h, _, err := a.PlaceHold(ctx, "default", HoldScope{Subject: subject}, "CASE-9", "litigation", "co")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var er *Erasure
		var errE, errR error
		var released uint64
		wg.Add(2)
		go func() { defer wg.Done(); er, errE = b.Erase(ctx, "default", eraseReq(fmt.Sprintf("g-%d", i), subject)) }()
		go func() { defer wg.Done(); _, released, errR = a.ReleaseHold(ctx, "default", h.ID, "case closed", "co") }()
		wg.Wait()
		if errE != nil || errR != nil {
			t.Fatalf("round %d: Erase() = %v, ReleaseHold() = %v", i, errE, errR)
		}
		if released < er.Tombstones[0] && len(er.Held) > 0 {
			t.Fatalf("round %d: the hold was released at %d, the tombstone (%d) still names %d entries held by it", i, released, er.Tombstones[0], len(er.Held))
		}
	}
}

// Resume on one node while another carries out an erasure: the plan is
// the live node's; Resume leaves it alone.
func TestNodesResumeDuringErasure(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.node("a"), e.node("b")
	e.spans(t, "hal", "", 1, 3, false, "h")
	var fired atomic.Bool
	var state string
	var errR error
	testHookAfterTombstone = func() error {
		if fired.Swap(true) {
			return nil
		}
		errR = b.Resume(ctx)
		st, err := b.ErasureStatus(ctx, "default", "hal-1")
		if err != nil {
			errR = err
			return nil
		}
		state = st.State
		return nil
	}
	er, err := a.Erase(ctx, "default", eraseReq("hal-1", "hal"))
	testHookAfterTombstone = nil
	if err != nil || errR != nil {
		t.Fatalf("Erase() = %v, Resume() = %v", err, errR)
	}
	if state != "executing" {
		t.Errorf("node b's Resume carried out node a's live erasure: its state was %q before node a finished", state)
	}
	st, err := a.ErasureStatus(ctx, "default", "hal-1")
	if err != nil || string(st.Receipt) != string(er.Receipt) {
		t.Errorf("the stored receipt is not the one node a returned (%v)", err)
	}
}

// Resume's dropping of orphan chunks on one node while another stores a
// plan in chunks: it drops none of the plan being stored.
func TestNodesOrphanChunksDuringPlanWrite(t *testing.T) {
	old := planChunk
	planChunk = 2
	t.Cleanup(func() { planChunk, testHookPlanChunks = old, nil })
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.node("a"), e.node("b")
	e.spans(t, "ivy", "", 1, 9, false, "i")
	var fired atomic.Bool
	var errR, errStored error
	testHookPlanChunks = func(er *Erasure) error {
		if !fired.Swap(true) {
			errR = b.Resume(ctx)
		}
		return nil
	}
	// Once stored, before anything is done, the plan reads whole.
	testHookBeforeCommit = func(er *Erasure, attempt int) error {
		if attempt == 0 {
			_, errStored = b.getErasure(ctx, "default", er.ID, false)
		}
		return nil
	}
	t.Cleanup(func() { testHookBeforeCommit = nil })
	_, err := a.Erase(ctx, "default", eraseReq("ivy-1", "ivy"))
	testHookPlanChunks, testHookBeforeCommit = nil, nil
	if err != nil || errR != nil {
		t.Fatalf("Erase() = %v, Resume() = %v", err, errR)
	}
	if errStored != nil {
		t.Errorf("the stored plan, after node b's Resume ran while node a stored it: %v", errStored)
	}
}

var _ = ledger.ErrNotFound

// A lease left by a process that died (no release): the same node's next
// run takes it over at once; another node's lease is respected until it
// ends, then taken over.
func TestNodesLeaseOfADeadProcess(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "pia", "", 1, 3, false, "p")
	dead := e.node("b")
	if err := dead.acquire(ctx, "default", "pia-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.node("a").Erase(ctx, "default", eraseReq("pia-1", "pia")); !errors.Is(err, ErrBusy) {
		t.Fatalf("Erase() while node b holds the request's lease = %v, want ErrBusy", err)
	}
	// Node b restarts: a new run of the same node.
	if _, err := e.node("b").Erase(ctx, "default", eraseReq("pia-1", "pia")); err != nil {
		t.Fatalf("Erase() on node b's next run = %v", err)
	}
	e.spans(t, "quin", "", 2, 3, false, "q")
	if err := dead.acquire(ctx, "default", "quin-1"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(leaseTTL + time.Second) // node b never came back
	if _, err := e.node("a").Erase(ctx, "default", eraseReq("quin-1", "quin")); err != nil {
		t.Fatalf("Erase() after node b's lease ended = %v", err)
	}
}
