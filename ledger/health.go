package ledger

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Health is the ledger's state, as a health check reports it.
type Health struct {
	// Failed is set once a write to storage failed with an unknown outcome:
	// the ledger refuses every write (ErrFailed) until it is reopened.
	Failed error
	// LowSpace is set while the data directory's free space (FreeBytes) is
	// below the reserve (ReserveBytes), or cannot be read (SpaceErr):
	// appends are refused (ErrNoSpace) until space returns; reads go on.
	LowSpace     bool
	FreeBytes    uint64
	ReserveBytes uint64
	SpaceErr     error // why the free space cannot be read
}

// OK reports whether the ledger accepts appends.
func (h Health) OK() bool { return h.Failed == nil && !h.LowSpace }

// Health reports the ledger's state.
func (l *Ledger) Health() Health {
	h := Health{Failed: l.failure(), ReserveBytes: l.space.reserve}
	if l.space.reserve > 0 {
		free, err := l.space.reading()
		h.FreeBytes, h.SpaceErr = free, err
		h.LowSpace = err != nil || free < l.space.reserve
	}
	return h
}

type failure struct{ err error }

// gate is the ledger's failed state, shared by every writer of both
// databases: once a write's outcome is unknown (a failed commit or sync),
// every later write is refused with ErrFailed until the ledger is reopened,
// which recovers from what is on disk. Each writer checks it before it
// writes, and classifies its commit's error with commitErr.
type gate struct {
	failed atomic.Pointer[failure]
	log    *slog.Logger
}

// fail puts the ledger in the failed state (the first cause is kept and
// logged once) and returns the error to answer with.
func (g *gate) fail(err error) error {
	if g.failed.CompareAndSwap(nil, &failure{err}) {
		g.log.Error("ledger failed: a write to storage failed and its outcome is unknown; every write is refused from now on. Restart the server: it recovers from what is on disk, and clients retrying get their original receipts", "err", err)
	}
	return g.failure()
}

// failure returns ErrFailed, wrapped with its cause, once the ledger failed.
func (g *gate) failure() error {
	if f := g.failed.Load(); f != nil {
		return fmt.Errorf("%w: %v", ErrFailed, f.err)
	}
	return nil
}

// commitErr classifies the error of a transaction's Commit. Badger refuses
// a transaction that is too big (ErrTxnTooBig) or arrives while a drop
// blocks writes (ErrBlockedWrites) before writing anything: those are
// returned as they are. Any other error leaves the outcome unknown (Badger
// may have applied the writes to its memtable before the sync failed), so
// it fails the ledger.
func (g *gate) commitErr(what string, err error) error {
	if err == nil || nothingWritten(err) {
		return err
	}
	return g.fail(fmt.Errorf("%s: %w", what, err))
}

// nothingWritten reports whether a write failed before Badger wrote
// anything of it.
func nothingWritten(err error) bool {
	return errors.Is(err, badger.ErrTxnTooBig) || errors.Is(err, badger.ErrBlockedWrites)
}

func (l *Ledger) fail(err error) error { return l.gate.fail(err) }
func (l *Ledger) failure() error       { return l.gate.failure() }

// update runs fn in a write transaction of the log database and commits
// it (fsynced), behind the failure gate: nothing is written once the
// ledger failed, and a commit whose outcome is unknown fails the ledger.
// Every write to the log database but the writer's groups goes through it.
func (l *Ledger) update(what string, fn func(txn *badger.Txn) error) error {
	if err := l.failure(); err != nil {
		return err
	}
	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	if err := fn(txn); err != nil {
		return err
	}
	return l.commit(what, txn)
}

// commit commits a transaction of the log database and classifies its
// error (gate.commitErr). Tests may replace the commit (hooks.commit).
func (l *Ledger) commit(what string, txn *badger.Txn) error {
	var err error
	if l.hooks.commit != nil {
		err = l.hooks.commit(txn)
	} else {
		err = txn.Commit()
	}
	return l.gate.commitErr(what, err)
}

// DefaultMinFreeBytes is the default disk space reserve: room for Badger
// to finish what it has started when appends stop (a value-log file being
// filled, memtable flushes and compactions of both databases) with a
// margin, so that the filesystem never fills up under Badger's
// memory-mapped writes.
const DefaultMinFreeBytes = 1 << 30

// spaceGuard refuses appends below a reserve of free disk space. It reads
// the filesystem's free space at most every spaceInterval.
type spaceGuard struct {
	dir     string
	reserve uint64 // 0: no reserve
	statfs  func(dir string) (uint64, error)
	log     *slog.Logger

	mu   sync.Mutex
	at   time.Time
	free uint64
	err  error
	low  bool
}

const spaceInterval = 250 * time.Millisecond

func (g *spaceGuard) reading() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := time.Now(); g.at.IsZero() || now.Sub(g.at) >= spaceInterval {
		free, err := g.statfs(g.dir)
		switch {
		case err != nil && g.err == nil:
			g.log.Error("cannot read the free disk space: appends are refused until it can be read; reads go on", "dir", g.dir, "err", err)
		case err == nil && g.err != nil:
			g.log.Info("free disk space readable again", "dir", g.dir, "free_bytes", free)
		}
		g.at, g.free, g.err = now, free, err
		if err == nil {
			if low := free < g.reserve; low != g.low {
				g.low = low
				if low {
					g.log.Error("disk space below the reserve: appends are refused until space returns; reads go on", "dir", g.dir, "free_bytes", free, "reserve_bytes", g.reserve)
				} else {
					g.log.Info("disk space back above the reserve: appends accepted again", "dir", g.dir, "free_bytes", free, "reserve_bytes", g.reserve)
				}
			}
		}
	}
	return g.free, g.err
}

// check refuses a write below the reserve: trace data below all of it,
// critical records (access records, tombstones, holds, retention changes)
// below half of it. While the free space cannot be read, the reserve
// cannot be known to hold: trace data is refused, critical records (small,
// and what keeps reads and erasures going) are accepted.
func (g *spaceGuard) check(_ time.Time, critical bool) error {
	if g.reserve == 0 {
		return nil
	}
	free, err := g.reading()
	if err != nil {
		if critical {
			return nil
		}
		return &SpaceError{Required: g.reserve, Err: err}
	}
	need := g.reserve
	if critical {
		need /= 2
	}
	if free < need {
		return &SpaceError{Free: free, Required: need}
	}
	return nil
}
