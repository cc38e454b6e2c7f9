package ledger

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
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
	macs      sync.Pool // of keyed HMAC-SHA256 states (termMAC)
	maxCached int       // cache bound; tests lower it

	flushMu sync.Mutex   // one flush at a time
	dropMu  sync.RWMutex // writes (R) wait while a DropPrefix (W) blocks the database's writes
	mu      sync.RWMutex
	scopes  map[keyScope]*dataKey
	ids     map[[16]byte]*dataKey
	pending map[keyScope]*dataKey
}

func newKeyStore(db *badger.DB, master []byte) (*keyStore, error) {
	kek, err := chacha20poly1305.NewX(deriveKey(master, infoKEK))
	if err != nil {
		return nil, err
	}
	return &keyStore{
		db:        db,
		kek:       kek,
		pseudoKey: deriveKey(master, infoPseudonym),
		maxCached: maxCachedKeys,
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
// what it seals; the writer then re-seals (resealRetired).
// Appends call it for every record: cached scopes take a read lock only,
// and the key database is read without holding the lock.
func (ks *keyStore) forScope(s keyScope) (*dataKey, error) {
	ks.mu.RLock()
	dk := ks.scopes[s]
	if dk == nil {
		dk = ks.pending[s]
	}
	ks.mu.RUnlock()
	if dk != nil {
		return dk, nil
	}
	stored, err := ks.storedScopeKey(s)
	if err != nil {
		return nil, err
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if dk := ks.scopes[s]; dk != nil {
		return dk, nil
	}
	if dk := ks.pending[s]; dk != nil {
		return dk, nil
	}
	if stored != nil {
		ks.cache(s, stored)
		return stored, nil
	}
	return ks.newKeyLocked(s)
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
	ks.pending[s] = dk
	return dk, nil
}

// byID returns a data key by id: ErrKeyDestroyed when it is gone.
func (ks *keyStore) byID(id [16]byte) (*dataKey, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if dk := ks.ids[id]; dk != nil {
		return dk, nil
	}
	for _, dk := range ks.pending {
		if dk.id == id {
			return dk, nil
		}
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
	putBounded(ks.ids, ks.maxCached, id, dk)
	return dk, nil
}

// load reads a data key: its location, then its material. A key whose
// material is gone (destroyed) is badger.ErrKeyNotFound.
func (ks *keyStore) load(txn *badger.Txn, id [16]byte) (*dataKey, error) {
	item, err := txn.Get(keyLocationKey(id))
	if err != nil {
		return nil, err
	}
	mkey, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	ref, err := parseKeyMaterialKey(mkey)
	if err != nil || ref.ID != id {
		return nil, fmt.Errorf("location of data key %x: %v", id, err)
	}
	if item, err = txn.Get(mkey); err != nil {
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

// flush makes every pending key durable in one fsynced transaction. The
// writer calls it before each commit; Shred before it re-seals. It waits
// while a DropPrefix blocks the key database's writes, and retries
// ErrBlockedWrites with a short backoff until quit is closed.
func (ks *keyStore) flush(quit <-chan struct{}) error {
	ks.flushMu.Lock()
	defer ks.flushMu.Unlock()
	ks.mu.Lock()
	if len(ks.pending) == 0 {
		ks.mu.Unlock()
		return nil
	}
	batch := make(map[keyScope]*dataKey, len(ks.pending))
	for s, dk := range ks.pending {
		batch[s] = dk
	}
	ks.mu.Unlock()

	err := ks.update(quit, func(txn *badger.Txn) error {
		for s, dk := range batch {
			mkey := keyMaterialKey(s, dk.id)
			if err := txn.Set(mkey, ks.wrap(dk)); err != nil {
				return err
			}
			if err := txn.Set(keyLocationKey(dk.id), mkey); err != nil {
				return err
			}
			if err := txn.Set(keyScopeKey(s), dk.id[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store data keys: %w", err)
	}
	ks.mu.Lock()
	for s, dk := range batch {
		delete(ks.pending, s)
		dk.raw = nil
		dk.stored.Store(true)
		ks.cache(s, dk)
	}
	ks.mu.Unlock()
	return nil
}

// update runs a write transaction on the key database, never while a
// DropPrefix blocks its writes, retrying ErrBlockedWrites (from a drop
// outside the gate) with a backoff until quit is closed.
func (ks *keyStore) update(quit <-chan struct{}, fn func(txn *badger.Txn) error) error {
	backoff := time.Millisecond
	for {
		ks.dropMu.RLock()
		err := ks.db.Update(fn)
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

// dropPrefix drops key-database prefixes from memory and files with one
// DropPrefix call, holding writes back meanwhile.
func (ks *keyStore) dropPrefix(prefixes ...[]byte) error {
	if len(prefixes) == 0 {
		return nil
	}
	ks.dropMu.Lock()
	defer ks.dropMu.Unlock()
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
	return ks.update(quit, func(txn *badger.Txn) error {
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
// buckets given. Their material is dropped from memory and from the key
// store's files with one DropPrefix call (one memtable flush and one pass
// over the tables, while the store's writes wait); then their index
// records (location, scope) are deleted. Material is dropped first: a
// Delete before DropPrefix would hide the keys from DropPrefix, which only
// drops prefixes that hold live keys, and leave the material in the files.
// After a crash between the two steps, the index records left point at no
// material: the keys read as destroyed, and destroying them again removes
// the records. It returns the keys destroyed.
func (ks *keyStore) destroy(quit <-chan struct{}, exact []*KeyRef, buckets []Bucket) ([]*KeyRef, error) {
	refs := append([]*KeyRef(nil), exact...)
	var prefixes [][]byte
	for _, k := range exact {
		prefixes = append(prefixes, keyMaterialKey(k.scope(), k.ID))
	}
	err := ks.db.View(func(txn *badger.Txn) error {
		for _, b := range buckets {
			p := bucketPrefix(nsKeyMaterial, b)
			prefixes = append(prefixes, p)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
			for it.Rewind(); it.Valid(); it.Next() {
				k, err := parseKeyMaterialKey(it.Item().KeyCopy(nil))
				if err != nil {
					it.Close()
					return err
				}
				refs = append(refs, k)
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ks.mu.Lock()
	for _, k := range refs {
		delete(ks.ids, k.ID)
		if d := ks.scopes[k.scope()]; d != nil && d.id == k.ID {
			delete(ks.scopes, k.scope())
		}
	}
	ks.mu.Unlock()
	if err := ks.dropPrefix(prefixes...); err != nil {
		return nil, fmt.Errorf("destroy data keys: %w", err)
	}
	all := refs
	for len(refs) > 0 {
		chunk := refs[:min(len(refs), 1000)]
		refs = refs[len(chunk):]
		err := ks.update(quit, func(txn *badger.Txn) error {
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
	return all, nil
}
