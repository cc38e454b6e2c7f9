package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Default key file names inside the data directory.
const (
	MasterKeyFile   = "master.key" // 32 random bytes, base64, mode 0600
	SigningKeyFile  = "log.key"    // note signer key "PRIVATE+KEY+name+hash+base64", mode 0600
	VerifierKeyFile = "log.pub"    // note verifier key "name+hash+base64", for auditors
)

// ErrKeyPermissions is returned when a key file is readable or writable by
// anyone but its owner.
var ErrKeyPermissions = errors.New("key file permissions too open")

// Keys are the secrets a ledger needs.
type Keys struct {
	Master     []byte // MasterKeySize bytes
	SigningKey string // note signer key
}

// VerifierKey returns the note verifier key matching k.SigningKey.
func (k *Keys) VerifierKey() (string, error) {
	name, pub, err := parseSigningKey(k.SigningKey)
	if err != nil {
		return "", err
	}
	return note.NewEd25519VerifierKey(name, pub)
}

// parseSigningKey splits a note signer key "PRIVATE+KEY+name+hash+base64"
// whose key is 0x01 (Ed25519) followed by a 32-byte seed.
func parseSigningKey(skey string) (name string, pub ed25519.PublicKey, err error) {
	if _, err := note.NewSigner(skey); err != nil {
		return "", nil, fmt.Errorf("signing key: %w", err)
	}
	parts := strings.SplitN(skey, "+", 5)
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return "", nil, errors.New("signing key: not an Ed25519 note key")
	}
	return parts[2], ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey), nil
}

// KeyPaths says where LoadOrCreateKeys finds the key files. Empty paths
// mean the default names inside Dir.
type KeyPaths struct {
	Dir        string
	MasterKey  string
	SigningKey string
}

func (p KeyPaths) master() string {
	if p.MasterKey != "" {
		return p.MasterKey
	}
	return filepath.Join(p.Dir, MasterKeyFile)
}

func (p KeyPaths) signing() string {
	if p.SigningKey != "" {
		return p.SigningKey
	}
	return filepath.Join(p.Dir, SigningKeyFile)
}

// LoadOrCreateKeys loads the master key and the log signing key. When a
// default-path key file does not exist it is generated (the signing key
// named "veritrace-" and 8 random hex digits) and written with mode 0600,
// with the verifier key beside it in log.pub. A key given by an explicit
// path must exist. Key files readable or writable by group or others are
// refused with ErrKeyPermissions. The returned bool reports whether keys
// were generated.
func LoadOrCreateKeys(p KeyPaths) (*Keys, bool, error) {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	created := false
	master, err := ReadMasterKey(p.master())
	if errors.Is(err, fs.ErrNotExist) && p.MasterKey == "" {
		master = make([]byte, MasterKeySize)
		rand.Read(master)
		err = writeKeyFile(p.master(), base64.StdEncoding.EncodeToString(master)+"\n")
		created = true
	}
	if err != nil {
		return nil, false, err
	}

	skey, err := readKeyFile(p.signing())
	if errors.Is(err, fs.ErrNotExist) && p.SigningKey == "" {
		var suffix [4]byte
		rand.Read(suffix[:])
		var s, v string
		s, v, err = note.GenerateKey(rand.Reader, "veritrace-"+hex.EncodeToString(suffix[:]))
		if err == nil {
			err = writeKeyFile(p.signing(), s+"\n")
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(p.Dir, VerifierKeyFile), []byte(v+"\n"), 0o644)
		}
		skey = []byte(s)
		created = true
	}
	if err != nil {
		return nil, false, err
	}
	k := &Keys{Master: master, SigningKey: strings.TrimSpace(string(skey))}
	if _, _, err := parseSigningKey(k.SigningKey); err != nil {
		return nil, false, fmt.Errorf("%s: %w", p.signing(), err)
	}
	return k, created, nil
}

// ReadMasterKey reads a master key file: MasterKeySize bytes in base64,
// in a file only its owner may read or write (else ErrKeyPermissions).
func ReadMasterKey(path string) ([]byte, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	master, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(master) != MasterKeySize {
		return nil, fmt.Errorf("master key %s: want %d bytes in base64", path, MasterKeySize)
	}
	return master, nil
}

// readKeyFile reads a key file after checking that only its owner may
// read or write it.
func readKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 %s)", ErrKeyPermissions, path, fi.Mode().Perm(), path)
	}
	return os.ReadFile(path)
}

func writeKeyFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync key file %s: %w", path, err)
	}
	return f.Close()
}
