package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// State records hold the current state that the retention package derives
// from its ledger entries (rules, holds, erasure requests), so that it can
// look them up without replaying the log. The ledger stores them as they
// are; the entries remain the record of what happened.

// PutState stores a state record of a tenant, durably.
func (l *Ledger) PutState(ctx context.Context, tenant, name string, value []byte) error {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return err
	}
	return l.update("store state", func(txn *badger.Txn) error {
		return txn.Set(append(tenantKey(nsState, tid), name...), value)
	})
}

// GetState returns a state record, ErrNotFound if there is none.
func (l *Ledger) GetState(ctx context.Context, tenant, name string) ([]byte, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	var v []byte
	err = l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(append(tenantKey(nsState, tid), name...))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("state %q: %w", name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	return v, err
}

// ListState returns the names and values of a tenant's state records whose
// names start with prefix, in name order.
func (l *Ledger) ListState(ctx context.Context, tenant, prefix string) ([]string, [][]byte, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, nil, err
	}
	base := tenantKey(nsState, tid)
	var names []string
	var values [][]byte
	err = l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: append(append([]byte{}, base...), prefix...), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			names = append(names, string(it.Item().Key()[len(base):]))
			values = append(values, v)
		}
		return nil
	})
	return names, values, err
}

// ListStatePage returns, in name order, the names and values of at most
// limit of a tenant's state records whose names start with prefix and sort
// after `after` (from the first when after is empty). It reads only those.
func (l *Ledger) ListStatePage(ctx context.Context, tenant, prefix, after string, limit int) ([]string, [][]byte, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, nil, err
	}
	base := tenantKey(nsState, tid)
	start := append(append([]byte{}, base...), prefix...)
	if after != "" {
		start = append(append([]byte{}, base...), after...)
	}
	var names []string
	var values [][]byte
	err = l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: append(append([]byte{}, base...), prefix...), PrefetchValues: true, PrefetchSize: min(limit, 100)})
		defer it.Close()
		for it.Seek(start); it.Valid() && len(names) < limit; it.Next() {
			name := string(it.Item().Key()[len(base):])
			if name == after {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			names = append(names, name)
			values = append(values, v)
		}
		return nil
	})
	return names, values, err
}
