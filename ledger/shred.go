package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// Shredding: payloads are erased by destroying the data keys they were
// sealed under (crypto-shredding), deleting their ciphertext and their
// index terms. Entries under a destroyed key that must stay (held, or not
// selected) are first re-sealed under a fresh key of the same scope; their
// headers and commitments do not change, so no hash or proof does.

// KeyRef identifies a data key and its scope.
type KeyRef struct {
	ID        [16]byte
	Tenant    uint32
	Pseudonym [termMACSize]byte // zero: no subject
	Day       uint32            // days since 1970-01-01 UTC
	Class     string
}

func (k *KeyRef) scope() keyScope {
	return keyScope{tenant: k.Tenant, pseudonym: k.Pseudonym, day: k.Day, class: k.Class}
}

// Bucket returns the key's expiry bucket.
func (k *KeyRef) Bucket() Bucket { return k.scope().bucket() }

// MarshalText encodes the ref as the hex of its key material's key in the
// key database (docs/FORMAT.md §6), for plans that must find the key's
// material after its index records are gone.
func (k *KeyRef) MarshalText() ([]byte, error) {
	return []byte(hex.EncodeToString(keyMaterialKey(k.scope(), k.ID))), nil
}

// UnmarshalText decodes MarshalText's form.
func (k *KeyRef) UnmarshalText(b []byte) error {
	raw, err := hex.DecodeString(string(b))
	if err != nil {
		return fmt.Errorf("key ref: %w", err)
	}
	r, err := parseKeyMaterialKey(raw)
	if err != nil {
		return err
	}
	*k = *r
	return nil
}

// KeyLocation returns a data key's ref from its location record, whether
// or not its material is still there; ErrNotFound once destroying it
// removed the record (or if there never was one).
func (l *Ledger) KeyLocation(id [16]byte) (*KeyRef, error) {
	var k *KeyRef
	err := l.keysDB.View(func(txn *badger.Txn) error {
		var err error
		k, err = keyLocation(txn, id)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("data key %x: %w", id, ErrNotFound)
		}
		return err
	})
	return k, err
}

// ExpiryBucket names a tenant's expiry bucket of a day and class.
func (l *Ledger) ExpiryBucket(ctx context.Context, tenant string, day uint32, class string) (Bucket, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return Bucket{}, err
	}
	if err := format.ValidateRetentionClass(class); err != nil {
		return Bucket{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return Bucket{Tenant: tid, Day: day, Class: class}, nil
}

// EntryIndexes returns the indexes of a tenant's entries carrying the term,
// below size (0: all).
func (l *Ledger) EntryIndexes(ctx context.Context, tenant string, t Term) ([]uint64, error) {
	var out []uint64
	for from := uint64(0); ; {
		ps, next, err := l.Postings(ctx, tenant, t, from, 4096)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
		if next == 0 {
			return out, nil
		}
		from = next
	}
}

// KeysOf returns the data keys the given entries are sealed under, and the
// entries that still have a payload (live), in the order given. Entries
// already erased are left out of both.
func (l *Ledger) KeysOf(ctx context.Context, tenant string, idxs []uint64) (map[[16]byte]*KeyRef, []uint64, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, nil, err
	}
	out := map[[16]byte]*KeyRef{}
	var live []uint64
	err = l.db.View(func(txn *badger.Txn) error {
		for _, i := range idxs {
			id, ok, err := envelopeKeyOf(txn, tid, i)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if out[id] == nil {
				k, err := l.keyRef(id)
				if errors.Is(err, ErrKeyDestroyed) {
					continue
				}
				if err != nil {
					return err
				}
				out[id] = k
			}
			live = append(live, i)
		}
		return nil
	})
	return out, live, err
}

// KeyByID returns a live data key's scope, ErrKeyDestroyed if it is gone.
func (l *Ledger) KeyByID(id [16]byte) (*KeyRef, error) { return l.keyRef(id) }

