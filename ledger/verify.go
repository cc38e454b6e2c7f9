package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"path/filepath"
	"runtime/debug"
	"sort"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// Problem is one failed check of VerifyDir.
type Problem struct {
	Tenant string
	// Index is the first entry the problem affects.
	Index  uint64
	Detail string
}

func (p Problem) String() string {
	return fmt.Sprintf("tenant %s, index %d: %s", p.Tenant, p.Index, p.Detail)
}

// TenantResult is what VerifyDir found for one tenant's log.
type TenantResult struct {
	Tenant      string
	Size        uint64
	Root        tlog.Hash // recomputed from the headers
	Checkpoints int       // signed checkpoints checked
	Latest      *Checkpoint
	Problems    []Problem // in index order; at most 1,000
	Omitted     int       // problems found beyond those listed
}

// VerifyDir checks every tenant's log in a data directory without the data
// keys: it re-reads every entry record, checks its header's encoding,
// index, tenant and hash chain, recomputes every leaf and tree hash and
// compares the tree hashes with those the records store, and checks every stored checkpoint's signature and root
// against the recomputed tree. It opens the log database read-only and
// changes nothing; the directory must not be in use by a server.
// verifierKey is the note verifier key of the log. A fault while reading
// the database's memory-mapped files (a truncated or unreadable file)
// becomes an error, not a crash.
func VerifyDir(ctx context.Context, dir string, master []byte, verifierKey string) (res []TenantResult, err error) {
	err = guardFaults(func() error {
		var err error
		res, err = verifyDir(ctx, dir, master, verifierKey)
		return err
	})
	if errors.Is(err, ErrLocked) {
		return nil, err // it names the directory and what to do
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", dir, err)
	}
	return res, nil
}

// guardFaults runs fn on a goroutine of its own on which a memory fault
// (SIGBUS or SIGSEGV in a memory-mapped file) panics instead of killing the
// process, and returns that panic as an error.
func guardFaults(fn func() error) (err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("memory fault reading the database files: %v", p)
			}
		}()
		debug.SetPanicOnFault(true)
		err = fn()
	}()
	<-done
	return err
}

func verifyDir(ctx context.Context, dir string, master []byte, verifierKey string) ([]TenantResult, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("%w: master key of %d bytes", ErrInvalid, len(master))
	}
	db, err := openDBReadOnly(filepath.Join(dir, LogDir), deriveKey(master, infoBadger), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var results []TenantResult
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsTenantID}})
		type tenant struct {
			id   uint32
			name string
		}
		var tenants []tenant
		for it.Rewind(); it.Valid(); it.Next() {
			name, err := it.Item().ValueCopy(nil)
			if err != nil {
				it.Close()
				return err
			}
			tenants = append(tenants, tenant{binary.BigEndian.Uint32(it.Item().Key()[1:]), string(name)})
		}
		it.Close()
		for _, t := range tenants {
			if err := ctx.Err(); err != nil {
				return err
			}
			res, err := verifyTenant(txn, t.id, t.name, v)
			if err != nil {
				return fmt.Errorf("tenant %s: %w", t.name, err)
			}
			results = append(results, *res)
		}
		return nil
	})
	return results, err
}

// maxProblems is the most problems VerifyDir lists per tenant; the rest
// are counted (TenantResult.Omitted).
const maxProblems = 1000

