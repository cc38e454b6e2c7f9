package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
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

// ErrIncomplete is returned when a data directory that is not new lacks
// something it needs: nothing is created or changed then.
var ErrIncomplete = errors.New("data directory incomplete")

// AdminKeyFile is where a server writes its bootstrap admin key on first
// start; it counts as a sign that a data directory is not new.
const AdminKeyFile = "admin.key"

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// CheckDataDir reports whether dir is a wholly new data directory: none of
// ledger/, keys/, master.key, log.key, log.pub and admin.key exists in it
// (key files given by explicit paths must exist either way). A directory
// that is not new must hold ledger/, keys/ and both key files; otherwise
// CheckDataDir returns ErrIncomplete naming every missing piece.
func CheckDataDir(p KeyPaths) (fresh bool, err error) {
	var present []string
	for _, name := range []string{LogDir, KeyDir, MasterKeyFile, SigningKeyFile, VerifierKeyFile, AdminKeyFile} {
		if exists(filepath.Join(p.Dir, name)) {
			present = append(present, name)
		}
	}
	var missing []string
	for _, path := range []string{p.MasterKey, p.SigningKey} {
		if path != "" && !exists(path) {
			missing = append(missing, path)
		}
	}
	if len(present) > 0 {
		for _, w := range []struct{ path, what string }{
			{filepath.Join(p.Dir, LogDir), "the log database"},
			{filepath.Join(p.Dir, KeyDir), "the data keys"},
			{p.master(), "the master key"},
			{p.signing(), "the log signing key"},
		} {
			if !exists(w.path) {
				missing = append(missing, fmt.Sprintf("%s (%s)", w.path, w.what))
			}
		}
	}
	if len(missing) > 0 {
		return false, fmt.Errorf("%w: %s is missing %s; nothing was created or changed. Restore what is missing from a backup, or point --data at an empty directory to start a new ledger",
			ErrIncomplete, p.Dir, strings.Join(missing, ", "))
	}
	return len(present) == 0, nil
}

// LoadOrCreateKeys loads the master key and the log signing key. Keys are
// generated only for a wholly new data directory (CheckDataDir): the
// default-path key files are then written with mode 0600 (the signing key
// named "veritrace-" and 8 random hex digits), with the verifier key beside
// them in log.pub. A directory that is not new must have every piece, else
// ErrIncomplete names what is missing and nothing is changed. Key files
// readable or writable by group or others are refused with
// ErrKeyPermissions. The returned bool reports whether keys were generated.
func LoadOrCreateKeys(p KeyPaths) (*Keys, bool, error) {
	fresh, err := CheckDataDir(p)
	if err != nil {
		return nil, false, err
	}
	created := false
	if fresh {
		if err := os.MkdirAll(p.Dir, 0o700); err != nil {
			return nil, false, fmt.Errorf("create data directory: %w", err)
		}
		if p.MasterKey == "" {
			master := make([]byte, MasterKeySize)
			rand.Read(master)
			if err := writeKeyFile(p.master(), base64.StdEncoding.EncodeToString(master)+"\n"); err != nil {
				return nil, false, err
			}
			created = true
		}
		if p.SigningKey == "" {
			var suffix [4]byte
			rand.Read(suffix[:])
			s, v, err := note.GenerateKey(rand.Reader, "veritrace-"+hex.EncodeToString(suffix[:]))
			if err == nil {
				err = writeKeyFile(p.signing(), s+"\n")
			}
			if err == nil {
				err = os.WriteFile(filepath.Join(p.Dir, VerifierKeyFile), []byte(v+"\n"), 0o644)
			}
			if err != nil {
				return nil, false, err
			}
			created = true
		}
	}
	master, err := ReadMasterKey(p.master())
	if err != nil {
		return nil, false, err
	}
	skey, err := readKeyFile(p.signing())
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
