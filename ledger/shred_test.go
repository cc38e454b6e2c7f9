package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func subjectSpan(i int, subject, payload string) Record {
	r := span(i, payload)
	r.Subject = subject
	return r
}

func TestShredSubject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	var alice []uint64
	for i := 0; i < 6; i++ {
		rs := mustAppend(t, l, "default", subjectSpan(i, "alice", fmt.Sprint("alice secret ", i)), subjectSpan(100+i, "bob", "bob data"), span(200+i, "no subject"))
		alice = append(alice, rs[0].Index)
	}
	idxs, err := l.EntryIndexes(ctx, "default", Term{Field: SubjectField, Value: []byte("alice")})
	if err != nil || fmt.Sprint(idxs) != fmt.Sprint(alice) {
		t.Fatalf("EntryIndexes(alice) = %v, %v; want %v", idxs, err, alice)
	}
	keys, live, err := l.KeysOf(ctx, "default", idxs)
	if err != nil || len(keys) != 1 || len(live) != len(idxs) {
		t.Fatalf("KeysOf(alice) = %v, %v; want one key (one day, one class)", keys, err)
	}
	var refs []*KeyRef
	for _, k := range keys {
		refs = append(refs, k)
	}
	erase := map[uint64]bool{}
	for _, i := range alice[1:] {
		erase[i] = true // alice[0] is kept, as a held entry would be
	}
	erased, err := l.Shred(ctx, "default", refs, nil, erase)
	if err != nil {
		t.Fatal(err)
	}
	if len(erased) != 5 {
		t.Fatalf("Shred erased %d entries, want 5", len(erased))
	}
	for _, i := range alice {
		e, err := l.GetEntry(ctx, "default", i)
		if err != nil {
			t.Fatal(err)
		}
		if e.Erased != erase[i] {
			t.Errorf("entry %d: Erased = %v, want %v", i, e.Erased, erase[i])
		}
		if !e.Erased && string(e.Payload) != "alice secret 0" {
			t.Errorf("kept entry %d lost its payload: %q", i, e.Payload)
		}
	}
	if got, _ := l.EntryIndexes(ctx, "default", Term{Field: SubjectField, Value: []byte("alice")}); fmt.Sprint(got) != fmt.Sprint(alice[:1]) {
		t.Errorf("alice's index after erasure = %v, want only the kept entry", got)
	}
	for i := uint64(0); i < 18; i++ {
		if e, err := l.GetEntry(ctx, "default", i); err != nil || (e.Erased && !erase[i]) {
			t.Errorf("entry %d after shredding alice: %v, %v", i, e, err)
		}
	}
	// Idempotent.
	if again, err := l.Shred(ctx, "default", refs, nil, erase); err != nil || len(again) != 0 {
		t.Errorf("Shred again = %v, %v; want nothing more", again, err)
	}
	vkey := l.VerifierKey()
	l.Close()

	// The destroyed key is gone from every version in the key store's files,
	// and the old ciphertext, still in the log's files, does not decrypt.
	keysMaster := testKeys(t, dir).Master
	kdb, err := openDB(filepath.Join(dir, KeyDir), deriveKey(keysMaster, infoBadger), slog.New(slog.DiscardHandler), func(db *badger.DB) error { return checkKeyFormat(db, slog.New(slog.DiscardHandler)) })
	if err != nil {
		t.Fatal(err)
	}
	kdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, Prefix: []byte{nsKeyMaterial}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			for _, r := range refs {
				if k, _ := parseKeyMaterialKey(it.Item().Key()); k != nil && k.ID == r.ID {
					t.Errorf("destroyed key %x is still in the key store (version %d, deleted %v)", r.ID, it.Item().Version(), it.Item().IsDeletedOrExpired())
				}
			}
		}
		return nil
	})
	kdb.Close()
	res, err := VerifyDir(ctx, dir, keysMaster, vkey)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if len(r.Problems) > 0 {
			t.Errorf("VerifyDir after shredding: %v", r.Problems)
		}
	}
}

func TestShredWhileAppending(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	for i := 0; i < 20; i++ {
		mustAppend(t, l, "default", subjectSpan(i, "carol", "before"))
	}
	var acked sync.Map
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				rs, err := l.Append(ctx, "default", []Record{subjectSpan(1000+w*10000+i, "carol", "during")})
				if err != nil {
					t.Error(err)
					return
				}
				acked.Store(rs[0].Index, true)
			}
		}(w)
	}
	idxs, _ := l.EntryIndexes(ctx, "default", Term{Field: SubjectField, Value: []byte("carol")})
	erase := map[uint64]bool{}
	for _, i := range idxs[:20] {
		erase[i] = true
	}
	keys, _, _ := l.KeysOf(ctx, "default", idxs[:20])
	var refs []*KeyRef
	for _, k := range keys {
		refs = append(refs, k)
	}
	if _, err := l.Shred(ctx, "default", refs, nil, erase); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()
	n := 0
	acked.Range(func(k, _ any) bool {
		n++
		e, err := l.GetEntry(ctx, "default", k.(uint64))
		if err != nil || e.Erased || string(e.Payload) != "during" {
			t.Errorf("entry %d appended during the shred: %v, %v", k, e, err)
		}
		return true
	})
	if n == 0 {
		t.Fatal("no append ran during the shred")
	}
	for i := range erase {
		if e, _ := l.GetEntry(ctx, "default", i); !e.Erased {
			t.Errorf("entry %d was not erased", i)
		}
	}
	if _, err := l.GetEntry(ctx, "default", 0); errors.Is(err, ErrDecrypt) {
		t.Error(err)
	}
}

