package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// Attack 15: the fixes of attack 14 (fencing tokens, stamped pseudonym
// keys, the index of running plans), attacked; regression tests of the
// defects it found.

// A sweep whose Shred fails (a storage error, not a crash) after its
// first tombstone is committed is left "executing". Like an erasure that
// fails the same way, it is listed by Unfinished (the health check
// reports NOT_SERVING), and the next periodic sweep first takes it over
// (its lease ended) and finishes it, destroying the pseudonym key of the
// subject whose entries all expired. (Attack 15, defect A: it was not
// listed and nothing retried it before the next restart.)
func TestFailedSweepIsReportedAndTakenOver(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	idxs := e.spans(t, "wim", "", 1, 3, false, "w")
	ref := mustRef(t, e, "wim")
	if _, err := e.l.PseudonymKey(ctx, "default", ref, true); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(61 * Day)
	injected := errors.New("injected storage error")
	testHookAfterTombstone = func() error { return injected }
	if _, err := e.s.Sweep(ctx, "default"); !errors.Is(err, injected) {
		t.Fatalf("Sweep() = %v, want the injected error", err)
	}
	testHookAfterTombstone = nil
	running, err := e.s.runningPlans(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("running plans after the failed sweep: %v; Unfinished() = %v", running, e.s.Unfinished())
	if len(running) != 1 || !slices.Equal(e.s.Unfinished(), []string{"default/" + running[0]}) {
		t.Errorf("after the failed sweep: running plans %v, Unfinished() = %v; want the sweep's plan in both", running, e.s.Unfinished())
	}
	// The periodic sweeper runs again: it finishes the plan first.
	res, err := e.s.SweepAll(ctx)
	t.Logf("SweepAll() = %+v, %v; entries erased: %v", res, err, e.erased(t, idxs))
	running, err = e.s.runningPlans(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(running) > 0 || len(e.s.Unfinished()) > 0 {
		t.Errorf("after the next SweepAll: running plans %v, Unfinished() = %v; want none: the failed sweep taken over and finished", running, e.s.Unfinished())
	}
	t.Logf("tombstones naming each entry erased: %v", tombstoneNames(t, e))
	if _, err := e.l.PseudonymKey(ctx, "default", ref, false); err == nil {
		t.Errorf("the pseudonym key of a subject whose every entry expired outlives the next sweep (the stuck plan was to destroy it)")
	}
	// The restart's Resume finishes the stale plan long after.
	e.l.Close()
	e.open(t)
	if err := e.s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("after the restart's Resume: unfinished %v; tombstones naming each entry erased: %v", e.s.Unfinished(), tombstoneNames(t, e))
	for i, names := range tombstoneNames(t, e) {
		if len(names) != 1 {
			t.Errorf("entry %d is named erased by tombstones %v, want one", i, names)
		}
	}
	e.verify(t)
}

// Resume, at every start, drops the chunks no header names
// (dropOrphanChunks). Every finished erasure and sweep keeps its chunks;
// Resume reads their headers and takes no lease of theirs, so a start
// writes nothing per plan ever finished and raises no fencing token of a
// plan long done. (Attack 15, defect B: it took and gave back the lease
// of every plan with chunks, two fsynced writes per plan ever finished.)
func TestResumeTakesNoLeaseOfAFinishedPlan(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	ids := []string{"done-1", "done-2", "done-3"}
	for i, id := range ids {
		e.spans(t, "p"+id, "", byte(i+1), 2, false, id)
		if er, err := e.s.Erase(ctx, "default", eraseReq(id, "p"+id)); err != nil || er.State != "done" {
			t.Fatalf("Erase(%s) = %v", id, err)
		}
	}
	tokens := func() map[string]uint64 {
		t.Helper()
		out := map[string]uint64{}
		for _, id := range ids {
			b, err := e.l.GetState(ctx, "default", stateLease+id)
			if err != nil {
				t.Fatal(err)
			}
			var l lease
			if err := json.Unmarshal(b, &l); err != nil {
				t.Fatal(err)
			}
			out[id] = l.Token
		}
		return out
	}
	before := tokens()
	e.l.Close()
	e.open(t)
	if err := e.s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	after := tokens()
	t.Logf("lease tokens of finished plans before Resume: %v, after: %v", before, after)
	for _, id := range ids {
		if after[id] != before[id] {
			t.Errorf("Resume took the lease of finished plan %s (token %d -> %d): every start writes to the lease of every plan ever finished",
				id, before[id], after[id])
		}
	}
}

// A plan stored by an earlier build lists its pseudonym keys by ref
// alone, with no stamp. An erasure of that build killed after Shred (its
// subject's key destroyed) is resumed by this build after the subject
// was seen again (new data, and an access naming it under a new key).
// The stamp exists so that such a plan never destroys a key made after it
// read the key (docs/RETENTION.md, "Pseudonym keys": "seen again, e.g.
// between a crash and Resume, is never destroyed by that plan"); with no
// stamp, the selector's key is checked like any other: kept while the
// subject has a live entry. (Attack 15, defect C: it was destroyed
// whatever live entries the subject had.)
func TestResumedPlanOfAnEarlierBuildKeepsTheNewKey(t *testing.T) {
	t.Cleanup(func() { testHookAfterShred = nil })
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "olga", "", 1, 2, false, "o")
	ref := mustRef(t, e, "olga")
	testHookAfterShred = func() error { return errKilled }
	if _, err := e.s.Erase(ctx, "default", eraseReq("old-build", "olga")); !errors.Is(err, errKilled) {
		t.Fatalf("Erase() = %v, want the kill", err)
	}
	testHookAfterShred = nil
	// As the earlier build stored it: the pseudonyms list without stamps.
	er, err := e.s.getErasure(ctx, "default", "old-build", true)
	if err != nil || er.Lists == nil || er.Lists.Pseudonyms == 0 {
		t.Fatalf("plan %+v, %v: want a stored plan listing pseudonym keys", er, err)
	}
	name := chunkName("old-build", er.Lists.Gen, listPseudonyms, 0)
	b, err := e.l.GetState(ctx, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		entries[i] = pseudonymTerm(entries[i])
	}
	if b, err = json.Marshal(entries); err != nil {
		t.Fatal(err)
	}
	if err := e.l.PutState(ctx, "default", name, b); err != nil {
		t.Fatal(err)
	}
	e.l.Close()
	e.open(t) // the new build starts
	// Served before Resume reached the plan: olga is back.
	e.resumeKeepsReturningSubject(t, ref, "olga", "the resumed plan of an earlier build destroyed the new pseudonym key of its subject, seen again (a live entry, an access naming her) "+
		"between the crash and Resume: the pseudonym the access log just named her by no longer links to her")
}

// Node b's sweep dies after its first tombstone (the process is gone: its
// lease is left, not given up). Node a's Resume finds the plan's lease
// held and leaves it to node b. Node b never comes back (scaled down, or
// its disk replaced). Once the lease ends, node a's next periodic sweep
// takes the plan over and finishes it. (Attack 15, defect D: nothing on
// node a took it over without a restart.)
func TestPlanOfADeadNodeIsTakenOver(t *testing.T) {
	t.Cleanup(func() { testHookAfterTombstone = nil })
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	a, b := e.node("a"), e.node("b")
	idxs := e.spans(t, "yann", "", 1, 3, false, "y")
	ref := mustRef(t, e, "yann")
	if _, err := e.l.PseudonymKey(ctx, "default", ref, true); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(61 * Day)
	var id string
	testHookAfterTombstone = func() error { return errKilled }
	if _, err := b.Sweep(ctx, "default"); !errors.Is(err, errKilled) {
		t.Fatalf("Sweep() = %v, want the kill", err)
	}
	testHookAfterTombstone = nil
	ids, err := a.runningPlans(ctx, "default")
	if err != nil || len(ids) != 1 {
		t.Fatalf("running plans %v, %v", ids, err)
	}
	id = ids[0]
	// A killed process gives nothing up: its lease stays (Sweep's deferred
	// release ran in this test; take it again as node b's).
	if err := e.node("b").acquire(ctx, "default", id); err != nil {
		t.Fatal(err)
	}
	if err := a.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("node a's Resume while node b's lease lasts: Unfinished() = %v", a.Unfinished())
	e.clock.Add(leaseTTL + time.Minute) // node b never came back
	for day := 0; day < 3; day++ {
		e.clock.Add(Day)
		if _, err := a.SweepAll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ids, err = a.runningPlans(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	_, keyErr := e.l.PseudonymKey(ctx, "default", ref, false)
	t.Logf("three days of node a's sweeps after node b's lease ended: running %v, Unfinished() = %v, yann's pseudonym key still exists: %v, erased %v",
		ids, a.Unfinished(), keyErr == nil, e.erased(t, idxs))
	if slices.Contains(ids, id) || keyErr == nil {
		t.Errorf("plan %s of a dead node: still running %v, its subject's pseudonym key kept %v, long after its lease ended; want it taken over and finished by node a",
			id, slices.Contains(ids, id), keyErr == nil)
	}
}

// Node a plans while node b's erasure finishes. claimed reads a running
// plan's header, then its erase list chunk by chunk, neither under that
// plan's lease nor in one snapshot; node b's last write of its plan
// writes the next generation's chunks and header, then deletes the
// chunks of the generation node a is reading. claimed reads the header
// again (readPlan): the plan, now done, claims nothing. (Attack 15, defect
// E: node a's plan failed, "chunk ... is missing".)
func TestClaimedReadsAPlanThatFinishesUnderIt(t *testing.T) {
	old := planChunk
	planChunk = 1
	t.Cleanup(func() { planChunk, testHookAfterTombstone = old, nil })
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.node("a"), e.node("b")
	errs := make(chan error, 1)
	// A race of timing: tried a few times (each erasure finishing is one
	// chance), stopping at the first failure.
	for round := 0; round < 8 && len(errs) == 0; round++ {
		subject := fmt.Sprintf("zoe%d", round)
		e.spans(t, subject, "", byte(round+1), 400, false, "z")
		var fired, stop atomic.Bool
		done := make(chan struct{})
		testHookAfterTombstone = func() error {
			if fired.Swap(true) {
				return nil
			}
			go func() {
				defer close(done)
				probe := &Erasure{ID: "probe", Tenant: "default"}
				for n := 0; !stop.Load(); n++ {
					if _, err := a.claimed(ctx, probe); err != nil {
						errs <- fmt.Errorf("round %d, claimed read %d times: %w", round, n+1, err)
						return
					}
				}
			}()
			return nil
		}
		_, err := b.Erase(ctx, "default", eraseReq(subject+"-1", subject))
		stop.Store(true)
		<-done
		testHookAfterTombstone = nil
		if err != nil {
			t.Fatalf("node b's Erase() = %v", err)
		}
	}
	select {
	case err := <-errs:
		t.Errorf("node a's plan, reading the plans claimed while node b's plan finished: %v", err)
	default:
	}
}

// A sweep fails after its tombstone on a server whose periodic sweeps are
// disabled (--sweep-interval 0): Run still takes its plan over once its
// lease has ended, and Unfinished empties.
func TestRunTakesOverWithSweepsDisabled(t *testing.T) {
	old := takeOverEvery
	takeOverEvery = time.Millisecond
	t.Cleanup(func() { takeOverEvery, testHookAfterTombstone = old, nil })
	ctx := context.Background()
	e := newEnv(t)
	e.shortPolicy(t)
	idxs := e.spans(t, "vera", "", 1, 2, false, "v")
	e.clock.Add(61 * Day)
	testHookAfterTombstone = func() error { return errKilled }
	if _, err := e.s.Sweep(ctx, "default"); !errors.Is(err, errKilled) {
		t.Fatalf("Sweep() = %v, want the kill", err)
	}
	testHookAfterTombstone = nil
	if len(e.s.Unfinished()) != 1 {
		t.Fatalf("Unfinished() = %v after the failed sweep, want its plan", e.s.Unfinished())
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { defer close(ran); e.s.Run(runCtx, 0) }()
	// Polled, not timed: the test fails only if Run never finishes it.
	for len(e.s.Unfinished()) > 0 {
		time.Sleep(time.Millisecond)
	}
	stop()
	<-ran
	running, err := e.s.runningPlans(ctx, "default")
	if err != nil || len(running) != 0 {
		t.Errorf("running plans after Run took over: %v, %v; want none", running, err)
	}
	if erased := e.erased(t, idxs); slices.Contains(erased, false) {
		t.Errorf("entries erased after Run took over: %v, want all", erased)
	}
	e.verify(t)
}

// readPlan reads a plan again when its holder writes a new generation
// between the header read and the chunks' (the chunks read are deleted),
// and fails, without reading forever, when a chunk of the generation the
// header still names is missing.
func TestReadPlanRereadsANewGeneration(t *testing.T) {
	old := planChunk
	planChunk = 1
	t.Cleanup(func() { planChunk = old })
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.node("a"), e.node("b")
	er := &Erasure{ID: "gen-test", Tenant: "default", State: "executing", Erase: []uint64{1, 2, 3}}
	if err := b.putErasure(ctx, er); err != nil {
		t.Fatal(err)
	}
	reads := 0
	got, err := a.readPlan(ctx, "default", er.ID, func(o *Erasure) error {
		reads++
		if reads == 1 { // node b writes the plan again under node a's read
			er.Erase = []uint64{4, 5}
			if err := b.putErasure(ctx, er); err != nil {
				t.Fatal(err)
			}
		}
		return a.loadLists(ctx, o)
	})
	if err != nil || reads != 2 || !slices.Equal(got.Erase, []uint64{4, 5}) {
		t.Fatalf("readPlan() = %+v, %v after %d reads; want the second generation's list [4 5], read twice", got, err, reads)
	}
	// A chunk of the current generation lost: an error, after one re-read.
	if err := e.l.DeleteStates(ctx, "default", []string{chunkName(er.ID, got.Lists.Gen, listErase, 1)}); err != nil {
		t.Fatal(err)
	}
	reads = 0
	_, err = a.readPlan(ctx, "default", er.ID, func(o *Erasure) error { reads++; return a.loadLists(ctx, o) })
	if !errors.Is(err, errChunkMissing) || reads != 1 {
		t.Fatalf("readPlan() of a plan missing a chunk = %v after %d reads; want errChunkMissing after 1", err, reads)
	}
}
