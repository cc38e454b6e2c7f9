package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
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
	Problems    []Problem // in index order
}

// VerifyDir checks every tenant's log in a data directory without the data
// keys: it re-reads every header, checks its encoding, index, tenant and
// hash chain, recomputes every leaf and tree hash and compares them with the
// stored ones, and checks every stored checkpoint's signature and root
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

func verifyTenant(txn *badger.Txn, tid uint32, name string, v note.Verifier) (*TenantResult, error) {
	size, err := readTreeSize(txn, tid)
	if err != nil {
		return nil, err
	}
	res := &TenantResult{Tenant: name, Size: size}
	bad := func(i uint64, format string, args ...any) {
		res.Problems = append(res.Problems, Problem{Tenant: name, Index: i, Detail: fmt.Sprintf(format, args...)})
	}

	// Recompute every tree hash from the headers alone.
	hashes := make([]tlog.Hash, 0, tlog.StoredHashCount(int64(size)))
	mem := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	var prev tlog.Hash
	var prevHeader *format.Header
	// Stored tree hashes (in the entry records) that differ from the ones
	// recomputed from the headers.
	type node struct {
		level int
		n     int64
	}
	var interior []node
	it := txn.NewIterator(badger.IteratorOptions{Prefix: tenantKey(nsEntry, tid), PrefetchValues: true})
	next := uint64(0)
	for it.Rewind(); it.Valid(); it.Next() {
		i := binary.BigEndian.Uint64(it.Item().Key()[5:])
		if i >= size {
			bad(i, "entry stored beyond the tree size %d", size)
			break
		}
		for ; next < i; next++ {
			bad(next, "header missing")
			hs, _ := tlog.StoredHashesForRecordHash(int64(next), tlog.Hash{}, mem)
			hashes = append(hashes, hs...)
			prev = tlog.Hash{}
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			it.Close()
			return nil, err
		}
		hb, stored, err := splitEntryRecord(i, v)
		if err != nil {
			bad(i, "%v", err)
			hb, stored = v, nil
		}
		leaf := format.LeafHash(hb)
		h, err := format.ParseHeader(hb)
		switch {
		case err != nil:
			bad(i, "%v", err)
		case h.Index != i:
			bad(i, "header says index %d", h.Index)
		case h.Tenant != name:
			bad(i, "header says tenant %q", h.Tenant)
		case h.PrevLeafHash != prev:
			bad(i, "hash chain broken: previous leaf hash is %x, header says %x", prev[:], h.PrevLeafHash[:])
		case prevHeader != nil && h.AppendedAt.Before(prevHeader.AppendedAt):
			bad(i, "appended_at %s is before the previous entry's %s", h.AppendedAt, prevHeader.AppendedAt)
		}
		prevHeader = h
		hs, err := tlog.StoredHashesForRecordHash(int64(i), leaf, mem)
		if err != nil {
			it.Close()
			return nil, err
		}
		hashes = append(hashes, hs...)
		// hs[level] is the hash of the subtree of 2^level leaves ending at
		// entry i; the record stores those of level 1 up.
		for level := 1; level < len(hs) && stored != nil; level++ {
			if !bytes.Equal(stored[(level-1)*tlog.HashSize:level*tlog.HashSize], hs[level][:]) {
				interior = append(interior, node{level, int64(i+1)>>level - 1})
			}
		}
		prev = leaf
		next = i + 1
	}
	it.Close()
	for ; next < size; next++ {
		bad(next, "header missing")
		hs, _ := tlog.StoredHashesForRecordHash(int64(next), tlog.Hash{}, mem)
		hashes = append(hashes, hs...)
	}

	// A stored tree hash that differs only because a header below it does
	// is not reported again.
	for _, nd := range interior {
		lo, hi := uint64(nd.n)<<nd.level, uint64(nd.n+1)<<nd.level
		explained := false
		for _, p := range res.Problems {
			explained = explained || (p.Index >= lo && p.Index < hi)
		}
		if !explained {
			// Named at the entry whose record holds it.
			bad(hi-1, "stored tree hash (level %d, entries %d-%d) differs from the one recomputed from the headers", nd.level, lo, hi-1)
		}
	}
	if size > 0 {
		res.Root, _ = tlog.TreeHash(int64(size), mem)
	} else {
		res.Root = format.EmptyRoot
	}

	// Check every signed checkpoint against the recomputed tree.
	it = txn.NewIterator(badger.IteratorOptions{Prefix: tenantKey(nsCheckpoint, tid), PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		at := binary.BigEndian.Uint64(it.Item().Key()[5:])
		msg, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		res.Checkpoints++
		cp, err := format.OpenCheckpoint(msg, v)
		if err != nil {
			bad(at, "checkpoint of size %d: %v", at, err)
			continue
		}
		want := format.EmptyRoot
		switch {
		case cp.Size != at:
			bad(at, "checkpoint stored at size %d says size %d", at, cp.Size)
			continue
		case cp.Origin != v.Name()+"/"+name:
			bad(at, "checkpoint origin %q, want %q", cp.Origin, v.Name()+"/"+name)
		case cp.Size > size:
			bad(size, "checkpoint of size %d is beyond the tree size %d: entries were removed", cp.Size, size)
			continue
		}
		if cp.Size > 0 {
			want, _ = tlog.TreeHash(int64(cp.Size), mem)
		}
		if want != cp.Root {
			bad(firstProblem(res.Problems, cp.Size), "signed checkpoint of size %d does not match the tree recomputed from the headers", cp.Size)
		}
		res.Latest = cp
	}
	sort.SliceStable(res.Problems, func(i, j int) bool { return res.Problems[i].Index < res.Problems[j].Index })
	return res, nil
}

// firstProblem names the entry a checkpoint mismatch is blamed on: the
// first problem already found below size, else the checkpoint's last entry.
func firstProblem(ps []Problem, size uint64) uint64 {
	best := size - 1
	for _, p := range ps {
		if p.Index < best {
			best = p.Index
		}
	}
	return best
}