// Shred deletes payloads and index terms in transactions of up to 1024
// entries; entries with many terms fill a transaction before that, and
// the rest goes on in the next one. Every term key of every erased entry
// is gone, every kept entry keeps its terms and payload.
func TestShredEntriesWithManyTerms(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	terms := make([]Term, MaxTerms)
	for i := range terms {
		terms[i] = Term{Field: 9, Value: []byte(fmt.Sprint("term-", i))}
	}
	const n = 1500
	erase := map[uint64]bool{}
	for done := 0; done < n; done += 250 {
		recs := make([]Record, 250)
		for i := range recs {
			recs[i] = subjectSpan(done+i, "many", fmt.Sprint("payload ", done+i))
			recs[i].Terms = terms
		}
		for _, r := range mustAppend(t, l, "default", recs...) {
			if r.Index%7 != 0 {
				erase[r.Index] = true
			}
		}
	}
	keys, _ := subjectKeys(t, l, "many")
	erased, err := l.Shred(ctx, "default", keys, nil, erase)
	if err != nil || len(erased) != len(erase) {
		t.Fatalf("Shred() = %d erased, %v; want %d", len(erased), err, len(erase))
	}
	for _, tm := range []Term{terms[0], terms[MaxTerms-1], {Field: SubjectField, Value: []byte("many")}} {
		idxs, err := l.EntryIndexes(ctx, "default", tm)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range idxs {
			if erase[i] {
				t.Fatalf("term %d/%s still lists erased entry %d", tm.Field, tm.Value, i)
			}
		}
		if want := n - len(erase); len(idxs) != want {
			t.Errorf("term %d/%s lists %d entries, want the %d kept", tm.Field, tm.Value, len(idxs), want)
		}
	}
	checkNotErasedUnasked(t, l, erase)
}

// Shred's re-seal and key destruction commit outside the writer, while
// the next group is built in a transaction opened before them: a retried
// record whose entry was re-sealed is read in that older snapshot, still
// sealed under the destroyed key. It must still get its original receipt
// (existing reads such an entry again in a fresh snapshot: settled), not
// be refused as a conflict. Shred's steps are ordered by the test's
// commit hook: the retirement is held until the next append is queued;
// the re-seal commits once that append's group is in Badger's hands (its
// launch opened the next group's transaction).
func TestShredRetryOfAResealedEntryWhileAGroupCommits(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	tid, e, orig, keys := appendKept(t, ctx, l)
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

// The same without the writer: a snapshot opened before Shred (as any
// group's transaction may be, for as long as its build lasts) reads a
// kept entry sealed under the key Shred destroyed. existing reads it
// again in a fresh snapshot: a kept entry gives its receipt, an erased
// one a conflict.
func TestDuplicateReadInASnapshotOlderThanShred(t *testing.T) {
	for _, erase := range []bool{false, true} {
		t.Run(fmt.Sprintf("erase=%v", erase), func(t *testing.T) {
			ctx := context.Background()
			l := openTest(t, t.TempDir())
			defer l.Close()
			tid, e, orig, keys := appendKept(t, ctx, l)
			old := l.db.NewTransaction(false)
			defer old.Discard()
			if _, err := l.Shred(ctx, "default", keys, nil, map[uint64]bool{orig.Index: erase}); err != nil {
				t.Fatalf("Shred() = %v", err)
			}
			id, _ := e.identity()
			rec, found, err := l.existing(old, tid, &e, id)
			if erase {
				var ce *ConflictError
				if !errors.As(err, &ce) || ce.Index != orig.Index {
					t.Errorf("existing(erased entry, older snapshot) = %+v, %v, %v; want a conflict at %d", rec, found, err, orig.Index)
				}
				return
			}
			if err != nil || !found || rec.Index != orig.Index || rec.LeafHash != orig.LeafHash {
				t.Errorf("existing(re-sealed entry, older snapshot) = %+v, %v, %v; want the receipt of %d", rec, found, err, orig.Index)
			}
		})
	}
}

// appendKept appends span 1 ("kept") to the default tenant and returns
// the tenant's id, the record, its receipt and the keys it is sealed under.
func appendKept(t *testing.T, ctx context.Context, l *Ledger) (uint32, Record, Receipt, []*KeyRef) {
	t.Helper()
	tid, err := l.tenantID(ctx, "default", false)
	if err != nil {
		t.Fatal(err)
	}
	e := span(1, "kept")
	orig := mustAppend(t, l, "default", e)[0]
	return tid, e, orig, keysOf(t, l, orig.Index)
}

// keysOf returns the data key entry i of the default tenant is sealed
// under.
func keysOf(t *testing.T, l *Ledger, i uint64) []*KeyRef {
	t.Helper()
	refs, _, err := l.KeysOf(context.Background(), "default", []uint64{i})
	if err != nil || len(refs) != 1 {
		t.Fatalf("KeysOf(%d) = %v, %v", i, refs, err)
	}
	var keys []*KeyRef
	for _, k := range refs {
		keys = append(keys, k)
	}
	return keys
}
