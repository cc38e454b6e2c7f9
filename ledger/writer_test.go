package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// writerGate holds the writer before it gathers a group, so that a test can
// queue the requests it wants in one group.
type writerGate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

// newWriterGate installs a gate on a ledger that has not appended yet.
func newWriterGate(l *Ledger) *writerGate {
	g := &writerGate{entered: make(chan struct{}), release: make(chan struct{})}
	l.hooks.beforeGroup = func() {
		if g.armed.CompareAndSwap(true, false) {
			g.entered <- struct{}{}
			<-g.release
		}
	}
	return g
}

// hold appends a blocker record (trace byte 0xee, span n) and returns once
// the writer holds it as the first request of a group. Queue more requests,
// then call open; the blocker's result arrives on the returned channel.
func (g *writerGate) hold(t *testing.T, l *Ledger, tenant string, n int) <-chan error {
	t.Helper()
	g.armed.Store(true)
	done := make(chan error, 1)
	r := span(n, "blocker")
	r.TraceID[1] = 0xee
	go func() {
		_, err := l.Append(context.Background(), tenant, []Record{r})
		done <- err
	}()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never took the blocker")
	}
	return done
}

func (g *writerGate) open() { g.release <- struct{}{} }

// waitQueued waits until n requests wait in the writer's queue.
func waitQueued(t *testing.T, l *Ledger, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(l.reqs) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", len(l.reqs), n)
		}
	}
}

// closeWithin closes the ledger and fails the test if Close does not
// return in time.
func closeWithin(t *testing.T, l *Ledger, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("Close did not return within %s", d)
	}
}

// Defect 1 of issue 8: a request that failed validation was answered, its
// caller left, and a storage error later in the same group answered it
// again: the second send blocked the writer for good.
func TestWriterAnswersEveryRequestOnce(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	g := newWriterGate(l)
	var failB atomic.Bool
	l.hooks.set = func(key, _ []byte) error {
		if failB.Load() && key[0] == nsEntry && binary.BigEndian.Uint64(key[5:]) == 2 {
			return errors.New("injected storage error")
		}
		return nil
	}
	mustAppend(t, l, "default", span(1, "original")) // index 0
	failB.Store(true)
	blocker := g.hold(t, l, "default", 100) // index 1

	// A conflicts with span 1 (same ids, other content) and its caller leaves.
	ctxA, cancelA := context.WithCancel(ctx)
	doneA := make(chan error, 1)
	go func() {
		_, err := l.Append(ctxA, "default", []Record{span(1, "different")})
		doneA <- err
	}()
	waitQueued(t, l, 1)
	cancelA()
	if err := <-doneA; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append(A) after its context ended = %v, want context.Canceled", err)
	}
	// B would be index 2, whose write fails.
	doneB := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "default", []Record{span(2, "b")})
		doneB <- err
	}()
	waitQueued(t, l, 2)
	g.open()

	for name, ch := range map[string]<-chan error{"blocker": blocker, "B": doneB} {
		select {
		case err := <-ch:
			if err == nil {
				t.Errorf("Append(%s) in a group whose storage failed = nil error", name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Append(%s) was never answered: the writer is stuck", name)
		}
	}
	failB.Store(false)
	if _, err := l.Append(ctx, "default", []Record{span(3, "c")}); err != nil {
		t.Errorf("Append after the failed group = %v", err)
	}
	closeWithin(t, l, 10*time.Second)
}

// Defect 6 of issue 8: Badger applies a group to its memtable before the
// write-ahead log sync and reports the commit's error afterwards; a writer
// that goes on reuses the indices of a group that may be visible.
func TestCommitFailureIsFatal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	var failCommit atomic.Bool
	l.hooks.commit = func(txn *badger.Txn) error {
		err := txn.Commit()
		if failCommit.Load() {
			return errors.New("injected: sync of the write-ahead log failed")
		}
		return err
	}
	mustAppend(t, l, "default", span(1, "first")) // index 0
	failCommit.Store(true)
	_, err := l.Append(ctx, "default", []Record{span(2, "the group that failed")})
	failCommit.Store(false)
	if err == nil {
		t.Fatal("Append with a failing commit = nil error")
	}
	rs, err := l.Append(ctx, "default", []Record{span(3, "after the failure")})
	if err == nil {
		retry, rerr := l.Append(ctx, "default", []Record{span(2, "the group that failed")})
		e, _ := l.GetEntry(ctx, "default", rs[0].Index)
		t.Fatalf("Append after a failed commit = index %d, <nil>; want ErrFailed. Entry %d now holds %q; a retry of the failed record gives %+v, %v",
			rs[0].Index, rs[0].Index, e.Payload, retry, rerr)
	}
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after a failed commit = %v, want ErrFailed", err)
	}
	if h := l.Health(); h.Failed == nil {
		t.Errorf("Health() after a failed commit = %+v, want Failed set", h)
	}
	if err := l.PutState(ctx, "default", "x", []byte("y")); !errors.Is(err, ErrFailed) {
		t.Errorf("PutState on a failed ledger = %v, want ErrFailed", err)
	}
	closeWithin(t, l, 10*time.Second)

	// The restart recovers from disk: the failed group was applied here, so
	// the retry gets its original receipt, and the next record the next index.
	l = openTest(t, dir)
	defer l.Close()
	again := mustAppend(t, l, "default", span(2, "the group that failed"), span(3, "after the failure"))
	if !again[0].Duplicate || again[0].Index != 1 || again[1].Duplicate || again[1].Index != 2 {
		t.Errorf("after restart: receipts %+v, want span 2 a duplicate at 1 and span 3 new at 2", again)
	}
	for i, want := range []string{"first", "the group that failed", "after the failure"} {
		if e, err := l.GetEntry(ctx, "default", uint64(i)); err != nil || string(e.Payload) != want {
			t.Errorf("GetEntry(%d) after restart = %v, %v; want payload %q", i, e, err, want)
		}
	}
}

