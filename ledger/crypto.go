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
	infoBadger    = "veritrace badger v1"             // Badger's own encryption at rest
	infoKEK       = "veritrace kek v1"                // wraps data keys
	infoPseudonym = "veritrace subject pseudonym v1"  // HMAC key for subject pseudonyms
	infoStandIn   = "veritrace stand-in pseudonym v1" // HMAC key for pseudonyms of ids without a pseudonym key
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

// ErrDecrypt is returned when a payload or a data key does not decrypt.
var ErrDecrypt = errors.New("decryption failed")

func envelopeAdditionalData(tenant uint32, commitment [32]byte) []byte {
	ad := make([]byte, 0, len(envelopeAD)+4+32)
	ad = append(ad, envelopeAD...)
	ad = binary.BigEndian.AppendUint32(ad, tenant)
	return append(ad, commitment[:]...)
}

// termRefSize is the size of one index term reference in an envelope:
// field (1) and value MAC (16).
const termRefSize = 1 + termMACSize

// Envelope layout (docs/FORMAT.md §5.4):
//
//	version (1) | key id (16) | n (1) | n × (field (1) | value MAC (16)) | nonce (24) | ciphertext
//
// The term references list the entry's secondary index keys, so that
// erasure can delete them without decrypting the payload; they are keyed
// MACs, not personal data.
type envelope []byte

func (e envelope) keyID() [16]byte {
	var id [16]byte
	copy(id[:], e[1:17])
	return id
}

// terms returns the entry's index term references.
func (e envelope) terms() [][termRefSize]byte {
	n := int(e[17])
	out := make([][termRefSize]byte, n)
	for i := range out {
		copy(out[i][:], e[18+i*termRefSize:])
	}
	return out
}

func (e envelope) nonceAt() int { return 18 + int(e[17])*termRefSize }

// parseEnvelope checks the framing of a sealed payload.
func parseEnvelope(b []byte) (envelope, error) {
	if len(b) < 18 || b[0] != envelopeVersion {
		return nil, fmt.Errorf("%w: malformed envelope", ErrDecrypt)
	}
	e := envelope(b)
	if len(b) < e.nonceAt()+chacha20poly1305.NonceSizeX+format.SaltSize+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: malformed envelope", ErrDecrypt)
	}
	return e, nil
}

// seal encrypts salt||payload under the data key with XChaCha20-Poly1305,
// bound to the tenant and the commitment.
func seal(dk *dataKey, tenant uint32, commitment [32]byte, salt, payload []byte, terms [][termRefSize]byte) []byte {
	if len(terms) > 255 {
		panic("more than 255 index terms") // Append refuses such records
	}
	head := 18 + len(terms)*termRefSize
	out := make([]byte, head, head+chacha20poly1305.NonceSizeX+len(salt)+len(payload)+chacha20poly1305.Overhead)
	out[0] = envelopeVersion
	copy(out[1:17], dk.id[:])
	out[17] = byte(len(terms))
	for i, t := range terms {
		copy(out[18+i*termRefSize:], t[:])
	}
	out = out[:head+chacha20poly1305.NonceSizeX]
	nonce := out[head:]
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	// salt || payload is encrypted in place, in out's tail: no copy of the
	// plaintext of its own (Seal allows dst to be plaintext[:0]).
	plain := append(append(out[len(out):], salt...), payload...)
	sealed := dk.aead.Seal(plain[:0], nonce, plain, envelopeAdditionalData(tenant, commitment))
	return out[:len(out)+len(sealed)]
}

// open decrypts a sealed payload and returns its salt and payload.
func open(dk *dataKey, tenant uint32, commitment [32]byte, env envelope) (salt, payload []byte, err error) {
	n := env.nonceAt()
	plain, err := dk.aead.Open(nil, env[n:n+chacha20poly1305.NonceSizeX], env[n+chacha20poly1305.NonceSizeX:], envelopeAdditionalData(tenant, commitment))
	if err != nil {
		return nil, nil, ErrDecrypt
	}
	return plain[:format.SaltSize], plain[format.SaltSize:], nil
}