// verifyTenant checks one tenant's log in one pass over its entry records
// (header and the tree hashes its append completed), with its checkpoints
// read alongside, in index order. It keeps only the tree's right frontier
// (at most 64 hashes), so its memory does not grow with the log, and its
// work is bounded by the records actually stored, whatever the stored
// tree size says: a run of missing entries is one problem, folded into the
// tree as complete subtrees of zero leaf hashes (at most 64 steps a run).
func verifyTenant(txn *badger.Txn, tid uint32, name string, v note.Verifier) (*TenantResult, error) {
	size, err := readTreeSize(txn, tid)
	if err != nil {
		return nil, err
	}
	t := &tenantCheck{res: &TenantResult{Tenant: name, Size: size}, v: v, size: size, first: math.MaxUint64}
	t.cps = txn.NewIterator(badger.IteratorOptions{Prefix: tenantKey(nsCheckpoint, tid), PrefetchValues: true})
	defer t.cps.Close()
	t.cps.Rewind()
	if err := t.checkpoints(); err != nil { // those of the empty tree
		return nil, err
	}

	var prev tlog.Hash
	var prevHeader *format.Header
	linked := true // prev is the leaf hash of a readable entry before this one (or none)
	var out []tlog.Hash
	entries := txn.NewIterator(badger.IteratorOptions{Prefix: tenantKey(nsEntry, tid), PrefetchValues: true})
	defer entries.Close()
	for entries.Rewind(); entries.Valid(); entries.Next() {
		i := binary.BigEndian.Uint64(entries.Item().Key()[5:])
		if i >= size {
			n := 0
			for ; entries.Valid(); entries.Next() {
				n++
			}
			t.bad(i, 1, "%d entry records stored beyond the tree size %d, the first at index %d", n, size, i)
			break
		}
		afterGap := i > t.st.size
		if afterGap {
			if err := t.gap(i); err != nil {
				return nil, err
			}
		}
		rec, err := entries.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		hb, stored, err := splitEntryRecord(i, rec)
		var h *format.Header
		if err == nil {
			h, err = format.ParseHeader(hb)
		} else {
			hb, stored = rec, nil
		}
		leaf := format.LeafHash(hb)
		switch {
		case err != nil:
			t.bad(i, 1, "%v", err)
		case h.Index != i:
			t.bad(i, 1, "header says index %d", h.Index)
		case h.Tenant != name:
			t.bad(i, 1, "header says tenant %q", h.Tenant)
		case h.PrevLeafHash != prev && i == 0:
			t.bad(i, 1, "hash chain broken: the first entry's previous leaf hash is %x, not zero", h.PrevLeafHash[:])
		case h.PrevLeafHash != prev && linked && !afterGap:
			// After a gap or an unreadable record the link cannot be
			// checked. Either header may have been changed: the problem is
			// named at the first.
			t.bad(i-1, 2, "hash chain broken between entries %d and %d: the header of %d hashes to %x, the header of %d says %x", i-1, i, i-1, prev[:], i, h.PrevLeafHash[:])
		case prevHeader != nil && h.AppendedAt.Before(prevHeader.AppendedAt):
			t.bad(i, 1, "appended_at %s is before the previous entry's %s", h.AppendedAt, prevHeader.AppendedAt)
		}
		prevHeader, linked = h, err == nil
		out = t.st.push(leaf, out[:0])
		t.compare(i, out, stored)
		prev = leaf
		if err := t.checkpoints(); err != nil {
			return nil, err
		}
	}
	if t.st.size < size {
		if err := t.gap(size); err != nil {
			return nil, err
		}
	}
	t.res.Root = t.st.root()
	if err := t.checkpoints(); err != nil { // those beyond the tree
		return nil, err
	}
	sort.SliceStable(t.res.Problems, func(i, j int) bool { return t.res.Problems[i].Index < t.res.Problems[j].Index })
	return t.res, nil
}

// tenantCheck is the state of one tenant's verification: the tree rebuilt
// so far and the checkpoints not yet compared with it.
type tenantCheck struct {
	res  *TenantResult
	v    note.Verifier
	size uint64 // the stored tree size
	st   logState
	cps  *badger.Iterator // checkpoints, at the next to check
	// dirtyUntil: entries below it may have a problem reported already (a
	// stored interior hash over them is then not reported again).
	dirtyUntil uint64
	first      uint64 // the lowest index a problem names
}

// bad records a problem at index i that affects the n entries from i.
func (t *tenantCheck) bad(i, n uint64, format string, args ...any) {
	if len(t.res.Problems) < maxProblems {
		t.res.Problems = append(t.res.Problems, Problem{Tenant: t.res.Tenant, Index: i, Detail: fmt.Sprintf(format, args...)})
	} else {
		t.res.Omitted++
	}
	if n > 0 {
		t.dirtyUntil = max(t.dirtyUntil, i+n)
	}
	t.first = min(t.first, i)
}

