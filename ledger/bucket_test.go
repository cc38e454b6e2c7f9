package ledger

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openAt opens a ledger on a test clock at noon of day 20000.
func openAt(t *testing.T, dir string) (*Ledger, *testClock, uint32) {
	t.Helper()
	const day = 20000
	c := &testClock{t: time.Unix(day*86400+12*3600, 0).UTC()}
	l, err := Open(context.Background(), Options{Dir: dir, Keys: testKeys(t, dir), Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour, Now: c.Now})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	return l, c, day
}

// tooLarge is a batch refused after its data keys were looked up (its
// payloads exceed one transaction): the new key of its first record's
// subject stays pending.
func tooLarge(subject string) []Record {
	recs := make([]Record, MaxBatch)
	payload := make([]byte, 70<<10)
	for i := range recs {
		recs[i] = span(i, "")
		recs[i].Payload = payload
	}
	recs[0].Subject = subject
	return recs
}

// checkNotUnder fails if an appended entry is sealed under a key of b.
func checkNotUnder(t *testing.T, l *Ledger, rs []Receipt, b Bucket) {
	t.Helper()
	for _, r := range rs {
		keys, _, err := l.KeysOf(context.Background(), "default", []uint64{r.Index})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.Bucket() == b {
				t.Errorf("entry %d committed under key %x of the expiry bucket retired before it (day %d, class %s)", r.Index, k.ID, b.Day, b.Class)
			}
		}
	}
}

// The writer checks every data key's expiry bucket against the retirement
// markers, a key not stored yet (pending) too: a key created while a sweep
// retired its bucket must not seal an entry committed after the sweep
// listed the bucket's entries (the sweep then destroys the bucket whole,
// and the entry with it, named by no tombstone).
func TestPendingKeyOfARetiredBucketNeverSealsACommittedEntry(t *testing.T) {
	ctx := context.Background()
	l, _, day := openAt(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", subjectSpan(1, "dave", "x"))
	// While the sweep's retirement commits, an append creates the new key
	// of carol's scope in the bucket being retired (and is then refused:
	// the key stays pending).
	var armed sync.Once
	l.hooks.commit = func(txn *badger.Txn) error {
		armed.Do(func() {
			if _, err := l.Append(ctx, "default", tooLarge("carol")); !errors.Is(err, ErrInvalid) {
				t.Errorf("Append(too large) = %v, want ErrInvalid", err)
			}
		})
		return txn.Commit()
	}
	b := Bucket{Tenant: 1, Day: day, Class: DefaultRetentionClass}
	if _, err := l.RetireBuckets(ctx, "default", []Bucket{b}); err != nil {
		t.Fatal(err)
	}
	rs, err := l.Append(ctx, "default", []Record{subjectSpan(2, "carol", "y")})
	switch {
	case errors.Is(err, ErrBucketExpired):
	case err != nil:
		t.Fatalf("Append(carol) after her bucket was retired = %v, want ErrBucketExpired or a key of another bucket", err)
	default:
		checkNotUnder(t, l, rs, b)
	}
}

// A request whose expiry bucket for today is retired fails alone: the other
// requests of its group, of its tenant or another, are committed.
func TestRetiredBucketOfTodayFailsOnlyItsRequests(t *testing.T) {
	ctx := context.Background()
	l, _, day := openAt(t, t.TempDir())
	defer l.Close()
	g := newWriterGate(l)
	mustAppend(t, l, "default", subjectSpan(1, "dave", "x")) // dave's key of today is stored
	if _, err := l.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	b := Bucket{Tenant: 1, Day: day, Class: DefaultRetentionClass}
	if _, err := l.RetireBuckets(ctx, "default", []Bucket{b}); err != nil {
		t.Fatal(err)
	}
	blocker := g.hold(t, l, "acme", 100)
	dave := make(chan error, 1)
	var daveRs []Receipt
	go func() {
		var err error
		daveRs, err = l.Append(ctx, "default", []Record{subjectSpan(2, "dave", "y")})
		dave <- err
	}()
	waitQueued(t, l, 1)
	other := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "acme", []Record{subjectSpan(3, "erin", "z")})
		other <- err
	}()
	waitQueued(t, l, 2)
	g.open()
	if err := <-blocker; err != nil {
		t.Errorf("Append(acme, first of the group) = %v", err)
	}
	if err := <-other; err != nil {
		t.Errorf("Append(acme) in a group with a request of a retired bucket = %v", err)
	}
	switch err := <-dave; {
	case errors.Is(err, ErrBucketExpired):
	case err != nil:
		t.Errorf("Append(default) under a retired bucket of today = %v, want ErrBucketExpired", err)
	default:
		checkNotUnder(t, l, daveRs, b)
	}
}

