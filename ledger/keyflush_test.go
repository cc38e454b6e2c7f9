package ledger

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// waitPending waits until n data keys are pending and no request is
// queued: the writer holds the requests of n new subjects.
func waitPending(t *testing.T, l *Ledger, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.keys.mu.Lock()
		pending := len(l.keys.pending)
		l.keys.mu.Unlock()
		if pending >= n && len(l.reqs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys pending, %d requests queued; want %d pending and none queued", pending, len(l.reqs), n)
		}
	}
}

// A request set aside during a DropPrefix is committed when it ends, also
// when its caller gave up meanwhile (a retry then gets the original
// receipt), and Close waits for it rather than dropping it.
func TestAppendSetAsideDuringADropPrefix(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	l.keys.dropMu.Lock() // a DropPrefix is running
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	gaveUp := subjectSpan(1, "gives up", "a")
	if _, err := l.Append(tctx, "default", []Record{gaveUp}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append(new subject) during a DropPrefix, caller gives up = %v, want context.DeadlineExceeded", err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "default", []Record{subjectSpan(2, "waits", "b")})
		waiting <- err
	}()
	waitPending(t, l, 2)
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close() during a DropPrefix with a request set aside = %v before the drop ended", err)
	case <-time.After(100 * time.Millisecond):
	}
	l.keys.dropMu.Unlock()
	if err := <-waiting; err != nil {
		t.Errorf("Append(new subject) set aside during a DropPrefix = %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close() = %v", err)
	}
	l = openTest(t, dir)
	defer l.Close()
	rs := mustAppend(t, l, "default", gaveUp)
	if !rs[0].Duplicate {
		t.Errorf("retry of the append whose caller gave up = %+v, want the original receipt (Duplicate)", rs[0])
	}
}

// A group's new keys are stored in transactions that fit the key
// database's limits, and a transaction Badger still finds too big (nothing
// written) is split, never a failure of the ledger.
func TestNewKeysStoredInTransactionsThatFit(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	l.keys.txnLimit = txnCost{keys: 3 * 7, bytes: 1 << 20, values: 1 << 20} // 7 keys a transaction
	var commits, tooBig atomic.Int32
	l.keys.commitHook = func(txn *badger.Txn) error {
		commits.Add(1)
		if tooBig.CompareAndSwap(0, 1) {
			return badger.ErrTxnTooBig // refused before anything was written
		}
		return txn.Commit()
	}
	recs := distinctSubjects(0, 50)
	if _, err := l.Append(ctx, "default", recs); err != nil {
		t.Fatalf("Append(50 new subjects) = %v", err)
	}
	if h := l.Health(); h.Failed != nil {
		t.Fatalf("Health() = failed: %v", h.Failed)
	}
	keys, err := l.Keys(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 50 {
		t.Errorf("%d data keys stored, want 50", len(keys))
	}
	if n := commits.Load(); n < 50/7+1 {
		t.Errorf("%d key-database transactions for 50 keys at 7 a transaction", n)
	}
	for i := range recs {
		if _, err := l.GetEntry(ctx, "default", uint64(i)); err != nil {
			t.Errorf("GetEntry(%d) = %v", i, err)
		}
	}
}

// Only the keys of the entries a group commits are stored: the new key of
// a request refused in its group is not.
func TestOnlyCommittedEntriesKeysAreStored(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", subjectSpan(1, "a", "first"))
	conflict := subjectSpan(1, "someone new", "other content") // same ids, other content
	if _, err := l.Append(ctx, "default", []Record{conflict}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("Append(conflicting record) = %v, want ErrAlreadyExists", err)
	}
	mustAppend(t, l, "default", subjectSpan(2, "a", "second")) // a group that writes
	keys, err := l.Keys(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Errorf("%d data keys stored, want 1 (the refused request's new key is not stored)", len(keys))
	}
}

// An append whose data key is cached never waits for another append's
// lookup of the key database (which a DropPrefix holds up while it flushes
// the key store's memtable): RETENTION.md promises that appends needing
// no new key do not wait at all.
func TestAppendsDoNotWaitForAnotherAppendsKeyLookup(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", subjectSpan(1, "known", "a")) // its key is cached
	reading, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	l.keys.beforeRead = func() {
		if once.CompareAndSwap(false, true) {
			close(reading)
			<-release
		}
	}
	lookup := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "default", []Record{subjectSpan(2, "someone new", "b")})
		lookup <- err
	}()
	<-reading // its lookup is held up
	known := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "default", []Record{subjectSpan(3, "known", "c")})
		known <- err
	}()
	waited := false
	select {
	case err := <-known:
		if err != nil {
			t.Errorf("Append(cached key) while another append's key lookup is held up = %v", err)
		}
	case <-time.After(30 * time.Second): // the lookup is released only after: a bound on a hang, not a speed
		t.Error("Append(cached key) waits for another append's key lookup")
		waited = true
	}
	close(release)
	if err := <-lookup; err != nil {
		t.Errorf("Append(new subject) = %v", err)
	}
	if waited {
		<-known
	}
}

// A request the writer must re-seal (its key was retired while it waited)
// needs its scope's live key; while a DropPrefix runs, looking it up in the
// key database waits for the drop, so the writer sets that request aside
// like one that needs a new key, and the appends behind it go on.
func TestResealDuringADropPrefixDoesNotHoldTheWriter(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	g := newWriterGate(l)
	mustAppend(t, l, "default", subjectSpan(1, "dave", "a"))
	mustAppend(t, l, "default", subjectSpan(2, "known", "b"))
	keys, _ := subjectKeys(t, l, "dave")
	blocker := g.hold(t, l, "default", 100)
	dave := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "default", []Record{subjectSpan(3, "dave", "sealed under the key being retired")})
		dave <- err
	}()
	waitQueued(t, l, 1)
	if err := l.keys.unscope(l.quit, keys[0]); err != nil { // as Shred does: dave's scope has no key now
		t.Fatal(err)
	}
	retired := make(chan error, 1)
	go func() { retired <- l.retire(ctx, &retirement{keys: [][16]byte{keys[0].ID}}) }()
	waitQueued(t, l, 2)
	// A DropPrefix runs: key-database reads wait for it.
	var dropping atomic.Bool
	dropEnded := make(chan struct{})
	l.keys.beforeRead = func() {
		if dropping.Load() {
			<-dropEnded
		}
	}
	dropping.Store(true)
	l.keys.dropMu.Lock()
	g.open()
	known := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "default", []Record{subjectSpan(4, "known", "c")})
		known <- err
	}()
	waited := false
	select {
	case err := <-known:
		if err != nil {
			t.Errorf("Append(cached key) during a DropPrefix = %v", err)
		}
	case <-time.After(30 * time.Second): // the drop ends only after: a bound on a hang, not a speed
		t.Error("Append(cached key) waits behind a re-seal that waits for a DropPrefix")
		waited = true
	}
	dropping.Store(false)
	close(dropEnded)
	l.keys.dropMu.Unlock()
	if waited {
		<-known
	}
	if err := <-blocker; err != nil {
		t.Error(err)
	}
	if err := <-retired; err != nil {
		t.Error(err)
	}
	if err := <-dave; err != nil {
		t.Errorf("Append(dave) re-sealed after the DropPrefix = %v", err)
	}
}
