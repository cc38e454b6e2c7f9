package ledger

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
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

func termRefPrefix(tenant uint32, r [termRefSize]byte) []byte {
	var mac [termMACSize]byte
	copy(mac[:], r[1:])
	return termPrefixKey(tenant, r[0], mac)
}

// Index terms are stored in posting blocks (nsTerm, docs/FORMAT.md §6).
// A block's key is the term's prefix and an index K; its value lists the
// block's entries, every one at most K, as uvarint gaps in descending
// order from K: K minus the largest entry, then each entry minus the next
// smaller one (at least 1). An empty value is the block {K}, which is also
// what a format-2 database holds (one key per term and entry). The writer
// stores one block per term and group transaction, holding the group's
// entries that carry the term, with K the largest of them: so the blocks
// of a term cover disjoint index ranges, and the block that may hold entry
// i is the first at or after prefix || i. Erasure removes entries from
// their blocks (K stays) and deletes a block left empty.

// encodeBlock encodes a block's entries (ascending, the largest at most k).
func encodeBlock(k uint64, entries []uint64) []byte {
	if len(entries) == 1 && entries[0] == k {
		return nil
	}
	v := make([]byte, 0, 2*len(entries))
	prev := k
	for j := len(entries) - 1; j >= 0; j-- {
		v = binary.AppendUvarint(v, prev-entries[j])
		prev = entries[j]
	}
	return v
}

// decodeBlock returns the entries of block k, ascending. It refuses a
// value that does not encode a strictly descending list of indexes.
func decodeBlock(k uint64, v []byte) ([]uint64, error) {
	if len(v) == 0 {
		return []uint64{k}, nil
	}
	var out []uint64
	prev := k
	for len(v) > 0 {
		g, n := binary.Uvarint(v)
		if n <= 0 || g > prev || (g == 0 && len(out) > 0) {
			return nil, fmt.Errorf("malformed posting block %d", k)
		}
		prev -= g
		out = append(out, prev)
		v = v[n:]
	}
	slices.Reverse(out)
	return out, nil
}

// blockEntries decodes the block an iterator is at (a key of prefix).
func blockEntries(prefix []byte, item *badger.Item) (uint64, []uint64, error) {
	key := item.Key()
	if len(key) != len(prefix)+8 {
		return 0, nil, fmt.Errorf("posting block key of %d bytes", len(key))
	}
	k := binary.BigEndian.Uint64(key[len(prefix):])
	var entries []uint64
	err := item.Value(func(v []byte) error {
		var err error
		entries, err = decodeBlock(k, v)
		return err
	})
	return k, entries, err
}

// blockAt seeks it to the block of prefix that may hold entry index: the
// first at or after prefix || index. ok is false if there is none.
func blockAt(it *badger.Iterator, prefix []byte, index uint64) (k uint64, item *badger.Item, ok bool) {
	it.Seek(binary.BigEndian.AppendUint64(prefix[:len(prefix):len(prefix)], index))
	if !it.ValidForPrefix(prefix) || len(it.Item().Key()) != len(prefix)+8 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(it.Item().Key()[len(prefix):]), it.Item(), true
}

// blockHas reports whether the term of prefix has entry index.
func blockHas(it *badger.Iterator, prefix []byte, index uint64) (bool, error) {
	_, item, ok := blockAt(it, prefix, index)
	if !ok {
		return false, nil
	}
	_, entries, err := blockEntries(prefix, item)
	if err != nil {
		return false, err
	}
	_, found := slices.BinarySearch(entries, index)
	return found, nil
}

// postingBlocks collects, for one group transaction, the entries of each
// term, to be stored as one block per term.
type postingBlocks map[postingKey][]uint64

type postingKey struct {
	tenant uint32
	ref    [termRefSize]byte
}

// add notes that entry index carries the term; a group adds its entries
// in ascending index order.
func (p postingBlocks) add(tenant uint32, ref [termRefSize]byte, index uint64) {
	k := postingKey{tenant, ref}
	if e := p[k]; len(e) > 0 && e[len(e)-1] == index {
		return // the record names the term twice
	}
	p[k] = append(p[k], index)
}

// termRemover removes entries from their posting blocks in one write
// transaction: remove notes a removal, write stores each changed block
// once. The block of entry i is the block read last for the term if i is
// within its range; else the block whose key ends in i, if there is one
// (a block of one entry, or i is its K); else the first at or after
// prefix || i, found by a seek of find, an iterator over the committed
// database. Each block is read once in the write transaction. Entries
// removed already are skipped, so a retry does nothing more.
type termRemover struct {
	txn    *badger.Txn
	find   *badger.Iterator
	blocks map[string]*heldBlock
	ranges map[string][2]uint64 // term prefix -> the last block read: its smallest entry then, K
}

// heldBlock is a block as the transaction holds it.
type heldBlock struct {
	k       uint64
	entries []uint64
	changed bool
}

func newTermRemover(txn *badger.Txn, find *badger.Iterator) *termRemover {
	return &termRemover{txn: txn, find: find, blocks: map[string]*heldBlock{}, ranges: map[string][2]uint64{}}
}

func (r *termRemover) remove(tenant uint32, ref [termRefSize]byte, index uint64) error {
	prefix := termRefPrefix(tenant, ref)
	k := index
	if rg, ok := r.ranges[string(prefix)]; ok && rg[0] <= index && index <= rg[1] {
		k = rg[1]
	}
	b, err := r.block(prefix, k)
	if err != nil {
		return err
	}
	if b == nil && k == index {
		var ok bool
		if k, _, ok = blockAt(r.find, prefix, index); !ok {
			return nil
		}
		if b, err = r.block(prefix, k); err != nil || b == nil {
			return err
		}
	}
	if b == nil {
		return nil
	}
	if j, found := slices.BinarySearch(b.entries, index); found {
		b.entries = slices.Delete(b.entries, j, j+1)
		b.changed = true
	}
	return nil
}

// block returns block k of prefix as the transaction holds it, nil if
// there is no such block.
func (r *termRemover) block(prefix []byte, k uint64) (*heldBlock, error) {
	key := binary.BigEndian.AppendUint64(prefix[:len(prefix):len(prefix)], k)
	if b, ok := r.blocks[string(key)]; ok {
		return b, nil
	}
	item, err := r.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	_, entries, err := blockEntries(prefix, item)
	if err != nil {
		return nil, err
	}
	b := &heldBlock{k: k, entries: entries}
	r.blocks[string(key)] = b
	r.ranges[string(prefix)] = [2]uint64{entries[0], k}
	return b, nil
}

// write stores the blocks remove changed, deleting those left empty.
func (r *termRemover) write() error {
	for key, b := range r.blocks {
		var err error
		switch {
		case !b.changed:
		case len(b.entries) == 0:
			err = r.txn.Delete([]byte(key))
		default:
			err = r.txn.Set([]byte(key), encodeBlock(b.k, b.entries))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Postings returns up to limit indexes of entries carrying the term, in
// index order, starting at index from, and the index to continue from (0
// at the end). It reads at most one posting block beyond the last it
// returns from.
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
			_, entries, err := blockEntries(prefix, it.Item())
			if err != nil {
				return err
			}
			for _, idx := range entries {
				if idx < from {
					continue
				}
				if len(out) == limit {
					next = idx
					return nil
				}
				out = append(out, idx)
			}
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
	prefix := l.termPrefix(tid, t)
	found := false
	err = l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		found, err = blockHas(it, prefix, index)
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