func envelopeKeyOf(txn getter, tid uint32, idx uint64) ([16]byte, bool, error) {
	var id [16]byte
	item, err := txn.Get(payloadKey(tid, idx))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return id, false, nil
	}
	if err != nil {
		return id, false, err
	}
	err = item.Value(func(v []byte) error {
		e, err := parseEnvelope(v)
		if err != nil {
			return err
		}
		id = e.keyID()
		return nil
	})
	return id, err == nil, err
}

// keyRef reads a data key's scope from the key store: ErrKeyDestroyed
// when its location or its material is gone.
func (l *Ledger) keyRef(id [16]byte) (*KeyRef, error) {
	var k *KeyRef
	err := l.keysDB.View(func(txn *badger.Txn) error {
		var err error
		if k, err = keyLocation(txn, id); errors.Is(err, badger.ErrKeyNotFound) {
			return ErrKeyDestroyed
		} else if err != nil {
			return err
		}
		if _, err := txn.Get(keyMaterialKey(k.scope(), k.ID)); errors.Is(err, badger.ErrKeyNotFound) {
			return ErrKeyDestroyed
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// keyLocation reads a data key's location record: badger.ErrKeyNotFound
// if there is none.
func keyLocation(txn *badger.Txn, id [16]byte) (*KeyRef, error) {
	item, err := txn.Get(keyLocationKey(id))
	if err != nil {
		return nil, err
	}
	mkey, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	k, err := parseKeyMaterialKey(mkey)
	if err == nil && k.ID != id {
		err = fmt.Errorf("location of data key %x names key %x", id, k.ID)
	}
	return k, err
}

// Keys returns every live data key of a tenant.
func (l *Ledger) Keys(ctx context.Context, tenant string) ([]*KeyRef, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	var out []*KeyRef
	err = l.keysDB.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: tenantKey(nsKeyMaterial, tid)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k, err := parseKeyMaterialKey(it.Item().KeyCopy(nil))
			if err != nil {
				return err
			}
			out = append(out, k)
		}
		return nil
	})
	return out, err
}

// Buckets returns the expiry buckets of a tenant that hold live data keys,
// in (day, class) order. It reads one key per bucket, not every key.
func (l *Ledger) Buckets(ctx context.Context, tenant string) ([]Bucket, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	var out []Bucket
	err = l.keysDB.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: tenantKey(nsKeyMaterial, tid)})
		defer it.Close()
		for it.Rewind(); it.Valid(); {
			k, err := parseKeyMaterialKey(it.Item().KeyCopy(nil))
			if err != nil {
				return err
			}
			b := k.Bucket()
			out = append(out, b)
			// Skip the rest of the bucket: past every pseudonym and key id.
			it.Seek(append(bucketPrefix(nsKeyMaterial, b), bytes.Repeat([]byte{0xff}, termMACSize+16+1)...))
		}
		return nil
	})
	return out, err
}

// EntriesUnder returns the indexes of the entries sealed under a key, in
// order: found among the subject's entries for a subject key, among the
// entries appended on the key's day for a key without subject.
func (l *Ledger) EntriesUnder(ctx context.Context, tenant string, k *KeyRef) ([]uint64, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	es, err := l.entriesUnder(ctx, tid, tenant, []*KeyRef{k}, nil)
	return indexesOf(es), err
}

func indexesOf(es []KeyedEntry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Index
	}
	return out
}

