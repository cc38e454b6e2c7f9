package ledger

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/veritrace/veritrace/ledger/format"
)

// A commit refused before Badger wrote anything (ErrBlockedWrites: the
// gate returns it as it is and the ledger does not fail) must leave the
// writer's log states where they were: the next append takes the index
// the refused one would have had. launch advances the states before the
// commit runs (pipeline.go) and nothing moves them back, so the next
// group is written past a gap of entries that were never stored.
func TestAttack18RefusedCommitLeavesAGap(t *testing.T) {
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
// Badger's hands: after the refusal (the ledger has not failed) that
// group is handed over with indexes and a hash chain that follow entries
// never stored. The log on disk no longer verifies.
func TestAttack18RefusedCommitThenPipelinedGroup(t *testing.T) {
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
	vkey, master := l.VerifierKey(), testKeys(t, dir).Master
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := VerifyDir(ctx, dir, master, vkey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range res {
		if len(tr.Problems) > 0 {
			t.Errorf("VerifyDir(%s): %d problems, first: %v", tr.Tenant, len(tr.Problems), tr.Problems[0])
		}
	}
}

// A request that joins the next group while one commits is stamped with
// the clock read when that group was opened, before the request was even
// submitted. On main a group reads the clock after gathering its
// requests, so appended_at is never earlier than the request's arrival;
// here it is earlier by up to a whole commit (seconds under load), and
// across midnight the entry is sealed under the previous day's key and
// bucket.
func TestAttack18AppendedAtBeforeSubmission(t *testing.T) {
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

// Another path's writes (Shred: re-seal, then destroy the old key) commit
// while the next group is built in a transaction opened before them: a
// retried record whose entry was re-sealed is read in that older snapshot,
// still sealed under the destroyed key, taken for erased, and refused as a
// conflict (ErrAlreadyExists) instead of getting its original receipt.
// The group's snapshot used to be taken when its build began; now it is
// as old as the commit in flight, and every batch that joins the group
// reads it, so the window is a whole commit. Shred's steps are ordered
// by the test's commit hook: the retirement is held until the next append
// is queued; the re-seal commits once that append's group is in Badger's
// hands (its launch opened the next group's transaction).
func TestAttack18DuplicateOfAResealedEntry(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	tid, err := l.tenantID(ctx, "default", false)
	if err != nil {
		t.Fatal(err)
	}
	e := span(1, "kept")
	orig := mustAppend(t, l, "default", e)[0]
	refs, _, err := l.KeysOf(ctx, "default", []uint64{orig.Index})
	if err != nil || len(refs) != 1 {
		t.Fatalf("KeysOf() = %v, %v", refs, err)
	}
	var keys []*KeyRef
	for _, k := range refs {
		keys = append(keys, k)
	}
	xIdx := orig.Index + 1
	rHeld, rRelease := make(chan struct{}), make(chan struct{})
	xHeld, xRelease := make(chan struct{}), make(chan struct{})
	var commits atomic.Int32
	var xSeen, armed atomic.Bool
	building := make(chan struct{}, 1)
	dropped := make(chan error, 8)
	l.hooks.dropped = func(err error) { dropped <- err }
	l.hooks.beforeGroup = func() {
		if armed.Load() {
			building <- struct{}{}
		}
	}
	l.hooks.commit = func(txn *badger.Txn) error {
		if !xSeen.Load() {
			if _, err := txn.Get(entryKey(tid, xIdx)); err == nil { // x's group
				xSeen.Store(true)
				close(xHeld)
				<-xRelease
				return txn.Commit()
			}
		}
		if commits.Add(1) == 1 { // Shred's retirement
			close(rHeld)
			<-rRelease
			return txn.Commit()
		}
		<-xHeld // the re-seal, once x's group is committing
		return txn.Commit()
	}
	defer func() {
		select {
		case <-xRelease:
		default:
			close(xRelease)
		}
	}()
	shred := make(chan error, 1)
	go func() {
		_, err := l.Shred(ctx, "default", keys, nil, nil) // nothing erased: the entry is re-sealed
		shred <- err
	}()
	<-rHeld
	x := appendAsync(ctx, l, span(2, "x"))
	if err := <-dropped; !errors.Is(err, errStale) { // built against the retirement, dropped
		t.Fatalf("dropped: %v", err)
	}
	close(rRelease)
	<-xHeld
	if err := <-shred; err != nil {
		t.Fatalf("Shred() = %v", err)
	}
	armed.Store(true)
	retry := appendAsync(ctx, l, e)
	<-building // built into the group after x's, in the transaction opened at x's launch
	close(xRelease)
	if r := <-x; r.err != nil {
		t.Fatal(r.err)
	}
	r := <-retry
	if r.err != nil {
		t.Fatalf("Append(retry of a re-sealed entry) = %v, want its original receipt", r.err)
	}
	if !r.rs[0].Duplicate || r.rs[0].Index != orig.Index {
		t.Errorf("retry = %+v, want a duplicate of %d", r.rs[0], orig.Index)
	}
	if got, err := l.GetEntry(ctx, "default", orig.Index); err != nil || got.Erased {
		t.Errorf("GetEntry(%d) = erased %v, %v; the entry was kept", orig.Index, got != nil && got.Erased, err)
	}
	// Built in a fresh snapshot, the same retry gets its receipt.
	if rs, err := l.Append(ctx, "default", []Record{e}); err != nil || !rs[0].Duplicate || rs[0].Index != orig.Index {
		t.Errorf("Append(retry, later) = %+v, %v; want a duplicate of %d", rs, err, orig.Index)
	}
}

// Checked and sound (passes): Close while a group commits and the next is
// built: both answered once, both durable, both duplicates after a reopen.
func TestAttack18SoundCloseDuringPipeline(t *testing.T) {
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

// Checked and sound (passes): a version registered in the group
// committing, a span referencing it in the next (built again, accepted);
// a second version under the same name and label in the next (refused).
func TestAttack18SoundVersionRefs(t *testing.T) {
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
