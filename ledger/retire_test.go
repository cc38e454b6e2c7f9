package ledger

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// subjectKeys returns the data keys a subject's entries are sealed under.
func subjectKeys(t *testing.T, l *Ledger, subject string) ([]*KeyRef, []uint64) {
	t.Helper()
	ctx := context.Background()
	idxs, err := l.EntryIndexes(ctx, "default", Term{Field: SubjectField, Value: []byte(subject)})
	if err != nil {
		t.Fatal(err)
	}
	keys, live, err := l.KeysOf(ctx, "default", idxs)
	if err != nil {
		t.Fatal(err)
	}
	var refs []*KeyRef
	for _, k := range keys {
		refs = append(refs, k)
	}
	return refs, live
}

// shredWhileHeld erases the entries erase, under keys, while the writer is
// held by g: it returns once the shred is done, or waits in the writer's
// queue (queued requests in all), and then opens the gate.
func shredWhileHeld(t *testing.T, l *Ledger, g *writerGate, keys []*KeyRef, erase map[uint64]bool, queued int) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := l.Shred(context.Background(), "default", keys, nil, erase)
		done <- err
	}()
	var err error
	finished := false
	for deadline := time.Now().Add(10 * time.Second); !finished && len(l.reqs) < queued; time.Sleep(time.Millisecond) {
		select {
		case err = <-done:
			finished = true
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the shred neither finished nor queued")
		}
	}
	g.open()
	if !finished {
		err = <-done
	}
	if err != nil {
		t.Fatalf("Shred() = %v", err)
	}
}

// checkNotErasedUnasked checks that every entry of the log either is in
// erase or still has its payload.
func checkNotErasedUnasked(t *testing.T, l *Ledger, erase map[uint64]bool) {
	t.Helper()
	ctx := context.Background()
	n, _ := l.Size(ctx, "default")
	for i := uint64(0); i < n; i++ {
		e, err := l.GetEntry(ctx, "default", i)
		if err != nil {
			t.Fatalf("GetEntry(%d) = %v", i, err)
		}
		if e.Erased != erase[i] {
			t.Errorf("entry %d: Erased = %v, want %v (payload gone without being erased)", i, e.Erased, erase[i])
		}
	}
}

// Defect 3 of issue 8: an append whose caller gave up while it waited in
// the writer's queue was committed under a key an erasure had destroyed
// meanwhile: it read as erased with no tombstone, and a retry was refused.
func TestCancelledAppendNeverCommittedUnderDestroyedKey(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	g := newWriterGate(l)
	mustAppend(t, l, "default", subjectSpan(1, "dave", "old")) // index 0
	keys, _ := subjectKeys(t, l, "dave")
	blocker := g.hold(t, l, "default", 100)

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := l.Append(cctx, "default", []Record{subjectSpan(2, "dave", "new")})
		done <- err
	}()
	waitQueued(t, l, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append after cancel = %v", err)
	}
	erase := map[uint64]bool{0: true}
	shredWhileHeld(t, l, g, keys, erase, 2)
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	checkNotErasedUnasked(t, l, erase)
	rs, err := l.Append(ctx, "default", []Record{subjectSpan(2, "dave", "new")})
	if err != nil {
		t.Fatalf("retry of the cancelled append = %v", err)
	}
	e, err := l.GetEntry(ctx, "default", rs[0].Index)
	if err != nil || e.Erased || string(e.Payload) != "new" {
		t.Errorf("retried entry %d = %+v, %v", rs[0].Index, e, err)
	}
}

// Defect 4 of issue 8: the key cache was dropped whole when full, losing
// the in-use count of a key an append was sealing under; an erasure then
// destroyed the key without waiting for the append.
func TestKeyCacheOverflowNeverCommitsUnderDestroyedKey(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	l.keys.maxCached = 2
	g := newWriterGate(l)
	for i := 0; i < 5; i++ {
		mustAppend(t, l, "default", subjectSpan(10+i, fmt.Sprint("other-", i), "other"))
	}
	first := mustAppend(t, l, "default", subjectSpan(1, "dave", "old"))
	keys, _ := subjectKeys(t, l, "dave")
	blocker := g.hold(t, l, "default", 100)

	queued := 0
	results := make(chan error, 10)
	appendAsync := func(r Record) {
		go func() {
			_, err := l.Append(ctx, "default", []Record{r})
			results <- err
		}()
		queued++
		waitQueued(t, l, queued)
	}
	appendAsync(subjectSpan(2, "dave", "new"))
	for i := 0; i < 5; i++ { // their keys load into the cache and overflow it
		appendAsync(subjectSpan(20+i, fmt.Sprint("other-", i), "more"))
	}
	erase := map[uint64]bool{first[0].Index: true}
	shredWhileHeld(t, l, g, keys, erase, queued+1)
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	for i := 0; i < queued; i++ {
		if err := <-results; err != nil {
			t.Errorf("queued append = %v", err)
		}
	}
	checkNotErasedUnasked(t, l, erase)
}

// The writer caches what it read of retirement markers, and drops the
// cache when the retirement epoch moves: a marker written by any
// transaction that advances the epoch (here: as another node sharing the
// database would, outside this writer) binds the next group.
func TestRetirementEpochInvalidatesTheWritersCache(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", subjectSpan(1, "dave", "one"))
	mustAppend(t, l, "default", subjectSpan(2, "dave", "two")) // the key's answer is cached
	keys, _ := subjectKeys(t, l, "dave")
	if len(keys) != 1 {
		t.Fatalf("dave has %d keys, want 1", len(keys))
	}
	err := l.db.Update(func(txn *badger.Txn) error {
		var epoch uint64
		if item, err := txn.Get(metaRetireEpoch); err == nil {
			v, _ := item.ValueCopy(nil)
			epoch = binary.BigEndian.Uint64(v)
		}
		if err := txn.Set(retiredKeyKey(keys[0].ID), nil); err != nil {
			return err
		}
		return txn.Set(metaRetireEpoch, binary.BigEndian.AppendUint64(nil, epoch+1))
	})
	if err != nil {
		t.Fatal(err)
	}
	rs := mustAppend(t, l, "default", subjectSpan(3, "dave", "three"))
	var id [16]byte
	err = l.db.View(func(txn *badger.Txn) error {
		id, _, err = envelopeKeyOf(txn, 1, rs[0].Index)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if id == keys[0].ID {
		t.Errorf("entry %d was committed under key %x, retired before its group", rs[0].Index, id)
	}
	e, err := l.GetEntry(ctx, "default", rs[0].Index)
	if err != nil || e.Erased || string(e.Payload) != "three" {
		t.Errorf("GetEntry(%d) = %+v, %v", rs[0].Index, e, err)
	}
}

// termMAC's pooled HMAC states give what a fresh HMAC gives, call after
// call.
func TestTermMACPooled(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	for i, v := range []string{"alice", "", "alice", "a much longer session identifier than the block size of sha-256 ......................."} {
		m := hmac.New(sha256.New, l.keys.pseudoKey)
		m.Write([]byte{0, 0, 0, 7, 2})
		m.Write([]byte(v))
		want := m.Sum(nil)[:termMACSize]
		if got := l.keys.termMAC(7, 2, []byte(v)); !bytes.Equal(got[:], want) {
			t.Errorf("call %d: termMAC(7, 2, %q) = %x, want %x", i, v, got, want)
		}
	}
}