// entriesUnder returns, in index order, the entries sealed under any of
// the keys or under any live key of the buckets, with the key each is
// sealed under: complete once they are retired. The keys of the buckets
// are read from the key store with one prefix scan per bucket (no lookup
// per key). The candidates are a subject key's entries (its subject term)
// and, for a key without subject and a bucket, the entries appended on
// the key's day: the writer commits every entry under a key of its
// appended_at day (sealForCommit), and appended_at never decreases, so
// that index range holds them all. Entries an earlier build appended
// (below daySealed) were sealed under a key of the clock's day at Append,
// which could differ from their appended_at day: for those a day either
// side is read too. Each candidate's envelope names its key, and the
// refs of its terms of the given fields, collected in the same read;
// candidates are read in transactions of 1024 entries (viewChunks),
// checking ctx between them.
func (l *Ledger) entriesUnder(ctx context.Context, tid uint32, tenant string, keys []*KeyRef, buckets []Bucket, fields ...uint8) ([]KeyedEntry, error) {
	want := make(map[[16]byte]*KeyRef, len(keys))
	type span struct{ lo, hi uint64 }
	var ranges []span
	days := map[uint32]bool{}
	var cands []uint64
	for _, k := range keys {
		want[k.ID] = k
		if k.Pseudonym != ([termMACSize]byte{}) {
			// A subject's key, or a trace's (its pseudonym is the MAC of
			// the subject's or of the trace's term: closure.go).
			for _, f := range []uint8{SubjectField, TraceField} {
				ps, err := l.postings(tid, termPrefixKey(tid, f, k.Pseudonym))
				if err != nil {
					return nil, err
				}
				cands = append(cands, ps...)
			}
		} else {
			days[k.Day] = true
		}
	}
	if len(buckets) > 0 {
		err := l.keysDB.View(func(txn *badger.Txn) error {
			for _, b := range buckets {
				days[b.Day] = true
				it := txn.NewIterator(badger.IteratorOptions{Prefix: bucketPrefix(nsKeyMaterial, b)})
				for it.Rewind(); it.Valid(); it.Next() {
					k, err := parseKeyMaterialKey(it.Item().KeyCopy(nil))
					if err != nil {
						it.Close()
						return err
					}
					if want[k.ID] == nil {
						want[k.ID] = k
					}
				}
				it.Close()
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	l.stateMu.RLock()
	legacy := l.daySealed[tid]
	l.stateMu.RUnlock()
	for d := range days {
		lo, err1 := l.indexAtDay(ctx, tenant, int64(d))
		hi, err2 := l.indexAtDay(ctx, tenant, int64(d)+1)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		ranges = append(ranges, span{lo, hi})
		if legacy > 0 {
			lo, err1 := l.indexAtDay(ctx, tenant, int64(d)-1)
			hi, err2 := l.indexAtDay(ctx, tenant, int64(d)+2)
			if err := errors.Join(err1, err2); err != nil {
				return nil, err
			}
			ranges = append(ranges, span{lo, min(hi, legacy)})
		}
	}
	for _, r := range ranges {
		for i := r.lo; i < r.hi; i++ {
			cands = append(cands, i)
		}
	}
	slices.Sort(cands)
	cands = slices.Compact(cands)
	var out []KeyedEntry
	err := l.viewChunks(ctx, cands, func(txn *badger.Txn, i uint64) error {
		item, err := txn.Get(payloadKey(tid, i))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			ev, err := parseEnvelope(v)
			if err != nil {
				return err
			}
			k := want[ev.keyID()]
			if k == nil {
				return nil
			}
			out = append(out, KeyedEntry{Index: i, Key: k, Terms: ev.refsOf(nil, fields)})
			return nil
		})
	})
	return out, err
}

// KeyedEntry is an entry and the data key it is sealed under.
type KeyedEntry struct {
	Index uint64
	Key   *KeyRef
	// Terms are the refs of the requested fields (RetireBuckets) that the
	// entry's envelope lists, in its order.
	Terms []TermRef
}

// RetireBuckets retires whole expiry buckets (through the writer, like
// Shred's first step) and returns every entry sealed under their keys, in
// index order, with its key and the refs of its terms of the given fields
// (read from its envelope in the same pass): complete, since no entry is
// committed under a retired bucket's keys afterwards. Sweeps use it to
// plan, and the terms to find the subjects and sessions that expire.
func (l *Ledger) RetireBuckets(ctx context.Context, tenant string, buckets []Bucket, fields ...uint8) ([]KeyedEntry, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	if err := l.retire(ctx, &retirement{buckets: slices.Clone(buckets)}); err != nil {
		return nil, fmt.Errorf("retire expiry buckets: %w", err)
	}
	return l.entriesUnder(ctx, tid, tenant, nil, buckets, fields...)
}

// postings returns every index of a term prefix.
func (l *Ledger) postings(tid uint32, prefix []byte) ([]uint64, error) {
	var out []uint64
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			_, entries, err := blockEntries(prefix, it.Item())
			if err != nil {
				return err
			}
			out = append(out, entries...)
		}
		return nil
	})
	return out, err
}

