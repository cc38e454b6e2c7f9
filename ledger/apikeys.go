package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// APIKey is the stored record of an API key. It holds a hash of the
// secret, never the secret. Role and tenant names are the policy package's;
// the ledger stores them as they are.
type APIKey struct {
	ID         [8]byte   `json:"-"`
	SecretHash [32]byte  `json:"secret_sha256"`
	Role       string    `json:"role"`
	Tenants    []string  `json:"tenants"`
	Label      string    `json:"label,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by,omitempty"` // key id of the creator; empty for the bootstrap key
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// PutAPIKey stores a new API key record, durably. ErrAlreadyExists if the
// id is taken.
func (l *Ledger) PutAPIKey(ctx context.Context, k *APIKey) error {
	v, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return l.update("store API key", func(txn *badger.Txn) error {
		if _, err := txn.Get(apiKeyKey(k.ID)); err == nil {
			return fmt.Errorf("API key %x: %w", k.ID, ErrAlreadyExists)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return txn.Set(apiKeyKey(k.ID), v)
	})
}

// GetAPIKey returns an API key record, ErrNotFound if there is none.
func (l *Ledger) GetAPIKey(ctx context.Context, id [8]byte) (*APIKey, error) {
	var k *APIKey
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(apiKeyKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("API key %x: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		k, err = decodeAPIKey(id, item)
		return err
	})
	return k, err
}

// ListAPIKeys returns every API key record, ordered by id.
func (l *Ledger) ListAPIKeys(ctx context.Context) ([]*APIKey, error) {
	var out []*APIKey
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsAPIKey}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var id [8]byte
			copy(id[:], it.Item().Key()[1:])
			k, err := decodeAPIKey(id, it.Item())
			if err != nil {
				return err
			}
			out = append(out, k)
		}
		return nil
	})
	return out, err
}

// RevokeAPIKey marks a key revoked at the given time. Revoking a revoked
// key keeps the first time. ErrNotFound if there is no such key.
func (l *Ledger) RevokeAPIKey(ctx context.Context, id [8]byte, at time.Time) (*APIKey, error) {
	var k *APIKey
	err := l.update("revoke API key", func(txn *badger.Txn) error {
		item, err := txn.Get(apiKeyKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("API key %x: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if k, err = decodeAPIKey(id, item); err != nil {
			return err
		}
		if !k.RevokedAt.IsZero() {
			return nil
		}
		k.RevokedAt = at.UTC()
		v, err := json.Marshal(k)
		if err != nil {
			return err
		}
		return txn.Set(apiKeyKey(id), v)
	})
	return k, err
}

func decodeAPIKey(id [8]byte, item *badger.Item) (*APIKey, error) {
	k := &APIKey{ID: id}
	err := item.Value(func(v []byte) error { return json.Unmarshal(v, k) })
	if err != nil {
		return nil, fmt.Errorf("API key %x: %w", id, err)
	}
	return k, nil
}
