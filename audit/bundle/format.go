package bundle

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Format is the value of Manifest.Format for this version of the format.
const Format = "veritrace-bundle/v1"

// Names of the fixed files of a bundle.
const (
	ManifestFile    = "manifest.json"
	SignatureFile   = "manifest.sig"
	CheckpointFile  = "checkpoint.txt"
	ConsistencyFile = "consistency.json"
	ReportFile      = "report.html"
	EntryDir        = "entries/"
)

// EntryFile is the name of entry index's file.
func EntryFile(index uint64) string { return fmt.Sprintf("%s%020d.json", EntryDir, index) }

// Manifest describes a bundle. Every file but the manifest and its
// signature is listed in Files with its SHA-256.
type Manifest struct {
	Format      string       `json:"format"`
	Origin      string       `json:"origin"`
	Tenant      string       `json:"tenant"`
	LogKey      string       `json:"log_key"` // note verifier key of the log, for reference; verify with a pinned one
	CreatedAt   time.Time    `json:"created_at"`
	Selector    Selector     `json:"selector"`
	TreeSize    uint64       `json:"tree_size"` // size of the checkpoint in checkpoint.txt
	Traces      []string     `json:"traces"`    // hex trace ids, in order
	Entries     []EntryRef   `json:"entries"`
	Consistency *Consistency `json:"consistency,omitempty"`
	Files       []FileDigest `json:"files"`
}

// Selector is what the auditor asked to export.
type Selector struct {
	TraceID   string    `json:"trace_id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	SubjectID string    `json:"subject_id,omitempty"`
	From      time.Time `json:"from,omitzero"`
	To        time.Time `json:"to,omitzero"`
}

// EntryRef lists one entry of the bundle.
type EntryRef struct {
	Index uint64 `json:"index"`
	Kind  string `json:"kind"` // "span", "version"
	File  string `json:"file"`
}

// Consistency names the consistency proof file, present when the auditor
// gave the size of a checkpoint they already hold.
type Consistency struct {
	OldSize uint64 `json:"old_size"`
	File    string `json:"file"`
}

// FileDigest is a file and its SHA-256, hex.
type FileDigest struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// Entry is the content of an entry file.
type Entry struct {
	Index uint64 `json:"index"`
	// Header is the canonical header (docs/FORMAT.md), base64.
	Header []byte `json:"header"`
	// LeafHash is SHA-256(0x00 || header), hex.
	LeafHash Hex `json:"leaf_hash"`
	// Payload and Salt open the header's commitment; absent when Erased.
	Payload []byte `json:"payload,omitempty"`
	Salt    []byte `json:"salt,omitempty"`
	Erased  bool   `json:"erased,omitempty"`
	// InclusionProof proves the leaf in the tree of the bundle's
	// checkpoint: RFC 6962 audit path, hex hashes from the leaf up.
	InclusionProof []Hex `json:"inclusion_proof"`
	// Decoded is the payload as proto JSON (veritrace.v1.Span or Version),
	// for people; the verifier checks it says what Payload says.
	Decoded json.RawMessage `json:"decoded,omitempty"`
}

// ConsistencyProof is the content of the consistency file.
type ConsistencyProof struct {
	OldSize uint64 `json:"old_size"`
	NewSize uint64 `json:"new_size"`
	Proof   []Hex  `json:"proof"`
}

// Hex is a hash written as lowercase hex in JSON.
type Hex tlog.Hash

func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h[:])) }

func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil || len(d) != tlog.HashSize {
		return fmt.Errorf("want %d bytes of hex, got %q", tlog.HashSize, s)
	}
	copy(h[:], d)
	return nil
}
