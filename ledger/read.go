package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// Entry is a stored entry with its payload decrypted.
type Entry struct {
	Header      *format.Header
	HeaderBytes []byte // canonical header bytes
	LeafHash    tlog.Hash
	// Salt and Payload are nil when Erased.
	Salt    []byte
	Payload []byte
	// Erased is true when the payload's data key or ciphertext is gone.
	Erased bool
	// ErasedBy is the index of the tombstone that names the entry, when
	// Erased and the tombstone has been written.
	ErasedBy *uint64
}

// GetEntry returns entry index of a tenant's log with its payload
// decrypted. ErrNotFound when the tenant or the index does not exist.
func (l *Ledger) GetEntry(ctx context.Context, tenant string, index uint64) (*Entry, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	if index >= l.committedSize(tid) {
		return nil, fmt.Errorf("entry %d: %w", index, ErrNotFound)
	}
	var e *Entry
	err = l.db.View(func(txn *badger.Txn) error {
		e, err = l.readEntry(txn, tid, index)
		return err
	})
	return e, err
}

// readEntry reads and decrypts an entry. It checks that the payload
// matches the header's commitment.
func (l *Ledger) readEntry(txn getter, tenant uint32, index uint64) (*Entry, error) {
	e, item, err := readEntryHead(txn, tenant, index)
	if err != nil || item == nil {
		return e, err
	}
	env, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("read payload %d: %w", index, err)
	}
	ev, err := parseEnvelope(env)
	if err != nil {
		return nil, fmt.Errorf("payload %d: %w", index, err)
	}
	dk, err := l.keys.byID(ev.keyID())
	if errors.Is(err, ErrKeyDestroyed) {
		e.Erased = true
		return e, nil
	}
	if err != nil {
		return nil, fmt.Errorf("payload %d: %w", index, err)
	}
	salt, payload, err := open(dk, tenant, e.Header.Commitment, ev)
	if err != nil {
		return nil, fmt.Errorf("payload %d: %w", index, err)
	}
	if format.Commitment(salt, payload) != e.Header.Commitment {
		return nil, fmt.Errorf("payload %d: %w: commitment mismatch", index, ErrDecrypt)
	}
	e.Salt, e.Payload = salt, payload
	return e, nil
}

// readEntryHead reads an entry's header and erased-by mark, and the item
// of its stored payload: nil, and the entry Erased, when the payload is
// gone. It reads no payload.
func readEntryHead(txn getter, tenant uint32, index uint64) (*Entry, *badger.Item, error) {
	hb, _, err := readRecord(txn, tenant, index)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil, fmt.Errorf("entry %d: %w", index, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read entry %d: %w", index, err)
	}
	h, err := format.ParseHeader(hb)
	if err != nil {
		return nil, nil, fmt.Errorf("read entry %d: %w", index, err)
	}
	e := &Entry{Header: h, HeaderBytes: hb, LeafHash: format.LeafHash(hb)}
	if item, err := txn.Get(tenantIndexKey(nsErasedBy, tenant, index)); err == nil {
		var by uint64
		if err := item.Value(func(v []byte) error { by = binary.BigEndian.Uint64(v); return nil }); err != nil {
			return nil, nil, err
		}
		e.ErasedBy = &by
	}
	item, err := txn.Get(payloadKey(tenant, index))
	if errors.Is(err, badger.ErrKeyNotFound) {
		e.Erased = true
		return e, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read payload %d: %w", index, err)
	}
	return e, item, nil
}

// VersionInfo locates a registered version.
type VersionInfo struct {
	Kind  format.VersionKind
	Name  string
	Label string
	ID    [32]byte
	Index uint64
}

// GetVersion returns the entry of a registered version by id.
func (l *Ledger) GetVersion(ctx context.Context, tenant string, id [32]byte) (*Entry, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	var e *Entry
	err = l.db.View(func(txn *badger.Txn) error {
		idx, _, found, err := lookupIdentity(txn, tid, format.KindVersion, id)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("version %x: %w", id, ErrNotFound)
		}
		e, err = l.readEntry(txn, tid, idx)
		return err
	})
	return e, err
}

