package ledger

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// Batched reads for queries and exports: many entries, headers, index terms
// or proofs in one read transaction each, rather than one transaction per
// item. Each checks ctx between items.

// ReadEntries reads the entries idxs of a tenant's log (each below its
// committed size) in one read transaction and calls fn with each, in
// order, as GetEntry would return it. It stops at the first error, fn's
// included.
func (l *Ledger) ReadEntries(ctx context.Context, tenant string, idxs []uint64, fn func(*Entry) error) error {
	return l.readEach(ctx, tenant, idxs, l.readEntry, fn)
}

// readEach reads the entries idxs of a tenant's log (each below its
// committed size) with read, in one read transaction, and calls fn with
// each, in order; it stops at the first error, fn's included.
func (l *Ledger) readEach(ctx context.Context, tenant string, idxs []uint64, read func(getter, uint32, uint64) (*Entry, error), fn func(*Entry) error) error {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return err
	}
	size := l.committedSize(tid)
	return l.db.View(func(txn *badger.Txn) error {
		for _, i := range idxs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if i >= size {
				return fmt.Errorf("entry %d: %w", i, ErrNotFound)
			}
			e, err := read(txn, tid, i)
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReadEntryHeads reads the entries idxs of a tenant's log (each below its
// committed size) in one read transaction, as ReadEntries does but without
// their payloads, and calls fn with each, in order: Header, HeaderBytes,
// LeafHash and ErasedBy as GetEntry gives them, Salt and Payload nil, and
// Erased when the entry's payload is gone from the store. It reads no
// payload (a payload's presence is its key's, not its value's): an entry
// costs its header record and two key lookups, so a caller can show a
// whole trace's shape, and which of its entries are erased, for a
// fraction of the work of reading it. One state differs from GetEntry's:
// an entry whose data key is destroyed while its payload is still stored
// reads as not erased here, and erased by GetEntry, which opens the
// payload. Shred drops the payloads it erases before it destroys their
// keys (re-sealing the others), so it leaves no such entry, even when
// interrupted; a key lost otherwise would. It stops at the first error,
// fn's included.
func (l *Ledger) ReadEntryHeads(ctx context.Context, tenant string, idxs []uint64, fn func(*Entry) error) error {
	return l.readEach(ctx, tenant, idxs, func(txn getter, tid uint32, i uint64) (*Entry, error) {
		e, _, err := readEntryHead(txn, tid, i)
		return e, err
	}, fn)
}

// Headers returns the headers of the entries idxs (each below the committed
// size), in order, read in one transaction.
func (l *Ledger) Headers(ctx context.Context, tenant string, idxs []uint64) ([]*format.Header, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	size := l.committedSize(tid)
	out := make([]*format.Header, len(idxs))
	err = l.db.View(func(txn *badger.Txn) error {
		for n, i := range idxs {
			if n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if i >= size {
				return fmt.Errorf("entry %d: %w", i, ErrNotFound)
			}
			if out[n], err = readHeader(txn, tid, i); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// HaveTerms reports, for each of the entries idxs, whether it carries
// every one of terms; read in one transaction.
func (l *Ledger) HaveTerms(ctx context.Context, tenant string, terms []Term, idxs []uint64) ([]bool, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	prefixes := make([][]byte, len(terms))
	for i, t := range terms {
		prefixes[i] = l.termPrefix(tid, t)
	}
	out := make([]bool, len(idxs))
	err = l.db.View(func(txn *badger.Txn) error {
		its := make([]*badger.Iterator, len(prefixes))
		for j, p := range prefixes {
			its[j] = txn.NewIterator(badger.IteratorOptions{Prefix: p})
			defer its[j].Close()
		}
		for n, i := range idxs {
			if n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			out[n] = true
			for j, p := range prefixes {
				ok, err := blockHas(its[j], p, i)
				if err != nil {
					return err
				}
				if !ok {
					out[n] = false
					break
				}
			}
		}
		return nil
	})
	return out, err
}

// InclusionProofs proves the entries idxs in the tree of treeSize (a
// committed size), in one read transaction, and calls fn with each proof
// and leaf hash, in order. It first lists the tree hashes every proof
// needs, then reads the entry records holding them in key order with one
// iterator, each once (entries close together share most of their audit
// paths, and their records lie next to each other), then proves each
// entry from what it read.
func (l *Ledger) InclusionProofs(ctx context.Context, tenant string, idxs []uint64, treeSize uint64, fn func(index uint64, proof tlog.RecordProof, leaf tlog.Hash) error) error {
	tid, size, err := l.proofSize(ctx, tenant, treeSize)
	if err != nil {
		return err
	}
	// The stored hashes the proofs read: ProveRecord asks for the same
	// indexes whatever the hashes are.
	need := map[int64]tlog.Hash{}
	list := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		for _, x := range indexes {
			need[x] = tlog.Hash{}
		}
		return make([]tlog.Hash, len(indexes)), nil
	})
	for _, i := range idxs {
		if i >= size {
			return fmt.Errorf("%w: index %d is not below tree size %d", ErrInvalid, i, size)
		}
		need[tlog.StoredHashIndex(0, int64(i))] = tlog.Hash{}
		if _, err := tlog.ProveRecord(int64(size), int64(i), list); err != nil {
			return err
		}
	}
	return l.db.View(func(txn *badger.Txn) error {
		if err := readStoredHashes(ctx, txn, tid, need); err != nil {
			return err
		}
		r := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(indexes))
			for i, x := range indexes {
				h, ok := need[x]
				if !ok { // not listed: ProveRecord asked for other hashes
					return nil, fmt.Errorf("tree hash %d was not read", x)
				}
				out[i] = h
			}
			return out, nil
		})
		for _, i := range idxs {
			if err := ctx.Err(); err != nil {
				return err
			}
			leaf := need[tlog.StoredHashIndex(0, int64(i))]
			proof, err := tlog.ProveRecord(int64(size), int64(i), r)
			if err != nil {
				return err
			}
			if err := fn(i, proof, leaf); err != nil {
				return err
			}
		}
		return nil
	})
}

// readStoredHashes fills hashes (stored hash index: hash) from the entry
// records of a tenant that hold them (hashReader's layout), reading the
// records in key order with one iterator: the next record is reached by
// stepping when it is close, by seeking when it is not.
func readStoredHashes(ctx context.Context, txn *badger.Txn, tenant uint32, hashes map[int64]tlog.Hash) error {
	byRecord := map[uint64][]int64{}
	for x := range hashes {
		if x < 0 {
			return fmt.Errorf("tree hash %d: negative index", x)
		}
		level, n := tlog.SplitStoredHashIndex(x)
		if level >= 64 || uint64(n+1) > (^uint64(0))>>level {
			return fmt.Errorf("tree hash %d: out of range", x)
		}
		e := uint64(n+1)<<level - 1
		byRecord[e] = append(byRecord[e], x)
	}
	records := slices.Sorted(maps.Keys(byRecord))
	it := txn.NewIterator(badger.IteratorOptions{Prefix: entryKey(tenant, 0)[:5]}) // values read only where needed
	defer it.Close()
	for n, e := range records {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		key := entryKey(tenant, e)
		for step := 0; it.Valid() && step < 8 && bytes.Compare(it.Item().Key(), key) < 0; step++ {
			it.Next()
		}
		if !it.Valid() || bytes.Compare(it.Item().Key(), key) < 0 {
			it.Seek(key)
		}
		if !it.Valid() || !bytes.Equal(it.Item().Key(), key) {
			return fmt.Errorf("read tree hashes: entry %d: %w", e, badger.ErrKeyNotFound)
		}
		err := it.Item().Value(func(v []byte) error {
			header, hs, err := splitEntryRecord(e, v)
			if err != nil {
				return err
			}
			for _, x := range byRecord[e] {
				level, _ := tlog.SplitStoredHashIndex(x)
				if level == 0 {
					hashes[x] = format.LeafHash(header)
				} else {
					hashes[x] = tlog.Hash(hs[(level-1)*tlog.HashSize:])
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read tree hashes: entry %d: %w", e, err)
		}
	}
	return nil
}
