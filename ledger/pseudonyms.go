package ledger

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/crypto/chacha20poly1305"
)

// Pseudonym keys: what the server keeps about a subject or a session
// outside its payloads (access-log targets, holds) names it by a
// pseudonym, a MAC of its id under a random key of its own. The key lives
// in the key database beside the data keys, found by the id's index term,
// and erasure destroys it as it destroys data keys (DropPrefix over its
// material): from then on no record names the subject, since nothing can
// link a pseudonym to an id any more.

// TermRef is an index term as the index stores it: its field and the keyed
// MAC of its value (never the value).
type TermRef struct {
	Field uint8
	MAC   [termMACSize]byte
}

// String is the ref's hex form: field (2 digits) then MAC (32 digits).
func (r TermRef) String() string {
	return fmt.Sprintf("%02x%x", r.Field, r.MAC)
}

// ParseTermRef parses String's form.
func ParseTermRef(s string) (TermRef, error) {
	var r TermRef
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 1+termMACSize {
		return r, fmt.Errorf("%w: malformed term ref %q", ErrInvalid, s)
	}
	r.Field = b[0]
	copy(r.MAC[:], b[1:])
	return r, nil
}

// TermRefOf returns the ref of a tenant's term.
func (l *Ledger) TermRefOf(ctx context.Context, tenant string, t Term) (TermRef, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return TermRef{}, err
	}
	return TermRef{Field: t.Field, MAC: l.keys.termMAC(tid, t.Field, t.Value)}, nil
}

// EntriesWith returns the indexes of a tenant's entries carrying the term
// ref, in index order.
func (l *Ledger) EntriesWith(ctx context.Context, tenant string, r TermRef) ([]uint64, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	return l.postings(tid, termPrefixKey(tid, r.Field, r.MAC))
}

// KeysAndTermsOf returns the live data keys the given entries are sealed
// under (as KeysOf) and the distinct refs of the fields that their
// envelopes list, sorted, in one pass over the envelopes, in read
// transactions of up to 1024 entries. Entries without a payload list
// nothing. An erasure collects the subjects and sessions of the entries
// it erases with it before it drops their payloads.
func (l *Ledger) KeysAndTermsOf(ctx context.Context, tenant string, idxs []uint64, fields ...uint8) (map[[16]byte]*KeyRef, []TermRef, error) {
	return l.keysAndTerms(ctx, tenant, idxs, fields)
}

// refsOf appends to dst the refs of the envelope's terms of the given
// fields, in the envelope's order.
func (e envelope) refsOf(dst []TermRef, fields []uint8) []TermRef {
	for _, t := range e.terms() {
		if slices.Contains(fields, t[0]) {
			r := TermRef{Field: t[0]}
			copy(r.MAC[:], t[1:])
			dst = append(dst, r)
		}
	}
	return dst
}

// HavePseudonymKeys returns those of refs whose pseudonym key exists in
// the tenant, sorted and without repeats, each with its key's stamp
// (PseudonymKey.Stamp). It reads the key database with one iterator in
// key order, seeking from ref to ref, and unwraps no key (the stamp is a
// digest of the stored record); ctx is checked every 1024 refs. Plans use
// it to tell which subjects and sessions have a pseudonym key to destroy,
// and which key.
func (l *Ledger) HavePseudonymKeys(ctx context.Context, tenant string, refs []TermRef) ([]PseudonymRef, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	refs = slices.Clone(refs)
	slices.SortFunc(refs, compareRefs)
	refs = slices.Compact(refs)
	var out []PseudonymRef
	err = l.keysDB.View(func(txn *badger.Txn) error {
		prefix := tenantKey(nsPseudonym, tid)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for n, r := range refs {
			if n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			key := pseudonymKeyKey(tid, r)
			it.Seek(key)
			if it.Valid() && bytes.Equal(it.Item().Key(), key) {
				wrapped, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				out = append(out, PseudonymRef{Ref: r, Stamp: pseudonymStamp(wrapped)})
			}
		}
		return nil
	})
	return out, err
}