func dayStart(day int64) time.Time { return time.Unix(day*86400, 0).UTC() }

func (l *Ledger) indexAtDay(ctx context.Context, tenant string, day int64) (uint64, error) {
	return l.IndexAt(ctx, tenant, dayStart(day))
}

// Erased is an entry whose payload Shred removed.
type Erased struct {
	Index    uint64
	LeafHash tlog.Hash
}

// Shred destroys data keys: the keys given and every key of the buckets
// given. Every entry sealed under them whose index is in erase loses its
// payload and index terms; every other entry under them is first re-sealed
// under a fresh key of its scope. Shred is idempotent: after a crash,
// calling it again with the same arguments finishes the work, keys already
// destroyed included (their index records are removed if a crash left
// them). It returns the entries erased by this call.
//
// The pseudonym keys named (those that exist and still have the stamp
// named: PseudonymRef) are destroyed with the data keys, in the same
// DropPrefix call.
//
// The steps, each idempotent (a later task drives them one by one):
//  1. retire the keys and buckets through the writer (durable marks checked
//     in every commit), so no entry is committed under them afterwards;
//  2. list the entries under them, complete because of 1;
//  3. re-seal those to keep, drop the payloads and index terms of the rest;
//  4. destroy the keys: their index records, then one DropPrefix over
//     their material.
func (l *Ledger) Shred(ctx context.Context, tenant string, keys []*KeyRef, buckets []Bucket, erase map[uint64]bool, pseudonyms ...PseudonymRef) ([]Erased, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	l.shredMu.Lock()
	defer l.shredMu.Unlock()
	if err := l.failure(); err != nil {
		return nil, err
	}
	ids := make([][16]byte, len(keys))
	for i, k := range keys {
		if k.Tenant != tid {
			return nil, fmt.Errorf("%w: key of another tenant", ErrInvalid)
		}
		ids[i] = k.ID
	}
	for _, b := range buckets {
		if b.Tenant != tid {
			return nil, fmt.Errorf("%w: bucket of another tenant", ErrInvalid)
		}
	}
	if err := l.retire(ctx, &retirement{keys: ids, buckets: slices.Clone(buckets)}); err != nil {
		return nil, fmt.Errorf("retire data keys: %w", err)
	}
	for _, k := range keys {
		if err := l.keys.unscope(l.quit, k); err != nil {
			return nil, err
		}
	}
	under, err := l.entriesUnder(ctx, tid, tenant, keys, buckets)
	if err != nil {
		return nil, err
	}
	var keep, drop []uint64
	for _, i := range indexesOf(under) {
		if erase[i] {
			drop = append(drop, i)
		} else {
			keep = append(keep, i)
		}
	}
	if err := l.reseal(ctx, tid, keep); err != nil {
		return nil, fmt.Errorf("re-seal entries: %w", err)
	}
	erased, err := l.dropPayloads(tid, drop)
	if err != nil {
		return nil, err
	}
	if err := l.failure(); err != nil {
		return nil, err
	}
	also, err := l.keys.doomedPseudonyms(tid, pseudonyms)
	if err != nil {
		return nil, err
	}
	if _, err := l.keys.destroy(l.quit, keys, buckets, also...); err != nil {
		return nil, err
	}
	sort.Slice(erased, func(i, j int) bool { return erased[i].Index < erased[j].Index })
	return erased, nil
}

// retireChunk is the most keys one retirement request marks.
const retireChunk = 10000