// Every entry is sealed under a data key of its appended_at day, so that a
// sweep finds a bucket's entries by day: a request sealed before midnight
// and committed after it is re-sealed under a key of the new day, and
// after the clock is set back (appended_at never goes back) appends are
// sealed under keys of the log's day, not the clock's.
func TestEntriesAreSealedUnderAKeyOfTheirAppendedDay(t *testing.T) {
	ctx := context.Background()
	l, clock, day := openAt(t, t.TempDir())
	defer l.Close()
	g := newWriterGate(l)
	check := func(rs []Receipt) {
		t.Helper()
		for _, r := range rs {
			keys, _, err := l.KeysOf(ctx, "default", []uint64{r.Index})
			if err != nil || len(keys) != 1 {
				t.Fatalf("KeysOf(%d) = %v, %v", r.Index, keys, err)
			}
			for _, k := range keys {
				if want := dayOf(r.AppendedAt); k.Day != want {
					t.Errorf("entry %d appended on day %d is sealed under a key of day %d", r.Index, want, k.Day)
				}
			}
		}
	}
	clock.Add(12*time.Hour - time.Second) // 23:59:59
	blocker := g.hold(t, l, "default", 100)
	crossing := make(chan []Receipt, 1)
	go func() {
		rs, err := l.Append(ctx, "default", []Record{subjectSpan(1, "dave", "sealed before midnight")})
		if err != nil {
			t.Error(err)
		}
		crossing <- rs
	}()
	waitQueued(t, l, 1)
	clock.Add(2 * time.Second) // the next day
	g.open()
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	rs := <-crossing
	if got := dayOf(rs[0].AppendedAt); got != day+1 {
		t.Fatalf("appended on day %d, want %d", got, day+1)
	}
	check(rs)

	clock.Add(3 * 24 * time.Hour) // ahead by three days
	check(mustAppend(t, l, "default", subjectSpan(2, "dave", "ahead"), span(3, "no subject")))
	clock.Add(-3 * 24 * time.Hour) // and set right
	check(mustAppend(t, l, "default", subjectSpan(4, "dave", "after the step back"), span(5, "no subject")))
	closeWithin(t, l, 10*time.Second)
}

// An entry appended by an earlier build may be sealed under a key of the
// day before its appended_at (it crossed midnight in the queue): in a log
// of an earlier build, a sweep still reads a day either side for the
// entries appended before this build's first open, and finds it.
func TestBucketListingFindsEntriesOfAnEarlierBuild(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, clock, day := openAt(t, dir)
	clock.Add(12 * time.Hour) // midnight: day+1
	rs := mustAppend(t, l, "default", span(1, "crossed midnight"))
	// Re-seal it under a key of day, as an earlier build left it.
	old := keyScope{tenant: 1, day: day, class: DefaultRetentionClass}
	dk, err := l.keys.forScope(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.keys.flush(l.quit, []*dataKey{dk}); err != nil {
		t.Fatal(err)
	}
	if err := l.update("test", func(txn *badger.Txn) error {
		e, err := l.readEntry(txn, 1, rs[0].Index)
		if err != nil {
			return err
		}
		terms, _, err := envelopeTerms(txn, 1, rs[0].Index)
		if err != nil {
			return err
		}
		return txn.Set(payloadKey(1, rs[0].Index), seal(dk, 1, e.Header.Commitment, e.Salt, e.Payload, terms))
	}); err != nil {
		t.Fatal(err)
	}
	// An earlier build wrote no day-sealed mark.
	if err := l.update("test", func(txn *badger.Txn) error { return txn.Delete(tenantKey(nsDaySealed, 1)) }); err != nil {
		t.Fatal(err)
	}
	closeWithin(t, l, 10*time.Second)
	l, err = Open(ctx, Options{Dir: dir, Keys: testKeys(t, dir), Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mustAppend(t, l, "default", span(2, "appended by this build"))
	got, err := l.RetireBuckets(ctx, "default", []Bucket{{Tenant: 1, Day: day, Class: DefaultRetentionClass}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Index != rs[0].Index {
		t.Errorf("RetireBuckets(day %d) = %+v, want entry %d (appended on day %d by an earlier build)", day, got, rs[0].Index, day+1)
	}
}
