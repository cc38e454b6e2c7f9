package ledger

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/veritrace/veritrace/ledger/format"
)

// heldCommits holds every group's commit until the test releases it, so
// that requests queued meanwhile are built into the next group while one
// commits (pipeline.go).
type heldCommits struct {
	started    chan struct{} // a group was begun (hooks.beforeGroup)
	committing chan struct{} // a group's commit is held
	release    chan error    // nil: commit it; else fail it after writing it
	dropped    chan error    // a group built against a commit was dropped
	freed      chan struct{} // closed: commits are no longer held
	free       sync.Once
}

func holdCommits(l *Ledger) *heldCommits {
	h := &heldCommits{started: make(chan struct{}, 64), committing: make(chan struct{}, 64), release: make(chan error), dropped: make(chan error, 64), freed: make(chan struct{})}
	l.hooks.beforeGroup = func() { h.started <- struct{}{} }
	l.hooks.dropped = func(err error) { h.dropped <- err }
	l.hooks.commit = func(txn *badger.Txn) error {
		var err error
		select {
		case <-h.freed:
		default:
			h.committing <- struct{}{}
			select {
			case err = <-h.release:
			case <-h.freed:
			}
		}
		if cerr := txn.Commit(); cerr != nil {
			return cerr
		}
		return err // as a failed sync: written, but not known durable
	}
	return h
}

// wasDropped checks that a group built while another committed was
// dropped as stale (and so built again after that commit).
func (h *heldCommits) wasDropped(t *testing.T) {
	t.Helper()
	select {
	case err := <-h.dropped:
		if !errors.Is(err, errStale) {
			t.Errorf("dropped build: %v, want errStale", err)
		}
	default:
		t.Error("no group built during the commit was dropped: it was built on a snapshot without the committing group's writes")
	}
}

// letGo stops holding commits (those of Close's checkpoint included).
func (h *heldCommits) letGo() { h.free.Do(func() { close(h.freed) }) }

type appended struct {
	rs  []Receipt
	err error
}

func appendAsync(ctx context.Context, l *Ledger, recs ...Record) <-chan appended {
	c := make(chan appended, 1)
	go func() {
		rs, err := l.Append(ctx, "default", recs)
		c <- appended{rs, err}
	}()
	return c
}

// first starts an append and waits until its group's commit is held.
// Then it takes every start signal left (its own group's, and that of a
// group built again earlier in the test), so that next waits for the
// start of the group built during this commit, not for a stale signal.
func (h *heldCommits) first(t *testing.T, ctx context.Context, l *Ledger, recs ...Record) <-chan appended {
	t.Helper()
	c := appendAsync(ctx, l, recs...)
	<-h.committing
	for {
		select {
		case <-h.started:
			continue
		default:
		}
		return c
	}
}

// next starts an append and waits until the writer begins building it
// into the group after the one committing.
func (h *heldCommits) next(t *testing.T, ctx context.Context, l *Ledger, recs ...Record) <-chan appended {
	t.Helper()
	c := appendAsync(ctx, l, recs...)
	<-h.started
	return c
}

// A commit that fails while the next group is built: the ledger fails,
// the next group is never handed to storage (no commit after a failed
// one), and both callers get ErrFailed.
func TestPipelineCommitFailureStopsTheNextGroup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	mustAppend(t, l, "default", span(1, "before"))
	h := holdCommits(l)
	defer h.letGo()
	a := h.first(t, ctx, l, span(2, "a"))
	b := h.next(t, ctx, l, span(3, "b"))
	h.release <- errors.New("injected: sync of the write-ahead log failed")
	for name, c := range map[string]<-chan appended{"committing": a, "next": b} {
		if r := <-c; !errors.Is(r.err, ErrFailed) {
			t.Errorf("Append(%s group) = %v, want ErrFailed", name, r.err)
		}
	}
	select {
	case <-h.committing:
		t.Error("the next group was handed to storage after a failed commit")
	default:
	}
	l.Close()
	l = openTest(t, dir)
	defer l.Close()
	// The failed group was written (its sync "failed" after the write);
	// the next one was not.
	if n, err := l.Size(ctx, "default"); err != nil || n != 2 {
		t.Errorf("Size() after reopening = %d, %v; want 2 (the failed group's entry, not the next one's)", n, err)
	}
	if _, err := l.GetEntry(ctx, "default", 2); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetEntry(2) = %v, want ErrNotFound", err)
	}
}