// retire marks data keys and expiry buckets retired in the log database,
// through the writer, so that the marks are ordered with every commit: an
// entry committed after them is never sealed under a retired key (the
// writer re-seals it under a live one). It returns once the marks are
// durable. Retiring again is harmless.
func (l *Ledger) retire(ctx context.Context, r *retirement) error {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	for len(r.keys) > 0 || len(r.buckets) > 0 {
		part := &retirement{}
		n := min(retireChunk, len(r.keys))
		part.keys, r.keys = r.keys[:n], r.keys[n:]
		m := min(retireChunk-n, len(r.buckets))
		part.buckets, r.buckets = r.buckets[:m], r.buckets[m:]
		if err := l.failure(); err != nil {
			return err
		}
		req := &appendReq{retire: part, cost: part.cost(), done: make(chan appendResult, 1)}
		if _, err := l.submit(ctx, req); err != nil {
			return err
		}
	}
	return nil
}

// reseal seals the payloads of idxs under a fresh key of the scope each
// is sealed under now (same scope: same subject, day and class).
func (l *Ledger) reseal(ctx context.Context, tid uint32, idxs []uint64) error {
	if len(idxs) == 0 {
		return nil
	}
	fresh := map[keyScope]*dataKey{}
	return l.inChunks("re-seal entries", idxs, func(txn *badger.Txn, i uint64) error {
		e, err := l.readEntry(txn, tid, i)
		if err != nil || e.Erased {
			return err
		}
		id, _, err := envelopeKeyOf(txn, tid, i)
		if err != nil {
			return err
		}
		old, err := l.keyRef(id)
		if err != nil {
			return err
		}
		s := old.scope()
		dk := fresh[s]
		if dk == nil {
			if dk, err = l.keys.fresh(s); err != nil {
				return err
			}
			if err := l.keys.flush(l.quit, []*dataKey{dk}); err != nil {
				return err
			}
			fresh[s] = dk
		}
		terms, _, err := envelopeTerms(txn, tid, i)
		if err != nil {
			return err
		}
		return txn.Set(payloadKey(tid, i), seal(dk, tid, e.Header.Commitment, e.Salt, e.Payload, terms))
	})
}

// dropPayloads deletes the payloads of idxs and removes them from their
// index terms' posting blocks, in write transactions of up to 1,024
// entries: few synced commits, each holding the log's writes back
// briefly. A transaction Badger finds too big is discarded whole and its
// entries done again in halves. Callers hold shredMu: a block may hold
// other erasures' entries.
func (l *Ledger) dropPayloads(tid uint32, idxs []uint64) ([]Erased, error) {
	var out []Erased
	n := 1024
	for len(idxs) > 0 {
		if err := l.failure(); err != nil {
			return out, err
		}
		n = min(n, len(idxs))
		erased, err := l.dropChunk(tid, idxs[:n])
		if errors.Is(err, badger.ErrTxnTooBig) && n > 1 {
			n /= 2
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, erased...)
		idxs = idxs[n:]
	}
	return out, nil
}

// dropChunk is one transaction of dropPayloads. Each posting block it
// changes is read and written once (termRemover), located in a read
// transaction's snapshot (a write transaction's own iterators would sort
// its pending writes at every seek). Its commit is classified like every
// other (Ledger.commit); before it, nothing is written.
func (l *Ledger) dropChunk(tid uint32, idxs []uint64) ([]Erased, error) {
	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	snap := l.db.NewTransaction(false)
	defer snap.Discard()
	find := snap.NewIterator(badger.IteratorOptions{})
	defer find.Close()
	terms := newTermRemover(txn, find)
	var out []Erased
	for _, i := range idxs {
		refs, ok, err := envelopeTerms(txn, tid, i)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // erased already
		}
		for _, t := range refs {
			if err := terms.remove(tid, t, i); err != nil {
				return nil, err
			}
		}
		if err := txn.Delete(payloadKey(tid, i)); err != nil {
			return nil, err
		}
		hs, err := hashReader(txn, tid).ReadHashes([]int64{tlog.StoredHashIndex(0, int64(i))})
		if err != nil {
			return nil, err
		}
		out = append(out, Erased{Index: i, LeafHash: hs[0]})
	}
	if err := terms.write(); err != nil {
		return nil, err
	}
	if err := l.commit("delete payloads", txn); err != nil {
		return nil, err
	}
	return out, nil
}

