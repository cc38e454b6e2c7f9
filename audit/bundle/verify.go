package bundle

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// Names of the checks Verify runs, in report order.
const (
	CheckSignature      = "bundle signature"
	CheckManifest       = "manifest"
	CheckFiles          = "file digests"
	CheckCheckpoint     = "checkpoint signature"
	CheckHeaders        = "entry headers"
	CheckCommitments    = "payload commitments"
	CheckLeafHashes     = "leaf hashes"
	CheckInclusion      = "inclusion proofs"
	CheckDecoded        = "decoded content"
	CheckReferences     = "version references"
	CheckErasures       = "erasures"
	CheckPinned         = "pinned checkpoint"
	CheckConsistency    = "consistency proof"
	maxFailuresPerCheck = 20
)

// Check is the result of one kind of check over the whole bundle.
type Check struct {
	Name     string
	Passed   int
	Failures []string // at most maxFailuresPerCheck, then a count
	failed   int
	Skipped  string // why the check did not run, if it did not
}

// OK reports whether the check ran and nothing failed.
func (c *Check) OK() bool { return c.failed == 0 && c.Skipped == "" }

// Report is the outcome of Verify.
type Report struct {
	Origin   string
	TreeSize uint64
	Entries  int
	Traces   int
	Checks   []*Check
}

// OK reports whether every check passed.
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK() {
			return false
		}
	}
	return true
}

// Failed returns the names of the checks that did not pass.
func (r *Report) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK() {
			out = append(out, c.Name)
		}
	}
	return out
}

// Write prints the report for a person.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "bundle of %d entries (%d traces) from %s at tree size %d\n", r.Entries, r.Traces, r.Origin, r.TreeSize)
	for _, c := range r.Checks {
		switch {
		case c.Skipped != "":
			fmt.Fprintf(w, "FAIL  %s: not checked: %s\n", c.Name, c.Skipped)
		case c.failed == 0:
			fmt.Fprintf(w, "ok    %s (%d)\n", c.Name, c.Passed)
		default:
			fmt.Fprintf(w, "FAIL  %s (%d ok, %d failed)\n", c.Name, c.Passed, c.failed)
			for _, f := range c.Failures {
				fmt.Fprintf(w, "        %s\n", f)
			}
			if c.failed > len(c.Failures) {
				fmt.Fprintf(w, "        ... %d more\n", c.failed-len(c.Failures))
			}
		}
	}
	if r.OK() {
		fmt.Fprintln(w, "VERIFIED: every check passed")
	} else {
		fmt.Fprintf(w, "NOT VERIFIED: %s failed\n", strings.Join(r.Failed(), ", "))
	}
}

type verifier struct {
	rep    *Report
	checks map[string]*Check
}

func (v *verifier) check(name string) *Check {
	if c := v.checks[name]; c != nil {
		return c
	}
	c := &Check{Name: name}
	v.checks[name] = c
	v.rep.Checks = append(v.rep.Checks, c)
	return c
}

func (v *verifier) pass(name string) { v.check(name).Passed++ }

func (v *verifier) fail(name, format string, args ...any) {
	c := v.check(name)
	c.failed++
	if len(c.Failures) < maxFailuresPerCheck {
		c.Failures = append(c.Failures, fmt.Sprintf(format, args...))
	}
}

func (v *verifier) skip(name, why string) {
	if c := v.check(name); c.Skipped == "" {
		c.Skipped = why
	}
}

// Verify checks a bundle against the log's verifier key, and, when pinned
// is not nil, against a checkpoint the auditor already trusts (a signed
// note). It needs nothing else: no server, no data directory.
func Verify(r io.ReaderAt, size int64, key note.Verifier, pinned []byte) *Report {
	v := &verifier{rep: &Report{}, checks: map[string]*Check{}}
	for _, name := range []string{CheckSignature, CheckManifest, CheckFiles, CheckCheckpoint, CheckHeaders,
		CheckCommitments, CheckLeafHashes, CheckInclusion, CheckDecoded, CheckReferences, CheckErasures} {
		v.check(name)
	}
	if pinned != nil {
		v.check(CheckPinned)
		v.check(CheckConsistency)
	}
	v.run(r, size, key, pinned)
	return v.rep
}

