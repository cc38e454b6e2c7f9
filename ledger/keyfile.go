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

// CreatingFile marks a data directory whose creation has not finished. A
// first start writes it (durably) before anything else, then the key
// files, then the two databases, and Open removes it once both are set
// up. A start that finds it finishes the creation: it keeps what the
// interrupted one made and makes what is missing. Nothing is stored in a
// ledger before its creation finished, so nothing can be lost by that.
const CreatingFile = "creating"

const creatingText = "This data directory is being created by veritrace; a start that finds this file finishes the creation.\n"

// CheckDataDir reports whether keys may be generated in p.Dir: for a
// wholly new data directory (none of ledger/, keys/, master.key, log.key,
// log.pub and admin.key exists in it) or one whose creation was
// interrupted (CreatingFile). Key files given by explicit paths must
// exist either way. A directory whose creation finished must hold
// ledger/, keys/ and both key files; otherwise CheckDataDir returns
// ErrIncomplete naming every missing piece. So must a directory being
// created that holds a database: its key files were made before it.
func CheckDataDir(p KeyPaths) (create bool, err error) {
	var present []string
	for _, name := range []string{LogDir, KeyDir, MasterKeyFile, SigningKeyFile, VerifierKeyFile, AdminKeyFile} {
		if exists(filepath.Join(p.Dir, name)) {
			present = append(present, name)
		}
	}
	creating := exists(filepath.Join(p.Dir, CreatingFile))
	var missing []string
	for _, path := range []string{p.MasterKey, p.SigningKey} {
		if path != "" && !exists(path) {
			missing = append(missing, path)
		}
	}
	hasDB := exists(filepath.Join(p.Dir, LogDir)) || exists(filepath.Join(p.Dir, KeyDir))
	if len(present) > 0 && !creating || creating && hasDB {
		for _, w := range []struct {
			path, what string
			needed     bool
		}{
			{filepath.Join(p.Dir, LogDir), "the log database", !creating},
			{filepath.Join(p.Dir, KeyDir), "the data keys", !creating},
			{p.master(), "the master key", true},
			{p.signing(), "the log signing key", true},
		} {
			if w.needed && !exists(w.path) {
				missing = append(missing, fmt.Sprintf("%s (%s)", w.path, w.what))
			}
		}
	}
	if len(missing) > 0 {
		return false, fmt.Errorf("%w: %s is missing %s; nothing was created or changed. The directory's creation had finished (or its databases were made), so what is missing was lost: restore it from a backup, or point --data at an empty directory to start a new ledger",
			ErrIncomplete, p.Dir, strings.Join(missing, ", "))
	}
	return len(present) == 0 || creating, nil
}

// LoadOrCreateKeys loads the master key and the log signing key. Keys are
// generated only for a wholly new data directory, or one whose creation
// was interrupted (CheckDataDir): the data directory is first marked as
// being created (CreatingFile), then each default-path key file that is
// missing is written, whole or not at all, with mode 0600 (the signing
// key named "veritrace-" and 8 random hex digits), with the verifier key
// beside them in log.pub; the directory is synced after each. A directory
// that is not new must have every piece, else ErrIncomplete names what is
// missing and nothing is changed. Key files readable or writable by group
// or others are refused with ErrKeyPermissions. The returned bool reports
// whether keys were generated.
func LoadOrCreateKeys(p KeyPaths) (*Keys, bool, error) {
	create, err := CheckDataDir(p)
	if err != nil {
		return nil, false, err
	}
	// Key files given by path are read and parsed before anything is
	// created: a bad one refuses the start with the disk unchanged.
	if p.MasterKey != "" {
		if _, err := ReadMasterKey(p.MasterKey); err != nil {
			return nil, false, err
		}
	}
	if p.SigningKey != "" {
		if _, err := readSigningKey(p.SigningKey); err != nil {
			return nil, false, err
		}
	}
	created := false
	if create {
		if err := os.MkdirAll(p.Dir, 0o700); err != nil {
			return nil, false, fmt.Errorf("create data directory: %w", err)
		}
		marker := filepath.Join(p.Dir, CreatingFile)
		if !exists(marker) {
			if err := writeFileDurably(marker, []byte(creatingText), 0o600, false); err != nil {
				return nil, false, fmt.Errorf("mark the data directory as being created: %w", err)
			}
		}
		if p.MasterKey == "" && !exists(p.master()) {
			master := make([]byte, MasterKeySize)
			rand.Read(master)
			if err := writeFileDurably(p.master(), []byte(base64.StdEncoding.EncodeToString(master)+"\n"), 0o600, false); err != nil {
				return nil, false, fmt.Errorf("create key file: %w", err)
			}
			created = true
		}
		if p.SigningKey == "" && !exists(p.signing()) {
			var suffix [4]byte
			rand.Read(suffix[:])
			s, _, err := note.GenerateKey(rand.Reader, "veritrace-"+hex.EncodeToString(suffix[:]))
			if err == nil {
				err = writeFileDurably(p.signing(), []byte(s+"\n"), 0o600, false)
			}
			if err != nil {
				return nil, false, fmt.Errorf("create key file: %w", err)
			}
			created = true
		}
	}
	master, err := ReadMasterKey(p.master())
	if err != nil {
		return nil, false, err
	}
	skey, err := readSigningKey(p.signing())
	if err != nil {
		return nil, false, err
	}
	k := &Keys{Master: master, SigningKey: skey}
	if create && p.SigningKey == "" {
		// log.pub is the signing key's verifier key: (re)written whole.
		vkey, err := k.VerifierKey()
		if err == nil {
			err = writeFileDurably(filepath.Join(p.Dir, VerifierKeyFile), []byte(vkey+"\n"), 0o644, true)
		}
		if err != nil {
			return nil, false, fmt.Errorf("write %s: %w", VerifierKeyFile, err)
		}
	}
	return k, created, nil
}

// finishCreation removes the creating marker of a data directory, if
// there is one, durably.
func finishCreation(dir string) error {
	marker := filepath.Join(dir, CreatingFile)
	if !exists(marker) {
		return nil
	}
	if err := os.Remove(marker); err != nil {
		return fmt.Errorf("finish the data directory's creation: %w", err)
	}
	return syncDir(dir)
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

// readSigningKey reads and parses a log signing key file (a note signer
// key), in a file only its owner may read or write.
func readSigningKey(path string) (string, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return "", err
	}
	skey := strings.TrimSpace(string(b))
	if _, _, err := parseSigningKey(skey); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return skey, nil
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

// writeFileDurably writes a file whole or not at all: the content goes to
// path+".tmp", which is synced and then linked to path (replacing it only
// with replace; else the link fails if path exists), and the directory is
// synced, so that once it returns the file survives a crash, and a crash
// before leaves no partial file at path.
func writeFileDurably(path string, content []byte, mode os.FileMode, replace bool) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if replace {
			err = os.Rename(tmp, path)
		} else if err = os.Link(tmp, path); err == nil {
			err = os.Remove(tmp)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// WriteFileDurably is writeFileDurably for the server's own files in the
// data directory (the bootstrap admin key).
func WriteFileDurably(path string, content []byte, mode os.FileMode, replace bool) error {
	return writeFileDurably(path, content, mode, replace)
}

// syncDir makes a directory's entries durable (a file created, linked,
// renamed or removed in it). Tests replace it to observe the syncs.
var syncDir = syncDirectory