// The same span in the group committing and in the next: the next group
// reads the identity the first writes, is dropped and built again once
// the first is durable, and answers with the first's receipt (or a
// conflict for another payload).
func TestPipelineDuplicateInConsecutiveGroups(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", span(1, "before"))
	h := holdCommits(l)
	defer h.letGo()
	a := h.first(t, ctx, l, span(2, "p"))
	b := h.next(t, ctx, l, span(2, "p"), span(3, "q"))
	h.release <- nil
	ra := <-a
	if ra.err != nil {
		t.Fatal(ra.err)
	}
	<-h.committing
	h.release <- nil
	rb := <-b
	if rb.err != nil {
		t.Fatalf("Append(duplicate in the next group) = %v", rb.err)
	}
	if got := rb.rs[0]; !got.Duplicate || got.Index != ra.rs[0].Index || got.LeafHash != ra.rs[0].LeafHash {
		t.Errorf("receipt of the duplicate = %+v, want the original's %+v as a duplicate", got, ra.rs[0])
	}
	if rb.rs[1].Index != ra.rs[0].Index+1 {
		t.Errorf("the next record's index = %d, want %d", rb.rs[1].Index, ra.rs[0].Index+1)
	}
	h.wasDropped(t)

	c := h.first(t, ctx, l, span(4, "r"))
	d := h.next(t, ctx, l, span(4, "another payload"))
	h.letGo()
	if r := <-c; r.err != nil {
		t.Fatal(r.err)
	}
	if r := <-d; !errors.Is(r.err, ErrAlreadyExists) {
		t.Errorf("Append(same span, other payload, next group) = %v, want ErrAlreadyExists", r.err)
	}
	h.wasDropped(t)
}

// A trace closing commits while a span of that trace is built into the
// next group: the span is refused (the next group read the closure epoch
// the closing advances, so it was built again after it).
func TestPipelineClosingRacesAnAppend(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	s := span(1, "first")
	mustAppend(t, l, "default", s)
	h := holdCommits(l)
	defer h.letGo()
	closed := make(chan error, 1)
	go func() { closed <- l.CloseTraces(ctx, "default", [][16]byte{s.TraceID}, "erasure-1") }()
	<-h.started
	<-h.committing
	late := span(7, "late") // span(i) of every i below 256 is of s's trace
	c := h.next(t, ctx, l, late)
	h.letGo()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if r := <-c; !errors.Is(r.err, ErrTraceClosed) {
		t.Errorf("Append(span of a trace closed by the group committing) = %v, want ErrTraceClosed", r.err)
	}
	h.wasDropped(t)
}

