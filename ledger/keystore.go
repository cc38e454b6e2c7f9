package ledger

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

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
	id    [16]byte
	aead  cipher.AEAD
	raw   []byte // the key itself while pending; nil once stored
	scope []byte // the scope key, while pending
	// users counts appends sealing under the key and not yet answered, so
	// that retiring it can wait for them.
	users sync.WaitGroup
}

const wrapAD = "veritrace/dek/v1\x00"

// wrappedKeySize is nonce (24) + sealed 32-byte key (48); the scope key
// follows it in a data key record.
const wrappedKeySize = chacha20poly1305.NonceSizeX + chacha20poly1305.KeySize + chacha20poly1305.Overhead

// maxCachedKeys bounds the key cache; past it the cache is dropped whole.
const maxCachedKeys = 1 << 16

// keyStore keeps wrapped data keys in their own Badger database, apart from
// the log, so that they can be destroyed and backed up on their own terms.
// New keys are pending until flush makes them durable; the writer flushes
// before it commits entries sealed under them.
type keyStore struct {
	db        *badger.DB
	kek       cipher.AEAD
	pseudoKey []byte

	flushMu sync.Mutex // one flush at a time
	mu      sync.Mutex
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

func (ks *keyStore) cache(s keyScope, dk *dataKey) {
	if len(ks.ids) >= maxCachedKeys {
		clear(ks.ids)
		clear(ks.scopes)
	}
	ks.ids[dk.id] = dk
	ks.scopes[s] = dk
}

// forScope returns the data key of a scope, creating a pending one if the
// scope has none. The caller must call dk.users.Done when the append that
// uses it has been answered.
func (ks *keyStore) forScope(s keyScope) (*dataKey, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	dk, err := ks.scopeKeyLocked(s)
	if err != nil {
		return nil, err
	}
	dk.users.Add(1)
	return dk, nil
}

func (ks *keyStore) scopeKeyLocked(s keyScope) (*dataKey, error) {
	if dk := ks.scopes[s]; dk != nil {
		return dk, nil
	}
	if dk := ks.pending[s]; dk != nil {
		return dk, nil
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
		ks.cache(s, dk)
		return dk, nil
	case !errors.Is(err, badger.ErrKeyNotFound):
		return nil, fmt.Errorf("look up data key: %w", err)
	}
	raw := make([]byte, chacha20poly1305.KeySize)
	rand.Read(raw)
	aead, err := chacha20poly1305.NewX(raw)
	if err != nil {
		return nil, err
	}
	dk = &dataKey{id: uuid.New(), aead: aead, raw: raw, scope: keyScopeKey(s)}
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
	ks.ids[id] = dk
	return dk, nil
}

func (ks *keyStore) load(txn *badger.Txn, id [16]byte) (*dataKey, error) {
	item, err := txn.Get(dataKeyKey(id))
	if err != nil {
		return nil, err
	}
	wrapped, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < wrappedKeySize {
		return nil, fmt.Errorf("%w: wrapped data key of %d bytes", ErrDecrypt, len(wrapped))
	}
	raw, err := ks.kek.Open(nil, wrapped[:chacha20poly1305.NonceSizeX], wrapped[chacha20poly1305.NonceSizeX:wrappedKeySize], append([]byte(wrapAD), id[:]...))
	if err != nil {
		return nil, fmt.Errorf("%w: data key does not unwrap (wrong master key?)", ErrDecrypt)
	}
	aead, err := chacha20poly1305.NewX(raw)
	if err != nil {
		return nil, err
	}
	return &dataKey{id: id, aead: aead}, nil
}

func (ks *keyStore) wrap(dk *dataKey) []byte {
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(dk.raw)+chacha20poly1305.Overhead)
	rand.Read(nonce)
	return ks.kek.Seal(nonce, nonce, dk.raw, append([]byte(wrapAD), dk.id[:]...))
}

// flush makes every pending key durable in one fsynced transaction. The
// writer calls it before each commit; Shred before it retires or re-seals.
func (ks *keyStore) flush() error {
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

	err := ks.db.Update(func(txn *badger.Txn) error {
		for s, dk := range batch {
			if err := txn.Set(dataKeyKey(dk.id), append(ks.wrap(dk), dk.scope...)); err != nil {
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
		dk.raw, dk.scope = nil, nil
		ks.cache(s, dk)
	}
	ks.mu.Unlock()
	return nil
}

// retire removes a key from its scope, so that appends from now on get a
// new key, and waits until every append that was sealing under it has
// been answered.
func (ks *keyStore) retire(k *KeyRef) error {
	// A pending key is made durable first: entries may already be sealed
	// under it, and they must stay readable until re-sealed or erased.
	if err := ks.flush(); err != nil {
		return err
	}
	ks.mu.Lock()
	s := k.scope()
	var dk *dataKey
	if d := ks.scopes[s]; d != nil && d.id == k.ID {
		dk = d
		delete(ks.scopes, s)
	}
	ks.mu.Unlock()
	// The stored mapping goes too, so that no lookup finds the key again.
	ks.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(keyScopeKey(s))
		if err != nil {
			return nil
		}
		return item.Value(func(v []byte) error {
			if string(v) == string(k.ID[:]) {
				return txn.Delete(keyScopeKey(s))
			}
			return nil
		})
	})
	if dk != nil {
		dk.users.Wait()
	}
	return nil
}

// destroy deletes a data key and drops it from the key store's files.
// Badger keeps deleted versions until compaction; DropPrefix rewrites the
// tables (and flushes the memtable) without them.
func (ks *keyStore) destroy(k *KeyRef) error {
	ks.mu.Lock()
	delete(ks.ids, k.ID)
	if d := ks.scopes[k.scope()]; d != nil && d.id == k.ID {
		delete(ks.scopes, k.scope())
	}
	ks.mu.Unlock()
	if err := ks.db.DropPrefix(dataKeyKey(k.ID)); err != nil {
		return fmt.Errorf("destroy data key %x: %w", k.ID, err)
	}
	return nil
}
