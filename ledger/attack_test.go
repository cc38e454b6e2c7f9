package ledger

// Attack tests of the issue-8 write path: each fails on the code as it
// stands and shows one defect (see the report of branch attack8).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/veritrace/veritrace/ledger/format"
)

// distinctSubjects makes n spans of one request, each of its own subject:
// each needs a new data key (a new subject, or any subject on a new day).
func distinctSubjects(req, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		r := Record{Kind: format.KindSpan, SubKind: 1, Subject: fmt.Sprintf("subject-%d-%d", req, i), Payload: []byte("p")}
		binary.BigEndian.PutUint32(r.TraceID[:], uint32(req+1))
		binary.BigEndian.PutUint32(r.SpanID[:], uint32(i+1))
		recs[i] = r
	}
	return recs
}

// The writer stores every pending data key in one key-database
// transaction (keyStore.flush), with no bound: keys are created by Append
// before a request is queued, so the requests waiting behind a group all
// add theirs. Ten queued 1,000-span requests of new subjects (what a busy
// tenant sends at midnight UTC, when every subject needs a key for the new
// day) need 30,000 sets in one transaction, above Badger's limit: the flush
// fails with ErrTxnTooBig and the writer fails the whole ledger for good.
func TestManyNewDataKeysDoNotFailTheLedger(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	g := newWriterGate(l)
	blocker := g.hold(t, l, "default", 1)
	const reqs = 10
	errs := make(chan error, reqs)
	for r := 0; r < reqs; r++ {
		go func() {
			_, err := l.Append(ctx, "default", distinctSubjects(r, MaxBatch))
			errs <- err
		}()
	}
	waitQueued(t, l, reqs)
	g.open()
	if err := <-blocker; err != nil {
		t.Errorf("Append(blocker) = %v", err)
	}
	for r := 0; r < reqs; r++ {
		if err := <-errs; err != nil {
			t.Errorf("Append(1000 spans of new subjects) = %v", err)
		}
	}
	if h := l.Health(); h.Failed != nil {
		t.Errorf("Health() after valid appends = failed: %v", h.Failed)
	}
	if _, err := l.Append(ctx, "default", []Record{span(7, "later")}); errors.Is(err, ErrFailed) {
		t.Errorf("a later Append = %v: the ledger refuses every write until restarted", err)
	}
}

// failLedger puts l in the failed state the way a failed commit does.
func failLedger(t *testing.T, l *Ledger) {
	t.Helper()
	l.hooks.commit = func(txn *badger.Txn) error {
		txn.Commit()
		return errors.New("injected: sync of the write-ahead log failed")
	}
	if _, err := l.Append(context.Background(), "default", []Record{span(1, "x")}); err == nil {
		t.Fatal("Append with a failing commit = nil error")
	}
	if l.Health().Failed == nil {
		t.Fatal("the ledger did not fail")
	}
}

// doc.go and ARCHITECTURE.md: once a commit failed, "every later write
// fails with ErrFailed until it is reopened". Tenant creation, API key
// creation and revocation, and MarkErased do not check: they go on
// writing to the database whose last sync failed and report success.
// Over the API the change is then made but not recorded (the access
// record after it fails), and the client is told it was not answered.
func TestFailedLedgerRefusesEveryWrite(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", span(9, "before"))
	failLedger(t, l)
	writes := map[string]func() error{
		"CreateTenant": func() error { _, err := l.CreateTenant(ctx, "acme"); return err },
		"PutAPIKey":    func() error { return l.PutAPIKey(ctx, &APIKey{ID: [8]byte{1}, Role: "admin"}) },
		"RevokeAPIKey": func() error { _, err := l.RevokeAPIKey(ctx, [8]byte{1}, time.Now()); return err },
		"MarkErased":   func() error { return l.MarkErased(ctx, "default", []uint64{0}, 0) },
	}
	for _, name := range []string{"CreateTenant", "PutAPIKey", "RevokeAPIKey", "MarkErased"} {
		if err := writes[name](); !errors.Is(err, ErrFailed) {
			t.Errorf("%s on a failed ledger = %v, want ErrFailed", name, err)
		}
	}
}

// VerifyDir is the auditor's check of a data directory it must not trust,
// and the README says it reports an unreadable file "never a crash". It
// allocates every stored hash of a tenant's tree up front from the stored
// tree size (verifyTenant: make(..., tlog.StoredHashCount(size))): a
// tampered tree size (here 2^40) kills the process with a fatal "out of
// memory" that no recover catches, instead of reporting the tampering.
// (The same allocation is 64 bytes per entry for an honest log: 6.4 GB of
// memory to verify 100 million entries.)
func TestVerifyDirSurvivesTamperedTreeSize(t *testing.T) {
	if dir := os.Getenv("ATTACK_VERIFY_DIR"); dir != "" {
		keys := testKeys(t, dir)
		vkey, err := keys.VerifierKey()
		if err != nil {
			t.Fatal(err)
		}
		res, err := VerifyDir(context.Background(), dir, keys.Master, vkey)
		fmt.Printf("VerifyDir returned: %d tenants, err %v\n", len(res), err)
		return
	}
	dir := t.TempDir()
	l := openTest(t, dir)
	mustAppend(t, l, "default", span(1, "a"))
	tid, err := l.tenantID(context.Background(), "default", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.db.Update(func(txn *badger.Txn) error {
		return txn.Set(treeSizeKey(tid), binary.BigEndian.AppendUint64(nil, 1<<40))
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestVerifyDirSurvivesTamperedTreeSize$")
	cmd.Env = append(os.Environ(), "ATTACK_VERIFY_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "VerifyDir returned") {
		first, _, _ := strings.Cut(string(out), "\n\n")
		t.Errorf("VerifyDir of a directory with a tampered tree size crashed the process (%v):\n%s", err, first)
	}
}

// RETENTION.md: "while DropPrefix blocks the key store's writes, the writer
// waits before storing new keys ... and appends that need no new key do
// not wait at all". There is one writer goroutine: once a group needs a
// new key it waits in keyStore.flush for the DropPrefix (dropMu), and
// every append queued behind it waits too, new key or not. The test holds
// dropMu as a DropPrefix of a big sweep does.
func TestAppendsNeedingNoNewKeyDoNotWaitForADropPrefix(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", subjectSpan(1, "known", "a")) // its key is stored
	l.keys.dropMu.Lock()                                      // a DropPrefix is running
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			l.keys.dropMu.Unlock()
		}
	}
	defer unlock()
	newKey := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "default", []Record{subjectSpan(2, "new subject", "b")})
		newKey <- err
	}()
	// Wait until the writer has taken it (its key is pending, the queue
	// empty) and is waiting to store the key.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.keys.mu.Lock()
		pending := len(l.keys.pending)
		l.keys.mu.Unlock()
		if pending > 0 && len(l.reqs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never took the append of a new subject")
		}
	}
	time.Sleep(50 * time.Millisecond)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second) // the drop ends only after: a bound on a hang, not a speed
	defer cancel()
	if _, err := l.Append(tctx, "default", []Record{subjectSpan(3, "known", "c")}); err != nil {
		t.Errorf("Append(subject with a stored key) during a DropPrefix = %v; want it to go on", err)
	}
	unlock()
	if err := <-newKey; err != nil {
		t.Errorf("Append(new subject) after the DropPrefix = %v", err)
	}
}
