package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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

// bundleTitle is the first line of a bundle signature body. No checkpoint
// of a Veritrace log has it as its origin, and its second line is never a
// number, so a signed bundle body can never pass for a checkpoint.
const bundleTitle = "veritrace evidence bundle v1"

// BundleSignatureBody is the text the log key signs for an evidence
// bundle: the title line, the origin of the log, and the SHA-256 of the
// bundle's manifest.json in lowercase hex.
func BundleSignatureBody(origin string, manifestSHA256 [32]byte) string {
	return bundleTitle + "\n" + origin + "\n" + hex.EncodeToString(manifestSHA256[:]) + "\n"
}

// ParseBundleSignatureBody parses a bundle signature body.
func ParseBundleSignatureBody(text string) (origin string, digest [32]byte, err error) {
	return parseDigestBody(text, bundleTitle, "bundle", "manifest")
}

// parseDigestBody parses a signature body of three lines: title, origin
// and a SHA-256 in lowercase hex.
func parseDigestBody(text, title, what, of string) (origin string, digest [32]byte, err error) {
	lines := strings.Split(text, "\n")
	if len(lines) != 4 || lines[0] != title || lines[1] == "" || lines[3] != "" {
		return "", digest, fmt.Errorf("not a %s signature body: %q", what, text)
	}
	d, err := hex.DecodeString(lines[2])
	if err != nil || len(d) != 32 || hex.EncodeToString(d) != lines[2] {
		return "", digest, fmt.Errorf("bad %s digest %q", of, lines[2])
	}
	copy(digest[:], d)
	return lines[1], digest, nil
}

// MaxTombstoneNames bounds the entries (erased and held together) one
// tombstone names. An erasure or sweep of more writes several tombstones,
// parts 1 to n of one request, so that a bundle carries only the parts
// that name its entries.
const MaxTombstoneNames = 1000

// Tombstone is the payload of a tombstone entry (docs/FORMAT.md): which
// payloads were erased or expired, and why. It names entries by index and
// leaf hash and holds no personal data.
type Tombstone struct {
	// Reason is "erasure" or "expiry".
	Reason string `json:"reason"`
	// RequestID is the erasure request (erasure), or the sweep id (expiry).
	RequestID string `json:"request_id"`
	// LegalBasis and Ticket of an erasure request, e.g. "GDPR Art. 17(1)(a)".
	LegalBasis string `json:"legal_basis,omitempty"`
	Ticket     string `json:"ticket,omitempty"`
	// Why: the requester's reason, or the classes and periods that expired.
	Why         string           `json:"why,omitempty"`
	RequestedBy string           `json:"requested_by,omitempty"` // API key id
	Erased      []TombstoneEntry `json:"erased"`
	// Held lists entries the request selected but a legal hold kept.
	Held []HeldEntry `json:"held,omitempty"`
	// Part and Parts number the tombstones of one request, from 1; absent
	// in tombstones written before requests were split.
	Part  int `json:"part,omitempty"`
	Parts int `json:"parts,omitempty"`
}

// TombstoneEntry is an erased entry.
type TombstoneEntry struct {
	Index    uint64 `json:"index"`
	LeafHash string `json:"leaf_hash"` // hex
}

// HeldEntry is an entry a hold kept from erasure.
type HeldEntry struct {
	Index   uint64 `json:"index"`
	HoldID  string `json:"hold_id"`
	CaseRef string `json:"case_ref"`
}

// ReceiptSignatureTitle is the first line of a receipt signature body
// (the signing scheme's version; a receipt's own is its format member).
const ReceiptSignatureTitle = "veritrace erasure receipt v1"

const receiptTitle = ReceiptSignatureTitle

// ReceiptSignatureBody is the text the log key signs for an erasure
// receipt: a title line, the origin, and the SHA-256 of the receipt JSON.
// Like a bundle's, it can never pass for a checkpoint.
func ReceiptSignatureBody(origin string, receiptSHA256 [32]byte) string {
	return receiptTitle + "\n" + origin + "\n" + hex.EncodeToString(receiptSHA256[:]) + "\n"
}

// ParseReceiptSignatureBody parses a receipt signature body.
func ParseReceiptSignatureBody(text string) (origin string, digest [32]byte, err error) {
	return parseDigestBody(text, receiptTitle, "receipt", "receipt")
}
