package ledger

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
)

// keyScope selects the data key of a payload. Keys are random, never
// derived, so that destroying one erases exactly the payloads of its scope:
// erasure destroys every key of a subject, expiry every key of a
// (class, day) that has passed.
type keyScope struct {
	tenant    uint32
	pseudonym [termMACSize]byte // the subject's index term MAC; all zero for no subject
	day       uint32            // days since 1970-01-01 UTC
	class     string            // retention class
}

type dataKey struct {
	id     [16]byte
	aead   cipher.AEAD
	sc     keyScope
	raw    []byte      // the key itself while pending (read by flush only)
	stored atomic.Bool // made durable by flush (or loaded from the store)
}

// pending reports whether the key has not been stored yet. A pending key
// cannot have been retired.
func (dk *dataKey) pending() bool { return !dk.stored.Load() }

// Bucket is an expiry bucket: the data keys of one tenant, day and
// retention class, which expire together.
type Bucket struct {
	Tenant uint32
	Day    uint32 // days since 1970-01-01 UTC
	Class  string
}

func (s keyScope) bucket() Bucket { return Bucket{Tenant: s.tenant, Day: s.day, Class: s.class} }

const wrapAD = "veritrace/dek/v1\x00"

// wrappedKeySize is nonce (24) + sealed 32-byte key (48).
const wrappedKeySize = chacha20poly1305.NonceSizeX + chacha20poly1305.KeySize + chacha20poly1305.Overhead

// maxCachedKeys bounds each of the key cache's maps; past it one entry, at
// random, is evicted. Eviction is harmless: the cache holds no safety
// property (retirement is checked by the writer in the log database).
const maxCachedKeys = 1 << 16

// keyStore keeps wrapped data keys in their own Badger database, apart from
// the log, so that they can be destroyed and backed up on their own terms.
// New keys are pending until flush makes them durable; the writer flushes
// before it commits entries sealed under them.
type keyStore struct {
	db        *badger.DB
	kek       cipher.AEAD
	pseudoKey []byte
	standIn   []byte    // StandInPseudonym's key; never stored
	macs      sync.Pool // of keyed HMAC-SHA256 states (termMAC)
	maxCached int       // cache bound; tests lower it
	gate      *gate
	// commitHook, set by tests, replaces the commit of key-database
	// transactions; beforeDrop runs before a DropPrefix takes dropMu (an
	// error stops the drop, as a kill would).
	commitHook func(txn *badger.Txn) error
	beforeDrop func() error
	beforeRead func() // runs before a key lookup reads the key database

	txnLimit txnCost      // budget of one key-database transaction
	flushMu  sync.Mutex   // one flush at a time
	dropMu   dropGate     // writes (R) wait while a DropPrefix (W) blocks the database's writes
	mu       sync.RWMutex // guards the maps and forgets; lookups of cached keys take it for reading
	scopes   map[keyScope]*dataKey
	ids      map[[16]byte]*dataKey
	pending  map[keyScope]*dataKey
	forgets  uint64 // counts forget calls: a lookup that raced one reads again
}

func newKeyStore(db *badger.DB, master []byte, g *gate) (*keyStore, error) {
	kek, err := chacha20poly1305.NewX(deriveKey(master, infoKEK))
	if err != nil {
		return nil, err
	}
	return &keyStore{
		db:        db,
		kek:       kek,
		pseudoKey: deriveKey(master, infoPseudonym),
		standIn:   deriveKey(master, infoStandIn),
		maxCached: maxCachedKeys,
		gate:      g,
		txnLimit:  txnLimitOf(db),
		scopes:    make(map[keyScope]*dataKey),
		ids:       make(map[[16]byte]*dataKey),
		pending:   make(map[keyScope]*dataKey),
	}, nil
}

// pseudonym returns the subject's pseudonym within a tenant: the MAC of
// its subject index term (SubjectField), so that a key scope leads to the
// subject's entries. No subject gives zeros.
func (ks *keyStore) pseudonym(tenant uint32, subject string) [termMACSize]byte {
	if subject == "" {
		return [termMACSize]byte{}
	}
	return ks.termMAC(tenant, SubjectField, []byte(subject))
}

