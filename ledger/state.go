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
	l.recordsMu.Lock()
	defer l.recordsMu.Unlock()
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

// maxStateBatchBytes bounds the values PutStates writes in one
// transaction; a record above it is written alone.
const maxStateBatchBytes = 4 << 20

// PutStates stores several state records of a tenant, durably, in
// transactions of at most maxStateBatchBytes of values (one record alone
// when it is larger), in order: a crash leaves a prefix of them stored.
// names and values have the same length.
func (l *Ledger) PutStates(ctx context.Context, tenant string, names []string, values [][]byte) error {
	if len(names) != len(values) {
		return fmt.Errorf("store states: %d names, %d values", len(names), len(values))
	}
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return err
	}
	for i := 0; i < len(names); {
		if err := ctx.Err(); err != nil {
			return err
		}
		j, size := i, 0
		for j < len(names) && (j == i || size+len(values[j]) <= maxStateBatchBytes) {
			size += len(values[j])
			j++
		}
		l.recordsMu.Lock()
		err := l.update("store states", func(txn *badger.Txn) error {
			for k := i; k < j; k++ {
				if err := txn.Set(append(tenantKey(nsState, tid), names[k]...), values[k]); err != nil {
					return err
				}
			}
			return nil
		})
		l.recordsMu.Unlock()
		if err != nil {
			return err
		}
		i = j
	}
	return nil
}

// StateNames returns the names of a tenant's state records whose names
// start with prefix, in name order, reading no value.
func (l *Ledger) StateNames(ctx context.Context, tenant, prefix string) ([]string, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	base := tenantKey(nsState, tid)
	var names []string
	err = l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: append(append([]byte{}, base...), prefix...)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			names = append(names, string(it.Item().Key()[len(base):]))
		}
		return nil
	})
	return names, err
}

// maxStateDeletes bounds the records DeleteStates deletes in one
// transaction.
const maxStateDeletes = 1000

// DeleteStates deletes state records of a tenant by name, durably, in
// transactions of at most maxStateDeletes records. Deleting a record that
// does not exist is not an error.
func (l *Ledger) DeleteStates(ctx context.Context, tenant string, names []string) error {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return err
	}
	for len(names) > 0 {
		n := min(len(names), maxStateDeletes)
		l.recordsMu.Lock()
		err := l.update("delete states", func(txn *badger.Txn) error {
			for _, name := range names[:n] {
				if err := txn.Delete(append(tenantKey(nsState, tid), name...)); err != nil {
					return err
				}
			}
			return nil
		})
		l.recordsMu.Unlock()
		if err != nil {
			return err
		}
		names = names[n:]
	}
	return nil
}

// UpdateState reads a tenant's state record and replaces it with what fn
// returns, atomically with respect to every other write of state records:
// fn gets the stored value (nil if there is none) and returns the new
// value, nil to delete the record, or an error to write nothing (returned
// as is). Create-if-absent records, compare-and-swap and leases are made
// with it. fn MUST NOT call the ledger. A backend shared by several
// processes gives the same guarantee with its own transactions (a
// conditional update).
func (l *Ledger) UpdateState(ctx context.Context, tenant, name string, fn func(old []byte) ([]byte, error)) error {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return err
	}
	key := append(tenantKey(nsState, tid), name...)
	l.recordsMu.Lock()
	defer l.recordsMu.Unlock()
	return l.update("update state", func(txn *badger.Txn) error {
		old, err := getValue(txn, key)
		if err != nil {
			return err
		}
		v, err := fn(old)
		if err != nil {
			return err
		}
		if v == nil {
			return txn.Delete(key)
		}
		return txn.Set(key, v)
	})
}

// PutStateIf stores a state record of a tenant, durably, only if check
// accepts the value of the state record guard (nil if there is none), read
// atomically with the write: a fence, so that a process that lost a lease
// writes nothing under it. check's error is returned as is; check MUST NOT
// call the ledger.
func (l *Ledger) PutStateIf(ctx context.Context, tenant, name string, value []byte, guard string, check func(guardValue []byte) error) error {
	return l.PutStatesIf(ctx, tenant, []string{name}, [][]byte{value}, guard, check)
}

// maxStatesIf bounds the records PutStatesIf writes.
const maxStatesIf = 16

// PutStatesIf is PutStateIf for a few records (at most 16) written in one
// transaction: all or none. A nil value deletes its record. A plan's
// header and its entry in the index of running plans are written so.
func (l *Ledger) PutStatesIf(ctx context.Context, tenant string, names []string, values [][]byte, guard string, check func(guardValue []byte) error) error {
	if len(names) != len(values) || len(names) > maxStatesIf {
		return fmt.Errorf("store states: %d names, %d values (at most %d)", len(names), len(values), maxStatesIf)
	}
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return err
	}
	l.recordsMu.Lock()
	defer l.recordsMu.Unlock()
	return l.update("store state", func(txn *badger.Txn) error {
		g, err := getValue(txn, append(tenantKey(nsState, tid), guard...))
		if err != nil {
			return err
		}
		if err := check(g); err != nil {
			return err
		}
		for i, name := range names {
			key := append(tenantKey(nsState, tid), name...)
			if values[i] == nil {
				err = txn.Delete(key)
			} else {
				err = txn.Set(key, values[i])
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// getValue returns a copy of a key's value, nil if there is none.
func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}
