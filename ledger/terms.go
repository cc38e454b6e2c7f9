package ledger

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/veritrace/veritrace/ledger/format"
)

// Term is a secondary index term of a record: a field (its meaning is the
// caller's) and a value. The index stores a keyed MAC of the value, never
// the value, so that terms taken from personal data (a subject or session
// id) hold none in the clear and can be deleted with the subject's data.
type Term struct {
	Field uint8
	Value []byte
}

// termMACSize is the size of a term's value MAC in index keys.
const termMACSize = 16

// SubjectField is the index field of a record's subject. Append adds the
// term itself for every record with a Subject; its MAC is the subject's
// pseudonym in the key store, so erasure finds a subject's keys and
// entries from one value.
const SubjectField uint8 = 3

// MaxTerms is the most index terms a record may carry.
const MaxTerms = 64

// termMAC is HMAC-SHA256(pseudonym key, u32 tenant || field || value),
// truncated to 16 bytes. Keyed HMAC states are pooled: appends compute
// one per index term.
func (ks *keyStore) termMAC(tenant uint32, field uint8, value []byte) [termMACSize]byte {
	m, _ := ks.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, ks.pseudoKey)
	}
	m.Reset()
	var b [5]byte
	binary.BigEndian.PutUint32(b[:], tenant)
	b[4] = field
	m.Write(b[:])
	m.Write(value)
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	ks.macs.Put(m)
	var out [termMACSize]byte
	copy(out[:], sum[:])
	return out
}

func (l *Ledger) termPrefix(tenant uint32, t Term) []byte {
	return termPrefixKey(tenant, t.Field, l.keys.termMAC(tenant, t.Field, t.Value))
}

// termRef is how an envelope lists a term: field and MAC.
func (l *Ledger) termRef(tenant uint32, t Term) [termRefSize]byte {
	var r [termRefSize]byte
	r[0] = t.Field
	mac := l.keys.termMAC(tenant, t.Field, t.Value)
	copy(r[1:], mac[:])
	return r
}

func termRefKey(tenant uint32, r [termRefSize]byte, index uint64) []byte {
	var mac [termMACSize]byte
	copy(mac[:], r[1:])
	return binary.BigEndian.AppendUint64(termPrefixKey(tenant, r[0], mac), index)
}

// Postings returns up to limit indexes of entries carrying the term, in
// index order, starting at index from, and the index to continue from (0
// at the end).
func (l *Ledger) Postings(ctx context.Context, tenant string, t Term, from uint64, limit int) ([]uint64, uint64, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, 0, err
	}
	prefix := l.termPrefix(tid, t)
	var out []uint64
	var next uint64
	err = l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(binary.BigEndian.AppendUint64(append([]byte{}, prefix...), from)); it.Valid(); it.Next() {
			idx := binary.BigEndian.Uint64(it.Item().Key()[len(prefix):])
			if len(out) == limit {
				next = idx
				return nil
			}
			out = append(out, idx)
		}
		return nil
	})
	return out, next, err
}

// HasTerm reports whether entry index carries the term.
func (l *Ledger) HasTerm(ctx context.Context, tenant string, t Term, index uint64) (bool, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return false, err
	}
	found := false
	err = l.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(binary.BigEndian.AppendUint64(l.termPrefix(tid, t), index))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	return found, err
}

// Header returns the header of entry index without touching its payload.
func (l *Ledger) Header(ctx context.Context, tenant string, index uint64) (*format.Header, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	if index >= l.committedSize(tid) {
		return nil, fmt.Errorf("entry %d: %w", index, ErrNotFound)
	}
	var h *format.Header
	err = l.db.View(func(txn *badger.Txn) error {
		h, err = readHeader(txn, tid, index)
		return err
	})
	return h, err
}

func readHeader(txn *badger.Txn, tid uint32, index uint64) (*format.Header, error) {
	item, err := txn.Get(entryKey(tid, index))
	if err != nil {
		return nil, fmt.Errorf("read header %d: %w", index, err)
	}
	var h *format.Header
	err = item.Value(func(v []byte) error {
		hb, _, err := splitEntryRecord(index, v)
		if err == nil {
			h, err = format.ParseHeader(hb)
		}
		return err
	})
	return h, err
}

// IndexAt returns the first index whose entry was appended at or after t
// (the log's size if none was). Appended_at never decreases along a log,
// so this is a binary search over at most log2(size) headers.
func (l *Ledger) IndexAt(ctx context.Context, tenant string, t time.Time) (uint64, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return 0, err
	}
	size := l.committedSize(tid)
	var ferr error
	err = l.db.View(func(txn *badger.Txn) error {
		i := sort.Search(int(size), func(i int) bool {
			if ferr != nil {
				return true
			}
			h, err := readHeader(txn, tid, uint64(i))
			if err != nil {
				ferr = err
				return true
			}
			return !h.AppendedAt.Before(t)
		})
		size = uint64(i)
		return ferr
	})
	return size, err
}

// SpansOfTrace returns the indexes of a trace's span entries below size, in
// index order. The span identity index (trace id, span id) serves as the
// trace index, so traces need no index term of their own.
func (l *Ledger) SpansOfTrace(ctx context.Context, tenant string, trace [16]byte, size uint64) ([]uint64, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	var id [32]byte
	copy(id[:], trace[:])
	prefix := identityKey(tid, format.KindSpan, id)[:len(tenantKey(nsIdentity, tid))+1+16]
	var out []uint64
	err = l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := it.Item().Value(func(v []byte) error {
				if len(v) != 9 {
					return fmt.Errorf("identity entry of %d bytes", len(v))
				}
				if idx := binary.BigEndian.Uint64(v); idx < size {
					out = append(out, idx)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, err
}