// putBounded inserts into a cache map, first evicting one entry at random
// (Go's map iteration order) when the map is full.
func putBounded[K comparable](m map[K]*dataKey, max int, k K, dk *dataKey) {
	if _, ok := m[k]; !ok && len(m) >= max {
		for old := range m {
			delete(m, old)
			break
		}
	}
	m[k] = dk
}

func (ks *keyStore) cache(s keyScope, dk *dataKey) {
	putBounded(ks.ids, ks.maxCached, dk.id, dk)
	putBounded(ks.scopes, ks.maxCached, s, dk)
}

// forScope returns the data key of a scope, creating a pending one if the
// scope has none. The key may be retired by the time the writer commits
// what it seals; the writer then re-seals (sealForCommit). Appends call
// it for every record: a cached scope takes a read lock only, and the key
// database is read without holding mu, so that no append waits for
// another's lookup (which a DropPrefix holds up while it flushes the key
// store's memtable).
func (ks *keyStore) forScope(s keyScope) (*dataKey, error) {
	if dk := ks.cached(s); dk != nil {
		return dk, nil
	}
	for {
		ks.mu.Lock()
		if dk := ks.scopes[s]; dk != nil {
			ks.mu.Unlock()
			return dk, nil
		}
		if dk := ks.pending[s]; dk != nil {
			ks.mu.Unlock()
			return dk, nil
		}
		gen := ks.forgets
		ks.mu.Unlock()
		stored, err := ks.storedScopeKey(s)
		if err != nil {
			return nil, err
		}
		ks.mu.Lock()
		if ks.forgets != gen {
			ks.mu.Unlock()
			continue // keys were destroyed meanwhile: what was read may be one
		}
		dk := ks.scopes[s]
		if dk == nil {
			dk = ks.pending[s]
		}
		if dk == nil && stored != nil {
			ks.cache(s, stored)
			dk = stored
		}
		if dk == nil {
			dk, err = ks.newKeyLocked(s)
		}
		ks.mu.Unlock()
		return dk, err
	}
}

// cached returns a scope's cached or pending key, or nil.
func (ks *keyStore) cached(s keyScope) *dataKey {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	if dk := ks.scopes[s]; dk != nil {
		return dk
	}
	return ks.pending[s]
}

// forScopeNoWait is forScope for the writer: when the scope's key is not
// cached and a DropPrefix runs (a lookup would wait for it), it returns
// false and does nothing.
func (ks *keyStore) forScopeNoWait(s keyScope) (*dataKey, bool, error) {
	if dk := ks.cached(s); dk != nil {
		return dk, true, nil
	}
	if ks.dropMu.running() {
		return nil, false, nil
	}
	dk, err := ks.forScope(s)
	return dk, err == nil, err
}

// fresh makes a new pending key the scope's key, replacing a retired one.
func (ks *keyStore) fresh(s keyScope) (*dataKey, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if dk := ks.pending[s]; dk != nil {
		return dk, nil
	}
	delete(ks.scopes, s)
	return ks.newKeyLocked(s)
}

// evict forgets retired keys and buckets, so that appends look their
// scopes up again (and get new keys once the scopes are unset).
func (ks *keyStore) evict(r *retirement) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	gone := make(map[[16]byte]bool, len(r.keys))
	for _, id := range r.keys {
		gone[id] = true
	}
	buckets := make(map[Bucket]bool, len(r.buckets))
	for _, b := range r.buckets {
		buckets[b] = true
	}
	for s, dk := range ks.scopes {
		if gone[dk.id] || buckets[s.bucket()] {
			delete(ks.scopes, s)
		}
	}
}

