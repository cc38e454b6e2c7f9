package bundle

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Format is the value of Manifest.Format for the bundles this package
// writes. Bundles of the earlier formats still verify: FormatV2 ones lack
// only the range of a time-range export (so they cannot show that it is
// complete), FormatV1 ones more (docs/BUNDLE.md).
const (
	Format   = "veritrace-bundle/v3"
	FormatV2 = "veritrace-bundle/v2"
	FormatV1 = "veritrace-bundle/v1"
)

// Limits of a bundle. The verifier refuses a bundle past any of them
// before reading the files concerned, and the writer refuses to write one,
// so that an honest bundle always verifies and a hostile one costs
// bounded work.
const (
	// MaxEntries is the most entries (and traces) a bundle holds.
	MaxEntries = 1_000_000
	// MaxManifestBytes bounds manifest.json.
	MaxManifestBytes = 512 << 20
	// MaxEntryFileBytes bounds one entry file. A payload accepted over the
	// API is at most 2 MiB (a span received over OTLP), so its entry file
	// (payload in base64 plus its proto JSON, at worst six bytes for each
	// byte of text) stays below it.
	MaxEntryFileBytes = 32 << 20
	// MaxReportBytes bounds report.html.
	MaxReportBytes = 256 << 20
	// MaxSmallFileBytes bounds manifest.sig, checkpoint.txt and
	// consistency.json.
	MaxSmallFileBytes = 64 << 10
	// MaxBundleBytes bounds the uncompressed size of all files together.
	MaxBundleBytes = 32 << 30
	// MaxProofHashes bounds an inclusion proof (at most 64 hashes for any
	// tree) and a consistency proof (at most 128).
	MaxInclusionHashes   = 64
	MaxConsistencyHashes = 128
	// MaxRangeHeaders bounds the headers of range.bin (the entries of a
	// time range, and one on each side), and MaxRangeFileBytes its size:
	// a header is at most 308 bytes, plus 2 of length.
	MaxRangeHeaders   = 10_000_000
	MaxRangeFileBytes = MaxRangeHeaders * 310
)

// Names of the fixed files of a bundle.
const (
	ManifestFile    = "manifest.json"
	SignatureFile   = "manifest.sig"
	CheckpointFile  = "checkpoint.txt"
	ConsistencyFile = "consistency.json"
	ReportFile      = "report.html"
	RangeFile       = "range.bin"
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
	Range       *Range       `json:"range,omitempty"` // format 3: a time range's headers
	Files       []FileDigest `json:"files"`
}

// Range (format 3) is present when the selector is a time range (from,
// to, or both) whose other conditions all lie in the headers (trace,
// version, kind): RangeFile then holds the header of every entry from
// First-1 (when First > 0) to End (when End < the tree size), so that a
// verifier can check that the bundle holds every trace of the range. The
// entries of the range are [First, End); Proof proves the last header of
// the file in the tree of the bundle's checkpoint, and through the hash
// chain every header before it.
type Range struct {
	First uint64 `json:"first"`
	End   uint64 `json:"end"`
	File  string `json:"file"`
	Proof []Hex  `json:"proof"`
}

// IsTimeRange reports whether a format 3 bundle of the selector carries
// a Range: when the selector has from or to and no condition that only a
// payload can show (session, subject, model, errors only), which headers
// cannot prove complete.
func (s *Selector) IsTimeRange() bool {
	return (!s.From.IsZero() || !s.To.IsZero()) && !s.hasPayloadConditions()
}

// Selector is what the auditor asked to export: every condition given.
// From and To bound the time the ledger appended a span (the header's
// appended_at), in [From, To).
type Selector struct {
	TraceID   string    `json:"trace_id,omitempty"`   // 32 lowercase hex digits
	SessionID string    `json:"session_id,omitempty"` //
	SubjectID string    `json:"subject_id,omitempty"` //
	From      time.Time `json:"from,omitzero"`        // RFC 3339
	To        time.Time `json:"to,omitzero"`          // RFC 3339
	// Format 2 and later:
	VersionID  string `json:"version_id,omitempty"`  // 64 lowercase hex digits
	Kind       string `json:"kind,omitempty"`        // span kind: "generation", "embedding", ... "other"
	Model      string `json:"model,omitempty"`       // request or response model
	ErrorsOnly bool   `json:"errors_only,omitempty"` // only spans whose status is an error
}

// EntryRef lists one entry of the bundle.
type EntryRef struct {
	Index uint64 `json:"index"`
	Kind  string `json:"kind"` // the header's entry kind: "span", "version" or "tombstone"
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
	// or the JSON of a tombstone, for people; the verifier checks it says
	// what Payload says.
	Decoded json.RawMessage `json:"decoded,omitempty"`
	// Undecodable (format 2) says why a payload that is present has no
	// Decoded form (DecodePayload); the verifier checks that it has none.
	Undecodable string `json:"undecodable,omitempty"`
}

// ConsistencyProof is the content of the consistency file.
type ConsistencyProof struct {
	OldSize uint64 `json:"old_size"`
	NewSize uint64 `json:"new_size"`
	Proof   []Hex  `json:"proof"`
	// OldCheckpoint (format 2) is the log's signed checkpoint of OldSize,
	// so that the proof can be checked without a pinned checkpoint.
	OldCheckpoint string `json:"old_checkpoint,omitempty"`
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