// compare compares the tree hashes entry i's append completed, recomputed
// (added[level], level 1 up; added[0] is its leaf hash), with those its
// record stores (nil when the record could not be split). A stored hash
// that differs only because an entry below it has a problem already is
// not reported again.
func (t *tenantCheck) compare(i uint64, added []tlog.Hash, stored []byte) {
	for level := 1; level < len(added) && len(stored) >= level*tlog.HashSize; level++ {
		if tlog.Hash(stored[(level-1)*tlog.HashSize:level*tlog.HashSize]) == added[level] {
			continue
		}
		// Named at the entry whose record holds it, and reported once per
		// record: either that record was changed (its header or its stored
		// hashes) or, if an entry below already has a problem, nothing
		// more is reported.
		lo := i + 1 - uint64(1)<<level
		if t.dirtyUntil <= lo {
			t.bad(i, 1, "stored tree hash (level %d, entries %d-%d, in the record of entry %d) differs from the one recomputed from the headers", level, lo, i, i)
		}
	}
}

// zeroSubtrees[k] is the hash of a complete subtree of 2^k zero leaf
// hashes: what missing entries count as.
var zeroSubtrees = func() (z [64]tlog.Hash) {
	for k := 1; k < 64; k++ {
		z[k] = tlog.NodeHash(z[k-1], z[k-1])
	}
	return z
}()

// gap reports the entry records missing from the tree's size up to end,
// and folds them in as zero leaf hashes (complete subtrees, stopping at
// every checkpoint size on the way to check it).
func (t *tenantCheck) gap(end uint64) error {
	if end-t.st.size == 1 {
		t.bad(t.st.size, 1, "entry record missing")
	} else {
		t.bad(t.st.size, end-t.st.size, "entry records %d to %d missing", t.st.size, end-1)
	}
	for t.st.size < end {
		stop := end
		if at, ok := t.nextCheckpoint(); ok && at > t.st.size && at < stop {
			stop = at
		}
		for t.st.size < stop {
			k := min(bits.TrailingZeros64(t.st.size), bits.Len64(stop-t.st.size)-1)
			t.st.pushSubtree(k, zeroSubtrees[k])
		}
		if err := t.checkpoints(); err != nil {
			return err
		}
	}
	return nil
}

// nextCheckpoint returns the size the next checkpoint is stored at.
func (t *tenantCheck) nextCheckpoint() (uint64, bool) {
	if !t.cps.Valid() {
		return 0, false
	}
	return binary.BigEndian.Uint64(t.cps.Item().Key()[5:]), true
}

// checkpoints checks the stored checkpoints of the tree's current size
// against its root; at the end (size reached), also those beyond it.
func (t *tenantCheck) checkpoints() error {
	for {
		at, ok := t.nextCheckpoint()
		if !ok || (at > t.st.size && t.st.size < t.size) {
			return nil
		}
		msg, err := t.cps.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		t.cps.Next()
		t.res.Checkpoints++
		cp, err := format.OpenCheckpoint(msg, t.v)
		if err != nil {
			t.bad(at, 0, "checkpoint of size %d: %v", at, err)
			continue
		}
		switch {
		case cp.Size != at:
			t.bad(at, 0, "checkpoint stored at size %d says size %d", at, cp.Size)
			continue
		case cp.Origin != t.v.Name()+"/"+t.res.Tenant:
			t.bad(at, 0, "checkpoint origin %q, want %q", cp.Origin, t.v.Name()+"/"+t.res.Tenant)
		case cp.Size > t.size:
			t.bad(t.size, 0, "checkpoint of size %d is beyond the tree size %d: entries were removed", cp.Size, t.size)
			continue
		}
		if t.st.root() != cp.Root {
			blame := cp.Size - 1
			if t.first < blame {
				blame = t.first
			}
			t.bad(blame, 0, "signed checkpoint of size %d does not match the tree recomputed from the headers", cp.Size)
		}
		t.res.Latest = cp
	}
}

// pushSubtree appends a complete subtree of 2^level leaves whose hash is
// h; the tree's size must be a multiple of 2^level.
func (s *logState) pushSubtree(level int, h tlog.Hash) {
	n := uint64(1) << level
	for ; s.size>>level&1 == 1; level++ {
		h = tlog.NodeHash(s.frontier[level], h)
	}
	s.frontier[level] = h
	s.size += n
}

// root is the RFC 6962 root of the tree: its frontier's subtrees combined
// from the smallest up.
func (s *logState) root() tlog.Hash {
	if s.size == 0 {
		return format.EmptyRoot
	}
	var r tlog.Hash
	started := false
	for level := 0; level < 64; level++ {
		if s.size>>level&1 == 0 {
			continue
		}
		if !started {
			r, started = s.frontier[level], true
		} else {
			r = tlog.NodeHash(s.frontier[level], r)
		}
	}
	return r
}
