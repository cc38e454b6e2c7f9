package ledger

import (
	"context"
	"fmt"

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
			e, err := l.readEntry(txn, tid, i)
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
// and leaf hash, in order. Each stored hash is read once per call: entries
// close together share most of their audit paths.
func (l *Ledger) InclusionProofs(ctx context.Context, tenant string, idxs []uint64, treeSize uint64, fn func(index uint64, proof tlog.RecordProof, leaf tlog.Hash) error) error {
	tid, size, err := l.proofSize(ctx, tenant, treeSize)
	if err != nil {
		return err
	}
	return l.db.View(func(txn *badger.Txn) error {
		read := hashReader(txn, tid)
		cache := map[int64]tlog.Hash{}
		r := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(indexes))
			var missing []int64
			for i, x := range indexes {
				h, ok := cache[x]
				if !ok {
					missing = append(missing, x)
				}
				out[i] = h
			}
			if len(missing) > 0 {
				hs, err := read(missing)
				if err != nil {
					return nil, err
				}
				for i, x := range missing {
					cache[x] = hs[i]
				}
				for i, x := range indexes {
					out[i] = cache[x]
				}
			}
			return out, nil
		})
		for _, i := range idxs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if i >= size {
				return fmt.Errorf("%w: index %d is not below tree size %d", ErrInvalid, i, size)
			}
			leaf, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(i))})
			if err != nil {
				return err
			}
			proof, err := tlog.ProveRecord(int64(size), int64(i), r)
			if err != nil {
				return err
			}
			if err := fn(i, proof, leaf[0]); err != nil {
				return err
			}
		}
		return nil
	})
}