// inChunks calls fn for each index, in write transactions of up to 1024
// indexes: few synced commits, each holding the log's writes back
// briefly. Each transaction is behind the failure gate and its commit is
// classified like every other (Ledger.commit): one whose outcome is
// unknown fails the ledger. fn's writes must be idempotent: when Badger
// finds a transaction too big, it is committed as far as it got, and the
// index fn was at is done again, whole, in the next one.
func (l *Ledger) inChunks(what string, idxs []uint64, fn func(txn *badger.Txn, i uint64) error) error {
	const chunk = 1024
	for len(idxs) > 0 {
		if err := l.failure(); err != nil {
			return err
		}
		txn := l.db.NewTransaction(true)
		n := 0
		var err error
		for ; n < len(idxs) && n < chunk; n++ {
			if err = fn(txn, idxs[n]); err != nil {
				break
			}
		}
		if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
			err = nil
		}
		if err == nil {
			err = l.commit(what, txn)
		}
		txn.Discard()
		if err != nil {
			return err
		}
		idxs = idxs[n:]
	}
	return nil
}

// envelopeTerms returns the index terms an entry's envelope lists, and
// false if the entry has no payload.
func envelopeTerms(txn *badger.Txn, tid uint32, i uint64) ([][termRefSize]byte, bool, error) {
	item, err := txn.Get(payloadKey(tid, i))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var terms [][termRefSize]byte
	err = item.Value(func(v []byte) error {
		ev, err := parseEnvelope(v)
		if err == nil {
			terms = ev.terms()
		}
		return err
	})
	return terms, err == nil, err
}

// MarkErased records, for GetEntry, that a tombstone at index tombstone
// names the entries idxs.
func (l *Ledger) MarkErased(ctx context.Context, tenant string, idxs []uint64, tombstone uint64) error {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(nil, tombstone)
	return l.inChunks("mark erased entries", idxs, func(txn *badger.Txn, i uint64) error {
		return txn.Set(tenantIndexKey(nsErasedBy, tid, i), v)
	})
}

// RequestValueLogGC asks the ledger's background goroutine to rewrite the
// value-log files of the log database that are at least half garbage, so
// that the space of erased and expired payloads is reclaimed. It returns at
// once; requests made while one runs are merged.
func (l *Ledger) RequestValueLogGC() {
	select {
	case l.gcReq <- struct{}{}:
	default:
	}
}

// valueLogGC serves RequestValueLogGC until the ledger closes
// (runValueLogGC).
func (l *Ledger) valueLogGC() {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		case <-l.gcReq:
		}
		n, err := l.runValueLogGC()
		if n > 0 {
			l.log.Info("value log GC", "files_rewritten", n)
		}
		if err != nil && !errors.Is(err, ErrFailed) {
			l.log.Error("value log GC", "err", err)
		}
	}
}

// runValueLogGC rewrites the log database's value-log files that are at
// least half garbage (erased and expired payloads), one file at a time,
// and after each pauses twice as long as the rewrite took, so that
// reclaiming the space of a large sweep takes at most a third of the time
// of the write path it shares with appends. It stops between files when
// the ledger closes. A rewrite writes to the log database, so it is behind
// the failure gate, and a rewrite that fails (other than finding nothing
// to rewrite) fails the ledger. It returns the number of files rewritten.
func (l *Ledger) runValueLogGC() (int, error) {
	n := 0
	for n < 1000 {
		if err := l.failure(); err != nil {
			return n, err
		}
		t0 := time.Now()
		err := l.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
			n++
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		default:
			return n, l.fail(fmt.Errorf("value log GC: %w", err))
		}
		select {
		case <-l.stop:
			return n, nil
		case <-time.After(2 * time.Since(t0)):
		}
	}
	return n, nil
}