// A bucket's retirement commits while an append sealed under that
// bucket's key is built into the next group: the append fails alone or
// is sealed under a key of another bucket, never committed under a
// retired key.
func TestPipelineRetirementRacesAnAppend(t *testing.T) {
	ctx := context.Background()
	l, _, day := openAt(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", subjectSpan(1, "carol", "x"))
	h := holdCommits(l)
	defer h.letGo()
	b := Bucket{Tenant: 1, Day: day, Class: DefaultRetentionClass}
	retired := make(chan error, 1)
	go func() { _, err := l.RetireBuckets(ctx, "default", []Bucket{b}); retired <- err }()
	<-h.started
	<-h.committing
	c := h.next(t, ctx, l, subjectSpan(2, "carol", "y"))
	h.letGo()
	if err := <-retired; err != nil {
		t.Fatal(err)
	}
	r := <-c
	switch {
	case errors.Is(r.err, ErrBucketExpired):
	case r.err != nil:
		t.Fatalf("Append(carol) in the group after her bucket's retirement = %v", r.err)
	default:
		checkNotUnder(t, l, r.rs, b)
	}
	h.wasDropped(t)
}

// AppendUnless in the group built while a hold entry commits: the
// precondition sees the hold (the next group's scan of the kind index
// touched what the committing group writes: built again after it).
func TestPipelineAppendUnlessRacesAHold(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", span(1, "x"))
	from, err := l.Size(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	h := holdCommits(l)
	defer h.letGo()
	hold := Record{Kind: format.KindHold, SubKind: format.HoldPlaced, Payload: []byte("hold")}
	hold.ID[0] = 1
	a := h.first(t, ctx, l, hold)
	tomb := Record{Kind: format.KindTombstone, SubKind: format.TombstoneErasure, Payload: []byte("tombstone")}
	tomb.ID[0] = 2
	b := make(chan error, 1)
	go func() {
		_, err := l.AppendUnless(ctx, "default", []Record{tomb}, Unless{Kinds: []format.Kind{format.KindHold}, From: from})
		b <- err
	}()
	<-h.started
	h.letGo()
	if r := <-a; r.err != nil {
		t.Fatal(r.err)
	}
	if err := <-b; !errors.Is(err, ErrPrecondition) {
		t.Errorf("AppendUnless(no hold from %d) after a hold committed at %d = %v, want ErrPrecondition", from, from, err)
	}
	if n, _ := l.Size(ctx, "default"); n != from+1 {
		t.Errorf("Size() = %d, want %d (the hold only)", n, from+1)
	}
	h.wasDropped(t)
}

// Callers that give up while their request is built into the next group,
// or while their group commits, get their context's error; the requests
// are still answered exactly once inside (the writer goes on), and
// appending them again returns the committed receipts.
func TestPipelineCallersGiveUp(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	h := holdCommits(l)
	defer h.letGo()
	ctxA, cancelA := context.WithCancel(ctx)
	a := h.first(t, ctxA, l, span(1, "a"))
	ctxB, cancelB := context.WithCancel(ctx)
	b := h.next(t, ctxB, l, span(2, "b"))
	cancelA()
	cancelB()
	for name, c := range map[string]<-chan appended{"committing": a, "next": b} {
		if r := <-c; !errors.Is(r.err, context.Canceled) {
			t.Errorf("Append(%s, caller gone) = %v, want context.Canceled", name, r.err)
		}
	}
	h.release <- nil
	<-h.committing
	h.release <- nil
	h.letGo()
	rs := mustAppend(t, l, "default", span(1, "a"), span(2, "b"))
	for i, r := range rs {
		if !r.Duplicate || r.Index != uint64(i) {
			t.Errorf("receipt %d after giving up = %+v, want a duplicate at %d", i, r, i)
		}
	}
}

// A storage error while the next group is built: the build is dropped,
// nothing of it is written, and its requests are built again (and
// committed) once the group committing is durable.
func TestPipelineStorageErrorInTheNextGroup(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	h := holdCommits(l)
	defer h.letGo()
	a := h.first(t, ctx, l, span(1, "a"))
	injected := errors.New("injected: read error")
	var once sync.Once
	l.hooks.set = func(key, value []byte) error {
		err := error(nil)
		once.Do(func() { err = injected })
		return err
	}
	b := h.next(t, ctx, l, span(2, "b"), span(3, "c"))
	h.letGo()
	if r := <-a; r.err != nil {
		t.Fatal(r.err)
	}
	r := <-b
	if r.err != nil {
		t.Fatalf("Append(next group, after a storage error in its first build) = %v", r.err)
	}
	if r.rs[0].Index != 1 || r.rs[1].Index != 2 || r.rs[0].Duplicate {
		t.Errorf("receipts = %+v, want new entries at 1 and 2", r.rs)
	}
	select {
	case err := <-h.dropped:
		if !errors.Is(err, injected) {
			t.Errorf("dropped build: %v, want the injected error", err)
		}
	default:
		t.Error("the build that failed was not dropped")
	}
	if n, err := l.Size(ctx, "default"); err != nil || n != 3 {
		t.Errorf("Size() = %d, %v; want 3", n, err)
	}
}

// A commit Badger refuses before writing anything (ErrBlockedWrites: the
// gate returns it as it is and the ledger does not fail) leaves the
// writer's log states where they were (land puts them back): the next
// append takes the index the refused one would have had, with no gap.
func TestPipelineRefusedCommitMovesNoState(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", span(1, "before")) // index 0
	refused := false
	l.hooks.commit = func(txn *badger.Txn) error {
		if !refused {
			refused = true
			return badger.ErrBlockedWrites // nothing written
		}
		return txn.Commit()
	}
	if _, err := l.Append(ctx, "default", []Record{span(2, "refused")}); !errors.Is(err, badger.ErrBlockedWrites) {
		t.Fatalf("Append(refused) = %v, want ErrBlockedWrites", err)
	}
	if err := l.failure(); err != nil {
		t.Fatalf("the ledger failed: %v (a refused commit wrote nothing)", err)
	}
	rs := mustAppend(t, l, "default", span(3, "after"))
	if rs[0].Index != 1 {
		t.Errorf("Append(after) = index %d, want 1: the refused group's entry %d was never stored", rs[0].Index, 1)
	}
	for i := uint64(0); i <= rs[0].Index; i++ {
		if _, err := l.GetEntry(ctx, "default", i); err != nil {
			t.Errorf("GetEntry(%d) = %v", i, err)
		}
	}
}

// The same with the next group built while the refused one is in
// Badger's hands: that group was built on the refused one's log states,
// so it is dropped and built again on the states put back; the log on
// disk verifies.
func TestPipelineRefusedCommitDropsTheNextGroup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	mustAppend(t, l, "default", span(1, "before")) // index 0
	started := make(chan struct{}, 8)
	committing := make(chan struct{}, 1)
	release := make(chan struct{})
	var refused atomic.Bool
	l.hooks.beforeGroup = func() { started <- struct{}{} }
	l.hooks.commit = func(txn *badger.Txn) error {
		if refused.CompareAndSwap(false, true) {
			committing <- struct{}{}
			<-release
			return badger.ErrBlockedWrites // nothing written
		}
		return txn.Commit()
	}
	a := appendAsync(ctx, l, span(2, "refused"))
	<-started
	<-committing
	b := appendAsync(ctx, l, span(3, "next"))
	<-started // b is being built while a's commit is held
	close(release)
	if r := <-a; !errors.Is(r.err, badger.ErrBlockedWrites) {
		t.Fatalf("Append(refused) = %v, want ErrBlockedWrites", r.err)
	}
	r := <-b
	if r.err != nil {
		t.Fatalf("Append(next) = %v", r.err)
	}
	if r.rs[0].Index != 1 {
		t.Errorf("Append(next) = index %d, want 1 (the refused entry was never stored)", r.rs[0].Index)
	}
	closeAndVerify(t, l, dir)
}

// A request that joins the next group while one commits is stamped with
// the clock read when its batch was taken (add), never with the clock of
// the moment that group was opened: appended_at is never earlier than the
// request's submission (else, across midnight, the entry would be sealed
// under the previous day's key and bucket).
func TestPipelineAppendedAtNotBeforeSubmission(t *testing.T) {
	ctx := context.Background()
	l, clock, _ := openAt(t, t.TempDir())
	defer l.Close()
	tid, err := l.tenantID(ctx, "default", false)
	if err != nil {
		t.Fatal(err)
	}
	h := holdCommits(l)
	defer h.letGo()
	built := make(chan struct{}, 1)
	l.hooks.set = func(key, _ []byte) error {
		if bytes.Equal(key, entryKey(tid, 2)) {
			built <- struct{}{}
		}
		return nil
	}
	a := h.first(t, ctx, l, span(1, "a"))
	b := h.next(t, ctx, l, span(2, "b")) // the next group is opened now
	clock.Add(10 * time.Second)
	submitted := clock.Now()
	c := appendAsync(ctx, l, span(3, "c"))
	<-built // c joined the group built while a's commit is held
	h.letGo()
	for _, ch := range []<-chan appended{a, b} {
		if r := <-ch; r.err != nil {
			t.Fatal(r.err)
		}
	}
	r := <-c
	if r.err != nil {
		t.Fatal(r.err)
	}
	if at := r.rs[0].AppendedAt; at.Before(submitted) {
		t.Errorf("appended_at = %s, %s before the request was submitted (%s)", at.Format(time.RFC3339), submitted.Sub(at), submitted.Format(time.RFC3339))
	}
}

// Close while a group commits and the next is built: both answered
// once, both durable, both duplicates after a reopen.
func TestPipelineCloseWhileCommitting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	h := holdCommits(l)
	a := h.first(t, ctx, l, span(1, "a"))
	b := h.next(t, ctx, l, span(2, "b"))
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	h.release <- nil // a
	<-h.committing   // b handed over after a
	h.letGo()
	ra, rb := <-a, <-b
	if ra.err != nil || rb.err != nil {
		t.Fatalf("a=%v b=%v", ra.err, rb.err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir)
	defer l.Close()
	if n, _ := l.Size(ctx, "default"); n != 2 {
		t.Errorf("size after reopen = %d", n)
	}
	rs := mustAppend(t, l, "default", span(1, "a"), span(2, "b"))
	if !rs[0].Duplicate || !rs[1].Duplicate || rs[0].Index != ra.rs[0].Index || rs[1].Index != rb.rs[0].Index {
		t.Errorf("%+v vs %+v %+v", rs, ra.rs, rb.rs)
	}
}

// A version registered in the group committing, a span referencing it in
// the next (built again, accepted); a second version under the same name
// and label in the next (refused).
func TestPipelineVersionRefsAcrossGroups(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	h := holdCommits(l)
	defer h.letGo()
	v := version(format.VersionPrompt, "p", "prod", "hello")
	s := span(5, "uses")
	s.Refs[format.VersionPrompt-1] = v.Refs[format.VersionPrompt-1]
	a := h.first(t, ctx, l, v)
	b := h.next(t, ctx, l, s)
	h.release <- nil
	if r := <-a; r.err != nil {
		t.Fatal(r.err)
	}
	<-h.committing
	h.release <- nil
	if r := <-b; r.err != nil {
		t.Fatalf("span referencing a version of the group before: %v", r.err)
	}
	h.wasDropped(t)
	<-h.started // b built again, once a was durable

	c := h.first(t, ctx, l, version(format.VersionPrompt, "q", "prod", "one"))
	d := h.next(t, ctx, l, version(format.VersionPrompt, "q", "prod", "two"))
	h.letGo()
	if r := <-c; r.err != nil {
		t.Fatal(r.err)
	}
	if r := <-d; r.err == nil {
		t.Errorf("second version under the same name: %+v", r.rs)
	} else {
		t.Logf("second version: %v", r.err)
	}
	h.wasDropped(t)
}

// A group Badger refuses at its commit as too big (nothing written) is
// committed again, in parts, as a group found too big before its commit
// is; the group built on it meanwhile is dropped and built again after
// those parts. Every request is answered once, in order, with no gap.
func TestPipelineTooBigCommitIsSplit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	mustAppend(t, l, "default", span(1, "before")) // index 0
	tid, err := l.tenantID(ctx, "default", false)
	if err != nil {
		t.Fatal(err)
	}
	// writes: txn sets entry i (it holds it, and no commit stored it yet).
	writes := func(txn *badger.Txn, i uint64) bool {
		if _, err := txn.Get(entryKey(tid, i)); err != nil {
			return false
		}
		return l.db.View(func(view *badger.Txn) error {
			_, err := view.Get(entryKey(tid, i))
			return err
		}) != nil
	}
	// set signals the first build of entries 2 and 3 (a and b, built while
	// x commits) and 4 (c, built on a's and b's group while it commits).
	built := map[uint64]chan struct{}{2: make(chan struct{}), 3: make(chan struct{}), 4: make(chan struct{})}
	l.hooks.set = func(key, _ []byte) error {
		for i, c := range built {
			if bytes.Equal(key, entryKey(tid, i)) {
				select {
				case <-c:
				default:
					close(c)
				}
			}
		}
		return nil
	}
	xHeld, xRelease := make(chan struct{}), make(chan struct{})
	var refusals atomic.Int32
	l.hooks.commit = func(txn *badger.Txn) error {
		switch {
		case xHeld != nil && writes(txn, 1):
			close(xHeld)
			xHeld = nil
			<-xRelease
		case writes(txn, 2) && writes(txn, 3):
			if refusals.Add(1) == 1 {
				<-built[4] // c is built on this group while it commits
			}
			return badger.ErrTxnTooBig // nothing written
		}
		return txn.Commit()
	}
	held := xHeld
	x := appendAsync(ctx, l, span(2, "x"))
	<-held
	a := appendAsync(ctx, l, span(3, "a"))
	<-built[2]
	b := appendAsync(ctx, l, span(4, "b"))
	<-built[3]
	close(xRelease)
	c := appendAsync(ctx, l, span(5, "c"))
	for i, ch := range []<-chan appended{x, a, b, c} {
		r := <-ch
		if r.err != nil {
			t.Fatalf("Append(%d) = %v", i, r.err)
		}
		if want := uint64(i + 1); r.rs[0].Index != want || r.rs[0].Duplicate {
			t.Errorf("Append(%d) = %+v, want a new entry at %d", i, r.rs[0], want)
		}
	}
	if n := refusals.Load(); n < 2 {
		t.Errorf("a and b were refused together %d times, want 2 (at the launch, then once more before the split)", n)
	}
	closeAndVerify(t, l, dir)
}