func (l *Ledger) keysAndTerms(ctx context.Context, tenant string, idxs []uint64, fields []uint8) (map[[16]byte]*KeyRef, []TermRef, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, nil, err
	}
	keys := map[[16]byte]*KeyRef{}
	gone := map[[16]byte]bool{}
	seen := map[TermRef]bool{}
	err = l.viewChunks(ctx, idxs, func(txn *badger.Txn, i uint64) error {
		item, err := txn.Get(payloadKey(tid, i))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var id [16]byte
		if err := item.Value(func(v []byte) error {
			ev, err := parseEnvelope(v)
			if err != nil {
				return err
			}
			id = ev.keyID()
			for _, r := range ev.refsOf(nil, fields) {
				seen[r] = true
			}
			return nil
		}); err != nil {
			return err
		}
		if keys[id] == nil && !gone[id] {
			k, err := l.keyRef(id)
			if errors.Is(err, ErrKeyDestroyed) {
				gone[id] = true
				return nil
			}
			if err != nil {
				return err
			}
			keys[id] = k
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	out := make([]TermRef, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	slices.SortFunc(out, compareRefs)
	return keys, out, nil
}

func compareRefs(a, b TermRef) int {
	if a.Field != b.Field {
		return int(a.Field) - int(b.Field)
	}
	return slices.Compare(a.MAC[:], b.MAC[:])
}

// PseudonymSize is the size of a pseudonym: 12 bytes, 24 hex digits.
const PseudonymSize = 12

const (
	pseudonymWrapAD = "veritrace/pseudonym-key/v1\x00"
	pseudonymMACTag = "veritrace pseudonym v1\x00"
	pseudonymSealAD = "veritrace pseudonym seal v1\x00"
)

// PseudonymKey is the random key of one (tenant, field, value): it names
// the value by a pseudonym and seals what must be kept of it while it
// exists.
type PseudonymKey struct {
	Ref TermRef
	// Stamp tells this key apart from every other key its ref has had or
	// will have (a key made again after the ref's key was destroyed has
	// another stamp): the first 16 bytes of SHA-256 over the key's stored
	// record (wrapped under a random nonce), in hex. It says nothing about
	// the key or the id. A plan records the stamp of each pseudonym key it
	// is to destroy, and Shred destroys a key only if its stamp is still
	// that one.
	Stamp string
	raw   []byte
	aead  cipher.AEAD
}

// PseudonymRef names a pseudonym key to destroy: the key of Ref, only if
// its stamp is Stamp. An empty Stamp (plans of an earlier build) names
// whichever key Ref has.
type PseudonymRef struct {
	Ref   TermRef
	Stamp string
}

// pseudonymStamp is PseudonymKey.Stamp of a stored (wrapped) key record.
func pseudonymStamp(wrapped []byte) string {
	h := sha256.Sum256(wrapped)
	return hex.EncodeToString(h[:16])
}

// Pseudonym returns the value's pseudonym: HMAC-SHA256(key, tag || value)
// truncated to PseudonymSize bytes, in hex. The caller passes the value
// the key's ref was made from.
func (k *PseudonymKey) Pseudonym(value string) string {
	m := hmac.New(sha256.New, k.raw)
	m.Write([]byte(pseudonymMACTag))
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil)[:PseudonymSize])
}

// Seal encrypts b under the key (XChaCha20-Poly1305, random nonce).
func (k *PseudonymKey) Seal(b []byte) []byte {
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(b)+chacha20poly1305.Overhead)
	rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, b, k.ad())
}

// Open decrypts what Seal made.
func (k *PseudonymKey) Open(sealed []byte) ([]byte, error) {
	if len(sealed) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: sealed value of %d bytes", ErrDecrypt, len(sealed))
	}
	b, err := k.aead.Open(nil, sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:], k.ad())
	if err != nil {
		return nil, fmt.Errorf("%w: sealed value does not open under its pseudonym key", ErrDecrypt)
	}
	return b, nil
}

func (k *PseudonymKey) ad() []byte {
	return append([]byte(pseudonymSealAD), k.Ref.Field)
}

