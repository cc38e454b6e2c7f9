package ledger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// failingCommit commits, then reports a failed sync: the outcome of the
// write is unknown, as after a real fsync error.
func failingCommit(txn *badger.Txn) error {
	txn.Commit()
	return errors.New("injected: sync of the write-ahead log failed")
}

// Every writer of the log database, not only the append writer, must treat
// a commit error as fatal: the write may or may not be on disk, so the
// ledger stops (issue 8, defect 4 of the attack report).
func TestEveryWriterFailsTheLedgerOnACommitError(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		write func(l *Ledger) error
	}{
		{"CreateTenant", func(l *Ledger) error { _, err := l.CreateTenant(ctx, "acme"); return err }},
		{"PutAPIKey", func(l *Ledger) error { return l.PutAPIKey(ctx, &APIKey{ID: [8]byte{2}, Role: "admin"}) }},
		{"RevokeAPIKey", func(l *Ledger) error { _, err := l.RevokeAPIKey(ctx, [8]byte{1}, time.Now()); return err }},
		{"PutState", func(l *Ledger) error { return l.PutState(ctx, "default", "x", []byte("y")) }},
		{"MarkErased", func(l *Ledger) error { return l.MarkErased(ctx, "default", []uint64{0}, 0) }},
		{"Checkpoint", func(l *Ledger) error { _, err := l.Checkpoint(ctx, "default", true); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openTest(t, t.TempDir())
			defer l.Close()
			mustAppend(t, l, "default", span(1, "x"))
			if err := l.PutAPIKey(ctx, &APIKey{ID: [8]byte{1}, Role: "admin"}); err != nil {
				t.Fatal(err)
			}
			l.hooks.commit = failingCommit
			if err := tc.write(l); !errors.Is(err, ErrFailed) {
				t.Errorf("%s with a failing commit = %v, want ErrFailed", tc.name, err)
			}
			if l.Health().Failed == nil {
				t.Errorf("%s with a failing commit: the ledger did not fail", tc.name)
			}
		})
	}
	t.Run("key database", func(t *testing.T) {
		l := openTest(t, t.TempDir())
		defer l.Close()
		l.keys.commitHook = failingCommit
		if _, err := l.Append(ctx, "default", []Record{subjectSpan(1, "a new subject", "p")}); !errors.Is(err, ErrFailed) {
			t.Errorf("Append with a failing commit of its new data key = %v, want ErrFailed", err)
		}
		if l.Health().Failed == nil {
			t.Error("a failing commit of the key database did not fail the ledger")
		}
	})
}

// Once failed, the ledger's internal writers (value-log GC, the key
// store's writes and drops) write nothing either.
func TestFailedLedgerRefusesInternalWrites(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", subjectSpan(9, "s", "x"))
	failLedger(t, l)
	if _, err := l.runValueLogGC(); !errors.Is(err, ErrFailed) {
		t.Errorf("value-log GC on a failed ledger = %v, want ErrFailed", err)
	}
	if err := l.keys.update(l.quit, "test", func(txn *badger.Txn) error { return txn.Set([]byte{0x7f}, nil) }); !errors.Is(err, ErrFailed) {
		t.Errorf("a key-database write on a failed ledger = %v, want ErrFailed", err)
	}
	if err := l.keys.dropPrefix([]byte{0x7f}); !errors.Is(err, ErrFailed) {
		t.Errorf("a key-database DropPrefix on a failed ledger = %v, want ErrFailed", err)
	}
}