// closeAndVerify closes l and checks its directory as an auditor does.
func closeAndVerify(t *testing.T, l *Ledger, dir string) {
	t.Helper()
	vkey, master := l.VerifierKey(), testKeys(t, dir).Master
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := VerifyDir(context.Background(), dir, master, vkey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range res {
		if len(tr.Problems) > 0 {
			t.Errorf("VerifyDir(%s): %d problems, first: %v", tr.Tenant, len(tr.Problems), tr.Problems[0])
		}
	}
}

// AppendUnless naming an identity Absent: a span appended while the
// retention entry of that identity commits, in the group built beside
// it, is refused (the identity it reads is the committing group's: built
// again after it); once the entry is in the log, every such append is
// refused, and one naming another identity commits.
func TestPipelineAppendUnlessAbsentRacesItsEntry(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", span(1, "x"))
	if _, err := l.AppendUnless(ctx, "default", []Record{span(2, "y")}, Unless{Absent: []Identity{{Kind: format.KindSpan}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("AppendUnless(absent: a span identity) = %v, want ErrInvalid", err)
	}
	h := holdCommits(l)
	defer h.letGo()
	rev := Record{Kind: format.KindRetention, SubKind: format.RetentionRules, Payload: []byte("revision 2")}
	rev.ID[0] = 2
	a := h.first(t, ctx, l, rev)
	absent := Unless{Absent: []Identity{{Kind: format.KindRetention, ID: rev.ID}}}
	b := make(chan error, 1)
	go func() {
		_, err := l.AppendUnless(ctx, "default", []Record{span(3, "classified under revision 1")}, absent)
		b <- err
	}()
	<-h.started
	h.letGo()
	r := <-a
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := <-b; !errors.Is(err, ErrPrecondition) {
		t.Errorf("AppendUnless(revision 2 absent) while revision 2 commits = %v, want ErrPrecondition", err)
	}
	if _, err := l.AppendUnless(ctx, "default", []Record{span(4, "z")}, absent); !errors.Is(err, ErrPrecondition) {
		t.Errorf("AppendUnless(revision 2 absent) after it committed = %v, want ErrPrecondition", err)
	}
	rs, err := l.AppendUnless(ctx, "default", []Record{span(5, "w")}, Unless{Absent: []Identity{{Kind: format.KindRetention, ID: [32]byte{3}}}})
	if err != nil || rs[0].Index != 2 {
		t.Errorf("AppendUnless(revision 3 absent) = %+v, %v; want index 2", rs, err)
	}
	h.wasDropped(t)
}