func (v *verifier) run(r io.ReaderAt, size int64, key note.Verifier, pinned []byte) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		v.fail(CheckManifest, "not a zip file: %v", err)
		v.skipAll("the bundle could not be opened")
		return
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		if files[f.Name] != nil {
			v.fail(CheckFiles, "%s appears twice", f.Name)
		}
		files[f.Name] = f
	}
	read := func(name string) ([]byte, error) {
		f := files[name]
		if f == nil {
			return nil, fmt.Errorf("%s is missing", name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, 64<<20))
	}

	// The manifest and its signature.
	mb, err := read(ManifestFile)
	if err != nil {
		v.fail(CheckManifest, "%v", err)
		v.skipAll("there is no manifest")
		return
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil || m.Format != Format {
		v.fail(CheckManifest, "manifest.json is not a %s manifest: %v", Format, err)
		v.skipAll("the manifest could not be read")
		return
	}
	v.pass(CheckManifest)
	v.rep.Origin, v.rep.TreeSize, v.rep.Entries, v.rep.Traces = m.Origin, m.TreeSize, len(m.Entries), len(m.Traces)
	if sig, err := read(SignatureFile); err != nil {
		v.fail(CheckSignature, "%v", err)
	} else if n, err := note.Open(sig, note.VerifierList(key)); err != nil {
		v.fail(CheckSignature, "manifest.sig does not verify with key %s: %v", key.Name(), err)
	} else if origin, digest, err := format.ParseBundleSignatureBody(n.Text); err != nil {
		v.fail(CheckSignature, "%v", err)
	} else if digest != sha256.Sum256(mb) {
		v.fail(CheckSignature, "the signature is for another manifest (signed %x)", digest[:8])
	} else if origin != m.Origin {
		v.fail(CheckSignature, "the signature names origin %q, the manifest %q", origin, m.Origin)
	} else {
		v.pass(CheckSignature)
	}

	// Every file listed, with its digest; nothing unlisted.
	listed := map[string]bool{ManifestFile: true, SignatureFile: true}
	for _, fd := range m.Files {
		listed[fd.Name] = true
		b, err := read(fd.Name)
		if err != nil {
			v.fail(CheckFiles, "%v", err)
			continue
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != fd.SHA256 {
			v.fail(CheckFiles, "%s: SHA-256 %x, manifest says %s", fd.Name, sum[:8], short(fd.SHA256))
			continue
		}
		v.pass(CheckFiles)
	}
	var extra []string
	for name := range files {
		if !listed[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		v.fail(CheckFiles, "%s is not listed in the manifest", name)
	}

	// The checkpoint.
	var cp *format.Checkpoint
	if b, err := read(CheckpointFile); err != nil {
		v.fail(CheckCheckpoint, "%v", err)
	} else if cp, err = format.OpenCheckpoint(b, key); err != nil {
		v.fail(CheckCheckpoint, "%v", err)
		cp = nil
	} else if cp.Origin != m.Origin || cp.Size != m.TreeSize {
		v.fail(CheckCheckpoint, "checkpoint is for %s at size %d, the manifest says %s at %d", cp.Origin, cp.Size, m.Origin, m.TreeSize)
		cp = nil
	} else {
		v.pass(CheckCheckpoint)
	}

	// Every entry.
	tenant := strings.TrimPrefix(m.Origin, key.Name()+"/")
	versions := map[[32]byte]bool{}
	type refs struct {
		index uint64
		refs  format.Refs
	}
	var spanRefs []refs
	erasedLeaf := map[uint64]tlog.Hash{} // erased entries and their leaf hashes
	tombstoned := map[uint64]string{}    // entries named by a tombstone: their leaf hash, hex
	for _, ref := range m.Entries {
		b, err := read(ref.File)
		if err != nil {
			v.fail(CheckHeaders, "entry %d: %v", ref.Index, err)
			continue
		}
		var e Entry
		if err := json.Unmarshal(b, &e); err != nil {
			v.fail(CheckHeaders, "entry %d: %s is not an entry: %v", ref.Index, ref.File, err)
			continue
		}
		h, err := format.ParseHeader(e.Header)
		switch {
		case err != nil:
			v.fail(CheckHeaders, "entry %d: %v", ref.Index, err)
			continue
		case h.Index != ref.Index || e.Index != ref.Index:
			v.fail(CheckHeaders, "entry %d: the header says index %d, the file %d", ref.Index, h.Index, e.Index)
			continue
		case h.Tenant != m.Tenant || h.Tenant != tenant:
			v.fail(CheckHeaders, "entry %d: the header says tenant %q, the bundle is for %q", ref.Index, h.Tenant, m.Tenant)
			continue
		case h.Kind.String() != ref.Kind:
			v.fail(CheckHeaders, "entry %d: the header says kind %s, the manifest %s", ref.Index, h.Kind, ref.Kind)
			continue
		}
		v.pass(CheckHeaders)
		leaf := format.LeafHash(e.Header)
		if leaf != tlog.Hash(e.LeafHash) {
			v.fail(CheckLeafHashes, "entry %d: leaf hash %x, the header hashes to %x", ref.Index, e.LeafHash[:8], leaf[:8])
		} else {
			v.pass(CheckLeafHashes)
		}
		switch {
		case e.Erased:
			v.pass(CheckCommitments) // nothing to open; the header still counts
			erasedLeaf[h.Index] = leaf
		case format.Commitment(e.Salt, e.Payload) != h.Commitment:
			v.fail(CheckCommitments, "entry %d: payload and salt do not match the header's commitment", ref.Index)
		default:
			v.pass(CheckCommitments)
			v.checkDecoded(h, &e)
		}
		if cp == nil {
			v.skip(CheckInclusion, "no valid checkpoint to prove against")
		} else {
			proof := make(tlog.RecordProof, len(e.InclusionProof))
			for i, p := range e.InclusionProof {
				proof[i] = tlog.Hash(p)
			}
			if err := tlog.CheckRecord(proof, int64(cp.Size), cp.Root, int64(h.Index), leaf); err != nil || h.Index >= cp.Size {
				v.fail(CheckInclusion, "entry %d is not proved in the tree of size %d: %v", ref.Index, cp.Size, err)
			} else {
				v.pass(CheckInclusion)
			}
		}
		if h.Kind == format.KindTombstone && !e.Erased {
			var ts format.Tombstone
			if err := json.Unmarshal(e.Payload, &ts); err != nil {
				v.fail(CheckErasures, "tombstone %d does not parse: %v", h.Index, err)
			}
			for _, te := range ts.Erased {
				tombstoned[te.Index] = te.LeafHash
			}
		}
		switch h.Kind {
		case format.KindVersion:
			versions[h.Refs.Ref(format.VersionKind(h.SubKind))] = true
		case format.KindSpan:
			spanRefs = append(spanRefs, refs{h.Index, h.Refs})
		}
	}
	for _, s := range spanRefs {
		for k := format.VersionPrompt; k <= format.VersionPipeline; k++ {
			id := s.refs.Ref(k)
			if id == ([32]byte{}) {
				continue
			}
			if versions[id] {
				v.pass(CheckReferences)
			} else {
				v.fail(CheckReferences, "entry %d references %s version %x, which the bundle does not hold", s.index, k, id[:8])
			}
		}
	}

	for i, leaf := range erasedLeaf {
		switch named, ok := tombstoned[i]; {
		case !ok:
			v.fail(CheckErasures, "entry %d has no payload and no tombstone in the bundle names it", i)
		case named != hex.EncodeToString(leaf[:]):
			v.fail(CheckErasures, "the tombstone names entry %d with another leaf hash", i)
		default:
			v.pass(CheckErasures)
		}
	}

	if pinned != nil {
		v.checkConsistency(&m, read, cp, key, pinned)
	}
}

// checkDecoded checks that the human-readable payload says what the
// payload says.
func (v *verifier) checkDecoded(h *format.Header, e *Entry) {
	var msg, dec proto.Message
	switch h.Kind {
	case format.KindTombstone, format.KindRetention, format.KindHold:
		var want, got bytes.Buffer
		if json.Compact(&want, e.Payload) != nil || json.Compact(&got, e.Decoded) != nil || !bytes.Equal(want.Bytes(), got.Bytes()) {
			v.fail(CheckDecoded, "entry %d: the decoded content differs from the payload", e.Index)
			return
		}
		v.pass(CheckDecoded)
		return
	case format.KindSpan:
		msg, dec = &v1.Span{}, &v1.Span{}
	case format.KindVersion:
		msg, dec = &v1.Version{}, &v1.Version{}
	default:
		v.pass(CheckDecoded)
		return
	}
	if err := proto.Unmarshal(e.Payload, msg); err != nil {
		v.fail(CheckDecoded, "entry %d: the payload does not decode: %v", e.Index, err)
		return
	}
	if err := protojson.Unmarshal(e.Decoded, dec); err != nil || !proto.Equal(msg, dec) {
		v.fail(CheckDecoded, "entry %d: the decoded content differs from the payload", e.Index)
		return
	}
	v.pass(CheckDecoded)
}

func (v *verifier) checkConsistency(m *Manifest, read func(string) ([]byte, error), cp *format.Checkpoint, key note.Verifier, pinned []byte) {
	old, err := format.OpenCheckpoint(pinned, key)
	if err != nil {
		v.fail(CheckPinned, "the pinned checkpoint does not verify: %v", err)
		v.skip(CheckConsistency, "no valid pinned checkpoint")
		return
	}
	if old.Origin != m.Origin {
		v.fail(CheckPinned, "the pinned checkpoint is for %s, the bundle for %s", old.Origin, m.Origin)
		v.skip(CheckConsistency, "the pinned checkpoint is for another log")
		return
	}
	v.pass(CheckPinned)
	if cp == nil {
		v.skip(CheckConsistency, "no valid bundle checkpoint")
		return
	}
	if old.Size == cp.Size {
		if old.Root != cp.Root {
			v.fail(CheckConsistency, "the pinned checkpoint and the bundle's have size %d and different roots: the log forked", cp.Size)
		} else {
			v.pass(CheckConsistency)
		}
		return
	}
	if old.Size == 0 && old.Root == format.EmptyRoot {
		v.pass(CheckConsistency) // the empty tree is a prefix of every tree
		return
	}
	if old.Size > cp.Size {
		v.fail(CheckConsistency, "the pinned checkpoint (size %d) is newer than the bundle's (size %d); export again", old.Size, cp.Size)
		return
	}
	if m.Consistency == nil || m.Consistency.OldSize != old.Size {
		v.fail(CheckConsistency, "the bundle holds no consistency proof from size %d; export with that size", old.Size)
		return
	}
	b, err := read(m.Consistency.File)
	if err != nil {
		v.fail(CheckConsistency, "%v", err)
		return
	}
	var cons ConsistencyProof
	if err := json.Unmarshal(b, &cons); err != nil || cons.OldSize != old.Size || cons.NewSize != cp.Size {
		v.fail(CheckConsistency, "%s is not a proof from %d to %d: %v", m.Consistency.File, old.Size, cp.Size, err)
		return
	}
	proof := make(tlog.TreeProof, len(cons.Proof))
	for i, p := range cons.Proof {
		proof[i] = tlog.Hash(p)
	}
	if err := tlog.CheckTree(proof, int64(cp.Size), cp.Root, int64(old.Size), old.Root); err != nil {
		v.fail(CheckConsistency, "the log at size %d does not extend the pinned checkpoint at size %d: %v", cp.Size, old.Size, err)
		return
	}
	v.pass(CheckConsistency)
}

func (v *verifier) skipAll(why string) {
	for _, c := range v.rep.Checks {
		if c.Passed == 0 && c.failed == 0 {
			c.Skipped = why
		}
	}
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}
