package ledger

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

	"github.com/veritrace/veritrace/ledger/format"
)

// MasterKeySize is the size of the master key.
const MasterKeySize = 32

// Sub-keys derived from the master key with HKDF-SHA256 (no salt).
const (
	infoBadger    = "veritrace badger v1"            // Badger's own encryption at rest
	infoKEK       = "veritrace kek v1"               // wraps data keys
	infoPseudonym = "veritrace subject pseudonym v1" // HMAC key for subject pseudonyms
)

func deriveKey(master []byte, info string) []byte {
	k := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, master, nil, []byte(info)), k); err != nil {
		panic(err) // cannot happen: HKDF-SHA256 yields up to 8160 bytes
	}
	return k
}

// envelopeVersion is the first byte of a sealed payload.
const envelopeVersion = 1

const envelopeAD = "veritrace/envelope/v1\x00"

// envelopeHeaderLen is version (1) + key id (16) + nonce (24).
const envelopeHeaderLen = 1 + 16 + chacha20poly1305.NonceSizeX

// ErrDecrypt is returned when a payload or a data key does not decrypt.
var ErrDecrypt = errors.New("decryption failed")

func envelopeAdditionalData(tenant uint32, commitment [32]byte) []byte {
	ad := make([]byte, 0, len(envelopeAD)+4+32)
	ad = append(ad, envelopeAD...)
	ad = binary.BigEndian.AppendUint32(ad, tenant)
	return append(ad, commitment[:]...)
}

// seal encrypts salt||payload under the data key with XChaCha20-Poly1305,
// bound to the tenant and the commitment.
func seal(dk *dataKey, tenant uint32, commitment [32]byte, salt, payload []byte) []byte {
	out := make([]byte, envelopeHeaderLen, envelopeHeaderLen+len(salt)+len(payload)+chacha20poly1305.Overhead)
	out[0] = envelopeVersion
	copy(out[1:17], dk.id[:])
	if _, err := rand.Read(out[17:envelopeHeaderLen]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	plain := make([]byte, 0, len(salt)+len(payload))
	plain = append(append(plain, salt...), payload...)
	return dk.aead.Seal(out, out[17:envelopeHeaderLen], plain, envelopeAdditionalData(tenant, commitment))
}

// envelopeKeyID returns the data key id of a sealed payload.
func envelopeKeyID(env []byte) ([16]byte, error) {
	var id [16]byte
	if len(env) < envelopeHeaderLen+format.SaltSize+chacha20poly1305.Overhead || env[0] != envelopeVersion {
		return id, fmt.Errorf("%w: malformed envelope", ErrDecrypt)
	}
	copy(id[:], env[1:17])
	return id, nil
}

// open decrypts a sealed payload and returns its salt and payload.
func open(dk *dataKey, tenant uint32, commitment [32]byte, env []byte) (salt, payload []byte, err error) {
	if _, err := envelopeKeyID(env); err != nil {
		return nil, nil, err
	}
	plain, err := dk.aead.Open(nil, env[17:envelopeHeaderLen], env[envelopeHeaderLen:], envelopeAdditionalData(tenant, commitment))
	if err != nil {
		return nil, nil, ErrDecrypt
	}
	return plain[:format.SaltSize], plain[format.SaltSize:], nil
}