// storedScopeKey reads a scope's current key from the key database: nil
// if the scope has none.
func (ks *keyStore) storedScopeKey(s keyScope) (*dataKey, error) {
	if ks.beforeRead != nil {
		ks.beforeRead()
	}
	var dk *dataKey
	err := ks.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyScopeKey(s))
		if err != nil {
			return err
		}
		var id [16]byte
		if err := item.Value(func(v []byte) error {
			if len(v) != 16 {
				return fmt.Errorf("key scope entry of %d bytes", len(v))
			}
			copy(id[:], v)
			return nil
		}); err != nil {
			return err
		}
		dk, err = ks.load(txn, id)
		return err
	})
	switch {
	case err == nil:
		return dk, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, nil
	}
	return nil, fmt.Errorf("look up data key: %w", err)
}

func (ks *keyStore) newKeyLocked(s keyScope) (*dataKey, error) {
	raw := make([]byte, chacha20poly1305.KeySize)
	rand.Read(raw)
	aead, err := chacha20poly1305.NewX(raw)
	if err != nil {
		return nil, err
	}
	dk := &dataKey{id: uuid.New(), aead: aead, raw: raw, sc: s}
	// The pending map only lets concurrent appends of a scope share its new
	// key; the requests sealed under a key carry it to the writer, which
	// stores it. A key evicted here (its requests failed or gave up, and
	// no append of its scope came since) is simply never stored.
	putBounded(ks.pending, ks.maxCached, s, dk)
	return dk, nil
}

// byID returns a data key by id: ErrKeyDestroyed when it is gone. Like
// forScope, it reads the key database without holding mu.
func (ks *keyStore) byID(id [16]byte) (*dataKey, error) {
	for {
		ks.mu.Lock()
		if dk := ks.ids[id]; dk != nil {
			ks.mu.Unlock()
			return dk, nil
		}
		for _, dk := range ks.pending {
			if dk.id == id {
				ks.mu.Unlock()
				return dk, nil
			}
		}
		gen := ks.forgets
		ks.mu.Unlock()
		if ks.beforeRead != nil {
			ks.beforeRead()
		}
		var dk *dataKey
		err := ks.db.View(func(txn *badger.Txn) error {
			var err error
			dk, err = ks.load(txn, id)
			return err
		})
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, ErrKeyDestroyed
		}
		if err != nil {
			return nil, err
		}
		ks.mu.Lock()
		if ks.forgets != gen {
			ks.mu.Unlock()
			continue // keys were destroyed meanwhile: this may be one
		}
		putBounded(ks.ids, ks.maxCached, id, dk)
		ks.mu.Unlock()
		return dk, nil
	}
}

// load reads a data key: its location, then its material. A key whose
// material is gone (destroyed) is badger.ErrKeyNotFound.
func (ks *keyStore) load(txn *badger.Txn, id [16]byte) (*dataKey, error) {
	ref, err := keyLocation(txn, id)
	if err != nil {
		return nil, err
	}
	item, err := txn.Get(keyMaterialKey(ref.scope(), id))
	if err != nil {
		return nil, err
	}
	wrapped, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	dk, err := ks.unwrap(id, wrapped)
	if err != nil {
		return nil, err
	}
	dk.sc = ref.scope()
	return dk, nil
}

func (ks *keyStore) unwrap(id [16]byte, wrapped []byte) (*dataKey, error) {
	if len(wrapped) != wrappedKeySize {
		return nil, fmt.Errorf("%w: wrapped data key of %d bytes", ErrDecrypt, len(wrapped))
	}
	raw, err := ks.kek.Open(nil, wrapped[:chacha20poly1305.NonceSizeX], wrapped[chacha20poly1305.NonceSizeX:], append([]byte(wrapAD), id[:]...))
	if err != nil {
		return nil, fmt.Errorf("%w: data key does not unwrap (wrong master key?)", ErrDecrypt)
	}
	aead, err := chacha20poly1305.NewX(raw)
	if err != nil {
		return nil, err
	}
	dk := &dataKey{id: id, aead: aead}
	dk.stored.Store(true)
	return dk, nil
}

