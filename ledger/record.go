package ledger

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// An entry record (nsEntry) holds an entry's canonical header followed by
// the tree hashes the entry completes: appending entry i completes one
// subtree per trailing one bit of i (levels 1, 2, ...), whose hashes
// (tlog's stored hashes at those levels) follow the header, 32 bytes each,
// lowest level first. The entry's own leaf hash, SHA-256(0x00 || header),
// is not stored: it is computed from the header. So a whole entry's hashed
// state is one key, where a key per tree hash would cost Badger a
// write-ahead-log record and a skiplist node each.

// completedLevels is how many tree hashes above its leaf entry index
// completes: the trailing one bits of index.
func completedLevels(index uint64) int { return bits.TrailingZeros64(^index) }

// entryRecord starts the stored value of entry h.Index: its header, in a
// buffer with room for the tree hashes its append completes (addHashes),
// so that the record is one allocation.
func entryRecord(h *format.Header) []byte {
	n := format.HeaderSize(len(h.Tenant), len(h.RetentionClass)) + tlog.HashSize*completedLevels(h.Index)
	return h.AppendMarshal(make([]byte, 0, n))
}

// addHashes appends to an entry record the stored hashes the append
// produced above the leaf (hashes[0] is the leaf's and is left out).
func addHashes(record []byte, hashes []tlog.Hash) []byte {
	for _, h := range hashes[1:] {
		record = append(record, h[:]...)
	}
	return record
}

// splitEntryRecord splits the record of entry index into its header and
// its completed tree hashes (levels 1 up, 32 bytes each).
func splitEntryRecord(index uint64, v []byte) (header, hashes []byte, err error) {
	n := tlog.HashSize * completedLevels(index)
	if len(v) < n {
		return nil, nil, fmt.Errorf("entry record %d of %d bytes is too short for its %d tree hashes", index, len(v), n/tlog.HashSize)
	}
	return v[:len(v)-n], v[len(v)-n:], nil
}

// readRecord reads entry index's header and tree hashes, copied out of the
// transaction. badger.ErrKeyNotFound when there is no such entry.
func readRecord(txn getter, tenant uint32, index uint64) (header, hashes []byte, err error) {
	item, err := txn.Get(entryKey(tenant, index))
	if err != nil {
		return nil, nil, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, nil, err
	}
	return splitEntryRecord(index, v)
}

// hashReader reads tree hashes of a tenant inside a read transaction. The
// stored hash at (level, n) is in the record of entry (n+1)·2^level - 1,
// the one whose append completed it; a leaf hash (level 0) is computed
// from its entry's header.
func hashReader(txn getter, tenant uint32) tlog.HashReaderFunc {
	return func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		type rec struct{ header, hashes []byte }
		recs := make(map[uint64]rec, len(indexes))
		for i, x := range indexes {
			if x < 0 {
				return nil, fmt.Errorf("tree hash %d: negative index", x)
			}
			level, n := tlog.SplitStoredHashIndex(x)
			if level >= 64 || uint64(n+1) > (^uint64(0))>>level {
				return nil, fmt.Errorf("tree hash %d: out of range", x)
			}
			e := uint64(n+1)<<level - 1
			r, ok := recs[e]
			if !ok {
				h, hs, err := readRecord(txn, tenant, e)
				if errors.Is(err, badger.ErrKeyNotFound) {
					return nil, fmt.Errorf("read tree hash %d: entry %d: %w", x, e, err)
				}
				if err != nil {
					return nil, fmt.Errorf("read tree hash %d: %w", x, err)
				}
				r = rec{h, hs}
				recs[e] = r
			}
			if level == 0 {
				out[i] = format.LeafHash(r.header)
				continue
			}
			copy(out[i][:], r.hashes[(level-1)*tlog.HashSize:])
		}
		return out, nil
	}
}