// spanBatch makes n spans of one request with payloads of the given size
// and the four index terms of a typical span.
func spanBatch(req, n, size int) []Record {
	recs := make([]Record, n)
	payload := make([]byte, size)
	for i := range recs {
		r := Record{Kind: format.KindSpan, SubKind: 1, Subject: fmt.Sprintf("user-%d", i%50), Payload: payload}
		binary.BigEndian.PutUint32(r.TraceID[:], uint32(req+1))
		binary.BigEndian.PutUint32(r.SpanID[:], uint32(i+1))
		r.Terms = benchTerms(r.Subject)
		recs[i] = r
	}
	return recs
}

// Defect 2 of issue 8: a group of valid requests exceeded Badger's
// transaction limit and every request in it failed with ErrTxnTooBig.
func TestValidConcurrentLoadIsNeverRefused(t *testing.T) {
	ctx := context.Background()
	t.Run("three 1000-span requests", func(t *testing.T) {
		l := openTest(t, t.TempDir())
		defer l.Close()
		g := newWriterGate(l)
		blocker := g.hold(t, l, "default", 1)
		errs := make(chan error, 3)
		for r := 0; r < 3; r++ {
			go func() {
				_, err := l.Append(ctx, "default", spanBatch(r, MaxBatch, 800))
				errs <- err
			}()
		}
		waitQueued(t, l, 3)
		g.open()
		if err := <-blocker; err != nil {
			t.Errorf("blocker: %v", err)
		}
		for r := 0; r < 3; r++ {
			if err := <-errs; err != nil {
				t.Errorf("Append(1000 spans) = %v", err)
			}
		}
		if n, _ := l.Size(ctx, "default"); n != 3*MaxBatch+1 {
			t.Errorf("Size() = %d, want %d", n, 3*MaxBatch+1)
		}
	})
	t.Run("64 100-span requests over 4 tenants", func(t *testing.T) {
		l := openTest(t, t.TempDir())
		defer l.Close()
		tenants := []string{"default", "t1", "t2", "t3"}
		for _, tn := range tenants[1:] {
			if _, err := l.CreateTenant(ctx, tn); err != nil {
				t.Fatal(err)
			}
		}
		g := newWriterGate(l)
		blocker := g.hold(t, l, "default", 1)
		var wg sync.WaitGroup
		var failed atomic.Int64
		var first atomic.Value
		for r := 0; r < 64; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := l.Append(ctx, tenants[r%4], spanBatch(r, 100, 2048)); err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			}()
		}
		waitQueued(t, l, 64)
		g.open()
		wg.Wait()
		<-blocker
		if n := failed.Load(); n > 0 {
			t.Errorf("%d of 64 valid requests failed, first: %v", n, first.Load())
		}
	})
}

// The writer's Merkle frontier yields the stored hashes tlog computes from
// the stored tree.
// memHashes reads tree hashes from a slice.
func memHashes(stored *[]tlog.Hash) tlog.HashReaderFunc {
	return func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = (*stored)[x]
		}
		return out, nil
	}
}

func TestFrontierMatchesTlog(t *testing.T) {
	var st logState
	var stored []tlog.Hash
	r := memHashes(&stored)
	for n := int64(0); n < 2000; n++ {
		leaf := tlog.RecordHash([]byte(fmt.Sprint(n)))
		want, err := tlog.StoredHashesForRecordHash(n, leaf, r)
		if err != nil {
			t.Fatal(err)
		}
		got := st.push(leaf, nil)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("push(%d) = %x, want %x", n, got, want)
		}
		stored = append(stored, want...)
	}
}

// The cost Append estimates for a request is never below what the writer
// sets for it, counted as Badger counts it.
func TestTxnCostEstimate(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	var mu sync.Mutex
	var actual txnCost
	l.hooks.set = func(key, value []byte) error {
		mu.Lock()
		actual.set(len(key), len(value))
		mu.Unlock()
		return nil
	}
	v := version(format.VersionPrompt, "support", "v1", "You are helpful.")
	big := spanBatch(7, MaxBatch, 1000)
	big[3] = big[2] // an in-request duplicate
	cases := map[string][]Record{
		"version":        {v},
		"spans":          spanBatch(1, 10, 2048),
		"small spans":    spanBatch(2, 300, 10),
		"1000 at 1000 B": big,
		"access":         {{Kind: format.KindAccess, SubKind: 1, RetentionClass: "access", Payload: []byte("a")}},
	}
	for name, recs := range cases {
		actual = txnCost{}
		req := &appendReq{recs: recs, prep: make([]prepared, len(recs))}
		for i := range recs {
			req.prep[i] = prepared{envelope: make([]byte, envelopeSizeFor(&recs[i])), terms: make([][termRefSize]byte, len(recs[i].Terms)+btoi(recs[i].Subject != ""))}
			req.cost.record("default", &recs[i], &req.prep[i])
		}
		req.cost.treeSize()
		if _, err := l.Append(ctx, "default", recs); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if actual.keys > req.cost.keys || actual.bytes > req.cost.bytes {
			t.Errorf("%s: estimated %d keys, %d bytes; the writer set %d keys, %d bytes", name, req.cost.keys, req.cost.bytes, actual.keys, actual.bytes)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// envelopeSizeFor is the size of a record's sealed envelope.
func envelopeSizeFor(r *Record) int {
	n := len(r.Terms)
	if r.Subject != "" {
		n++
	}
	return 18 + n*termRefSize + 24 + format.SaltSize + len(r.Payload) + 16
}
