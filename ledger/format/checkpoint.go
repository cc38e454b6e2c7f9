package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed C2SP tlog-checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   tlog.Hash
	// Note is the whole signed note: body, blank line, signature lines.
	Note []byte
}

// EmptyRoot is the RFC 6962 root of the empty tree: SHA-256 of nothing.
var EmptyRoot = tlog.Hash(sha256.Sum256(nil))

// CheckpointBody returns the checkpoint body: origin, size in decimal and
// the base64 root, each on its own line.
func CheckpointBody(origin string, size uint64, root tlog.Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
}

// ErrCheckpoint is returned (wrapped) for a checkpoint that does not
// verify or parse.
var ErrCheckpoint = errors.New("invalid checkpoint")

// OpenCheckpoint verifies a signed checkpoint note against the verifier
// and parses its body. Extension lines after the root are not allowed.
func OpenCheckpoint(msg []byte, v note.Verifier) (*Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	cp, err := ParseCheckpointBody(n.Text)
	if err != nil {
		return nil, err
	}
	cp.Note = bytes.Clone(msg)
	return cp, nil
}

// ParseCheckpointBody parses a checkpoint body without checking any
// signature.
func ParseCheckpointBody(text string) (*Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return nil, fmt.Errorf("%w: want 3 lines, got %q", ErrCheckpoint, text)
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	if origin == "" {
		return nil, fmt.Errorf("%w: empty origin", ErrCheckpoint)
	}
	sizeText := strings.TrimSuffix(lines[1], "\n")
	size, err := strconv.ParseUint(sizeText, 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != sizeText {
		return nil, fmt.Errorf("%w: bad tree size %q", ErrCheckpoint, sizeText)
	}
	root, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(root) != tlog.HashSize {
		return nil, fmt.Errorf("%w: bad root hash", ErrCheckpoint)
	}
	cp := &Checkpoint{Origin: origin, Size: size}
	copy(cp.Root[:], root)
	return cp, nil
}