// ListVersions lists registered versions ordered by kind, name and label.
// kind 0 lists every kind and an empty name every name. It returns at most
// limit versions that sort after the one named by after (nil: from the
// start), and the cursor to continue from (nil at the end).
func (l *Ledger) ListVersions(ctx context.Context, tenant string, kind format.VersionKind, name string, after []byte, limit int) ([]VersionInfo, []byte, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, nil, err
	}
	prefix := tenantKey(nsVersion, tid)
	if kind != 0 {
		prefix = versionNamePrefix(tid, kind)
		if name != "" {
			prefix = append(append(prefix, name...), 0)
		}
	}
	var out []VersionInfo
	var next []byte
	err = l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		start := prefix
		if after != nil {
			start = append(append(append([]byte{}, prefix[:5]...), after...), 0)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			vk := format.VersionKind(k[5])
			sep := bytes.IndexByte(k[6:], 0)
			if sep < 0 {
				return fmt.Errorf("malformed version key %x", k)
			}
			vname, label := string(k[6:6+sep]), string(k[7+sep:])
			if kind == 0 && name != "" && vname != name {
				continue
			}
			if len(out) == limit {
				next = append([]byte{}, k[5:]...)
				return nil
			}
			v := VersionInfo{Kind: vk, Name: vname, Label: label}
			if err := item.Value(func(b []byte) error {
				if len(b) != 40 {
					return fmt.Errorf("version entry of %d bytes", len(b))
				}
				copy(v.ID[:], b)
				v.Index = binary.BigEndian.Uint64(b[32:])
				return nil
			}); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	if next != nil {
		// The cursor is the key of the last version returned.
		last := out[len(out)-1]
		next = append([]byte{byte(last.Kind)}, last.Name...)
		next = append(append(next, 0), last.Label...)
	}
	return out, next, err
}

// EntriesOfKind returns up to limit entries of a kind other than span, in
// index order, starting at index from. It also returns the index to
// continue from, or 0 at the end.
func (l *Ledger) EntriesOfKind(ctx context.Context, tenant string, kind format.Kind, from uint64, limit int) ([]*Entry, uint64, error) {
	if kind == format.KindSpan {
		return nil, 0, fmt.Errorf("%w: spans have no kind index", ErrInvalid)
	}
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, 0, err
	}
	var out []*Entry
	var next uint64
	err = l.db.View(func(txn *badger.Txn) error {
		prefix := kindIndexPrefix(tid, kind)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(kindIndexKey(tid, kind, from)); it.Valid(); it.Next() {
			idx := binary.BigEndian.Uint64(it.Item().Key()[len(prefix):])
			if len(out) == limit {
				next = idx
				return nil
			}
			e, err := l.readEntry(txn, tid, idx)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, next, err
}

// IdentityIndex returns the index of the entry of kind with identity id
// (Record.ID for tombstone, retention and hold records), and whether there
// is one.
func (l *Ledger) IdentityIndex(ctx context.Context, tenant string, kind format.Kind, id [32]byte) (uint64, bool, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return 0, false, err
	}
	var idx uint64
	var found bool
	err = l.db.View(func(txn *badger.Txn) error {
		var err error
		idx, _, found, err = lookupIdentity(txn, tid, kind, id)
		return err
	})
	return idx, found, err
}

// LeafHashes returns the leaf hashes of entries idxs of a tenant's log, in
// the order given, reading their records 1024 to a transaction.
// ErrNotFound if one does not exist.
func (l *Ledger) LeafHashes(ctx context.Context, tenant string, idxs []uint64) ([]tlog.Hash, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	size := l.committedSize(tid)
	out := make([]tlog.Hash, 0, len(idxs))
	err = l.viewChunks(ctx, idxs, func(txn *badger.Txn, i uint64) error {
		if i >= size {
			return fmt.Errorf("entry %d: %w", i, ErrNotFound)
		}
		hb, _, err := readRecord(txn, tid, i)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("entry %d: %w", i, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read entry %d: %w", i, err)
		}
		out = append(out, format.LeafHash(hb))
		return nil
	})
	return out, err
}

// viewChunks calls fn for each index, in read transactions of up to 1024
// indexes, checking ctx between them: long reads never hold one snapshot
// (and the versions it pins) for long.
func (l *Ledger) viewChunks(ctx context.Context, idxs []uint64, fn func(txn *badger.Txn, i uint64) error) error {
	for len(idxs) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := idxs[:min(len(idxs), 1024)]
		idxs = idxs[len(chunk):]
		err := l.db.View(func(txn *badger.Txn) error {
			for _, i := range chunk {
				if err := fn(txn, i); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