func (ks *keyStore) wrap(dk *dataKey) []byte {
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(dk.raw)+chacha20poly1305.Overhead)
	rand.Read(nonce)
	return ks.kek.Seal(nonce, nonce, dk.raw, append([]byte(wrapAD), dk.id[:]...))
}

// flush makes the given keys durable, those of them still pending. Shred
// calls it before it re-seals under a fresh key. It waits while a
// DropPrefix blocks the key database's writes, and retries
// ErrBlockedWrites with a short backoff until quit is closed.
func (ks *keyStore) flush(quit <-chan struct{}, keys []*dataKey) error {
	return ks.unblocked(quit, func() error { return ks.store(keys) })
}

// unblocked runs a write of the key database with dropMu held for
// reading, so never while a DropPrefix blocks its writes, and retries
// ErrBlockedWrites (from a drop outside the gate) with a backoff until
// quit is closed.
func (ks *keyStore) unblocked(quit <-chan struct{}, write func() error) error {
	backoff := time.Millisecond
	for {
		ks.dropMu.RLock()
		err := write()
		ks.dropMu.RUnlock()
		if !errors.Is(err, badger.ErrBlockedWrites) {
			return err
		}
		select {
		case <-quit:
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// tryFlush is the writer's flush: it never waits for a DropPrefix. While
// one runs (or waits to run) it writes nothing and returns false; the
// writer then sets aside the requests that need a new key until the drop
// ends (dropMu.ended) and commits the others.
func (ks *keyStore) tryFlush(keys []*dataKey) (bool, error) {
	if !ks.dropMu.TryRLock() {
		return false, nil
	}
	err := ks.store(keys)
	ks.dropMu.RUnlock()
	if errors.Is(err, badger.ErrBlockedWrites) {
		return false, nil
	}
	return err == nil, err
}

// store writes the keys still pending among keys, with their location and
// scope records, in fsynced transactions that fit the key database's
// limits, then marks them stored. The caller holds dropMu for reading.
// Only what the caller needs is written: the keys of the entries it is
// about to commit.
func (ks *keyStore) store(keys []*dataKey) error {
	ks.flushMu.Lock()
	defer ks.flushMu.Unlock()
	var batch []*dataKey
	var cost txnCost
	seen := make(map[*dataKey]bool, len(keys))
	for _, dk := range keys {
		if !dk.pending() || seen[dk] {
			continue
		}
		seen[dk] = true
		var c txnCost
		c.dataKey(dk.sc)
		next := cost
		next.add(c)
		if len(batch) > 0 && !next.fits(ks.txnLimit) {
			if err := ks.storeBatch(batch); err != nil {
				return err
			}
			batch, next = nil, c
		}
		batch, cost = append(batch, dk), next
	}
	return ks.storeBatch(batch)
}

// storeBatch stores keys in one transaction. Badger refusing it as too big
// (nothing written: the estimate was low) splits it in halves.
func (ks *keyStore) storeBatch(batch []*dataKey) error {
	if len(batch) == 0 {
		return nil
	}
	err := ks.write("store data keys", func(txn *badger.Txn) error {
		for _, dk := range batch {
			mkey := keyMaterialKey(dk.sc, dk.id)
			if err := txn.Set(mkey, ks.wrap(dk)); err != nil {
				return err
			}
			if err := txn.Set(keyLocationKey(dk.id), mkey); err != nil {
				return err
			}
			if err := txn.Set(keyScopeKey(dk.sc), dk.id[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, badger.ErrTxnTooBig) && len(batch) > 1 {
		h := len(batch) / 2
		if err := ks.storeBatch(batch[:h]); err != nil {
			return err
		}
		return ks.storeBatch(batch[h:])
	}
	if err != nil {
		return fmt.Errorf("store data keys: %w", err)
	}
	ks.mu.Lock()
	for _, dk := range batch {
		if ks.pending[dk.sc] == dk {
			delete(ks.pending, dk.sc)
		}
		dk.raw = nil
		dk.stored.Store(true)
		ks.cache(dk.sc, dk)
	}
	ks.mu.Unlock()
	return nil
}

// dropGate holds the key database's writes back while a DropPrefix blocks
// them: writers take it for reading, a drop for writing. Unlike a bare
// RWMutex it tells when the drops under way have ended (ended), so that
// the writer can set aside what needs the key database and come back to
// it without polling.
type dropGate struct {
	mu    sync.RWMutex
	m     sync.Mutex
	drops int           // drops holding or waiting for mu
	done  chan struct{} // closed when drops returns to 0
}

func (d *dropGate) Lock() {
	d.m.Lock()
	if d.drops == 0 {
		d.done = make(chan struct{})
	}
	d.drops++
	d.m.Unlock()
	d.mu.Lock()
}

func (d *dropGate) Unlock() {
	d.mu.Unlock()
	d.m.Lock()
	if d.drops--; d.drops == 0 {
		close(d.done)
		d.done = nil
	}
	d.m.Unlock()
}

func (d *dropGate) RLock()         { d.mu.RLock() }
func (d *dropGate) RUnlock()       { d.mu.RUnlock() }
func (d *dropGate) TryRLock() bool { return d.mu.TryRLock() }

// running reports whether a drop holds or waits for the gate.
func (d *dropGate) running() bool {
	d.m.Lock()
	defer d.m.Unlock()
	return d.drops > 0
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// ended returns a channel closed once no drop holds or waits for the gate.
func (d *dropGate) ended() <-chan struct{} {
	d.m.Lock()
	defer d.m.Unlock()
	if d.done == nil {
		return closedChan
	}
	return d.done
}

// update runs a write transaction on the key database (write), never
// while a DropPrefix blocks its writes (unblocked).
func (ks *keyStore) update(quit <-chan struct{}, what string, fn func(txn *badger.Txn) error) error {
	return ks.unblocked(quit, func() error { return ks.write(what, fn) })
}

// write runs fn in one write transaction of the key database and commits
// it, behind the failure gate. The caller holds dropMu for reading.
func (ks *keyStore) write(what string, fn func(txn *badger.Txn) error) error {
	if err := ks.gate.failure(); err != nil {
		return err
	}
	txn := ks.db.NewTransaction(true)
	defer txn.Discard()
	if err := fn(txn); err != nil {
		return err
	}
	var err error
	if ks.commitHook != nil {
		err = ks.commitHook(txn)
	} else {
		err = txn.Commit()
	}
	return ks.gate.commitErr(what, err)
}

// dropPrefix drops key-database prefixes from memory and files with one
// DropPrefix call, holding writes back meanwhile.
func (ks *keyStore) dropPrefix(prefixes ...[]byte) error {
	if len(prefixes) == 0 {
		return nil
	}
	if ks.beforeDrop != nil {
		if err := ks.beforeDrop(); err != nil {
			return err
		}
	}
	ks.dropMu.Lock()
	defer ks.dropMu.Unlock()
	if err := ks.gate.failure(); err != nil {
		return err
	}
	return ks.db.DropPrefix(prefixes...)
}

// unscope removes a retired key from its scope, in the store and the
// cache, so that appends from now on get a new key for the scope.
func (ks *keyStore) unscope(quit <-chan struct{}, k *KeyRef) error {
	s := k.scope()
	ks.mu.Lock()
	if d := ks.scopes[s]; d != nil && d.id == k.ID {
		delete(ks.scopes, s)
	}
	ks.mu.Unlock()
	return ks.update(quit, "unset a retired key's scope", func(txn *badger.Txn) error {
		item, err := txn.Get(keyScopeKey(s))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if string(v) == string(k.ID[:]) {
				return txn.Delete(keyScopeKey(s))
			}
			return nil
		})
	})
}

// destroy destroys data keys: the exact keys given and every key of the
// buckets given (found by their material). First their index records
// (location, and scope where it still names them) are deleted, in bounded
// transactions, and they are evicted from the cache, so that no read finds
// them any more; then their material is dropped from memory and from the
// key store's files with one DropPrefix call (one memtable flush and one
// pass over the tables, while the store's writes wait). Material is
// dropped, never deleted: DropPrefix skips prefixes that hold no live key,
// so deleted material would stay in the files until some compaction.
//
// Every step is idempotent and needs nothing but the refs of the exact
// keys and the buckets (an erasure plan keeps both): after a crash between
// the two steps, destroying again finds the buckets' keys by their
// material, deletes their (gone) index records again and drops the
// material; after the drop, nothing is left to find. It returns the keys
// destroyed.
// The prefixes in also (pseudonym keys: pseudonyms.go) are dropped in the
// same call.
func (ks *keyStore) destroy(quit <-chan struct{}, exact []*KeyRef, buckets []Bucket, also ...[]byte) ([]*KeyRef, error) {
	refs := append([]*KeyRef(nil), exact...)
	prefixes := slices.Clone(also)
	for _, k := range exact {
		prefixes = append(prefixes, keyMaterialKey(k.scope(), k.ID))
	}
	err := ks.db.View(func(txn *badger.Txn) error {
		for _, b := range buckets {
			p := bucketPrefix(nsKeyMaterial, b)
			prefixes = append(prefixes, p)
			seen := map[[16]byte]bool{}
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
			for it.Rewind(); it.Valid(); it.Next() {
				k, err := parseKeyMaterialKey(it.Item().KeyCopy(nil))
				if err != nil {
					it.Close()
					return err
				}
				refs = append(refs, k)
				seen[k.ID] = true
			}
			it.Close()
			// The bucket's scope records name its current keys, also once
			// their material is gone (a crash of an earlier build between
			// its drop and its index cleanup).
			sp := bucketPrefix(nsKeyScope, b)
			it = txn.NewIterator(badger.IteratorOptions{Prefix: sp, PrefetchValues: true})
			for it.Rewind(); it.Valid(); it.Next() {
				key := it.Item().Key()
				if len(key) != len(sp)+termMACSize {
					it.Close()
					return fmt.Errorf("malformed key scope record %x", key)
				}
				k := &KeyRef{Tenant: b.Tenant, Day: b.Day, Class: b.Class}
				copy(k.Pseudonym[:], key[len(sp):])
				if err := it.Item().Value(func(v []byte) error {
					if len(v) != 16 {
						return fmt.Errorf("key scope entry of %d bytes", len(v))
					}
					copy(k.ID[:], v)
					return nil
				}); err != nil {
					it.Close()
					return err
				}
				if !seen[k.ID] {
					refs = append(refs, k)
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for rest := refs; len(rest) > 0; {
		chunk := rest[:min(len(rest), 1000)]
		rest = rest[len(chunk):]
		err := ks.update(quit, "delete index records of destroyed keys", func(txn *badger.Txn) error {
			for _, k := range chunk {
				if err := txn.Delete(keyLocationKey(k.ID)); err != nil {
					return err
				}
				item, err := txn.Get(keyScopeKey(k.scope()))
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if err := item.Value(func(v []byte) error {
					if string(v) == string(k.ID[:]) {
						return txn.Delete(keyScopeKey(k.scope()))
					}
					return nil
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("delete index records of destroyed keys: %w", err)
		}
	}
	// A read from now on finds no location: the keys read as destroyed
	// and are not cached again (byID reads and caches under mu).
	ks.forget(refs)
	if err := ks.dropPrefix(prefixes...); err != nil {
		return nil, fmt.Errorf("destroy data keys: %w", err)
	}
	ks.forget(refs)
	return refs, nil
}

// forget evicts keys from the cache, and makes lookups that read the key
// database meanwhile (and may have read one of them) read again.
func (ks *keyStore) forget(refs []*KeyRef) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.forgets++
	for _, k := range refs {
		delete(ks.ids, k.ID)
		if d := ks.scopes[k.scope()]; d != nil && d.id == k.ID {
			delete(ks.scopes, k.scope())
		}
	}
}