// PseudonymKey returns the pseudonym key of a tenant's term ref. With
// create, a missing one is made and stored (fsynced) first; without, a
// missing one is ErrNotFound (never made, or destroyed).
func (l *Ledger) PseudonymKey(ctx context.Context, tenant string, r TermRef, create bool) (*PseudonymKey, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	key := pseudonymKeyKey(tid, r)
	for {
		k, err := l.keys.loadPseudonym(key, r)
		if err == nil || !errors.Is(err, ErrNotFound) || !create {
			return k, err
		}
		raw := make([]byte, chacha20poly1305.KeySize)
		rand.Read(raw)
		err = l.keys.update(l.quit, "store a pseudonym key", func(txn *badger.Txn) error {
			if _, err := txn.Get(key); err == nil {
				return nil // made meanwhile: read it
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			return txn.Set(key, l.keys.wrapPseudonym(key, raw))
		})
		if errors.Is(err, badger.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
	}
}

// StandInPseudonym returns the pseudonym that names a tenant's term ref
// where its pseudonym key may not be read or made: an id without data (so
// without a key), or any id in the target of a refused call. It is
// HMAC-SHA256, under a key derived from the master key (never stored), of
// the tenant's number, the field and the term's MAC, truncated to
// PseudonymSize bytes in hex: it looks like any pseudonym, so that a
// reader of the access log cannot tell an id with data from one without,
// and it writes nothing. It is not destroyed by erasure: it never names
// an id's data, only that the id was named (docs/ACCESS.md).
func (l *Ledger) StandInPseudonym(ctx context.Context, tenant string, r TermRef) (string, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, l.keys.standIn)
	m.Write(binary.BigEndian.AppendUint32(nil, tid))
	m.Write([]byte{r.Field})
	m.Write(r.MAC[:])
	return hex.EncodeToString(m.Sum(nil)[:PseudonymSize]), nil
}

func (ks *keyStore) wrapPseudonym(key, raw []byte) []byte {
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(raw)+chacha20poly1305.Overhead)
	rand.Read(nonce)
	return ks.kek.Seal(nonce, nonce, raw, append([]byte(pseudonymWrapAD), key...))
}

// loadPseudonym reads and unwraps a pseudonym key: ErrNotFound if there is
// none.
func (ks *keyStore) loadPseudonym(key []byte, r TermRef) (*PseudonymKey, error) {
	var wrapped []byte
	err := ks.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		wrapped, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("pseudonym key: %w", ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if len(wrapped) != wrappedKeySize {
		return nil, fmt.Errorf("%w: wrapped pseudonym key of %d bytes", ErrDecrypt, len(wrapped))
	}
	raw, err := ks.kek.Open(nil, wrapped[:chacha20poly1305.NonceSizeX], wrapped[chacha20poly1305.NonceSizeX:], append([]byte(pseudonymWrapAD), key...))
	if err != nil {
		return nil, fmt.Errorf("%w: pseudonym key does not unwrap (wrong master key?)", ErrDecrypt)
	}
	aead, err := chacha20poly1305.NewX(raw)
	if err != nil {
		return nil, err
	}
	return &PseudonymKey{Ref: r, Stamp: pseudonymStamp(wrapped), raw: raw, aead: aead}, nil
}

// doomedPseudonyms returns the records of the pseudonym keys to destroy
// of refs: those that exist and whose stamp is the one named. The caller
// holds shredMu, which every destruction of a pseudonym key holds, and a
// key is only ever made where none exists: so the keys it returns are
// still those keys when the caller drops them, and a key made since a
// plan read the stamp (the id seen again after its key was destroyed)
// is never dropped by that plan.
func (ks *keyStore) doomedPseudonyms(tid uint32, refs []PseudonymRef) ([][]byte, error) {
	var out [][]byte
	err := ks.db.View(func(txn *badger.Txn) error {
		for _, p := range refs {
			key := pseudonymKeyKey(tid, p.Ref)
			item, err := txn.Get(key)
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue // never made, or destroyed already
			}
			if err != nil {
				return err
			}
			if p.Stamp != "" {
				wrapped, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				if pseudonymStamp(wrapped) != p.Stamp {
					continue // another key, made since the plan read it
				}
			}
			out = append(out, key)
		}
		return nil
	})
	return out, err
}
