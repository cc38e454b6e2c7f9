package bundle

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// Names of the checks Verify runs, in report order.
const (
	CheckSignature   = "bundle signature"
	CheckManifest    = "manifest"
	CheckFiles       = "file digests"
	CheckCheckpoint  = "checkpoint signature"
	CheckHeaders     = "entry headers"
	CheckCommitments = "payload commitments"
	CheckLeafHashes  = "leaf hashes"
	CheckInclusion   = "inclusion proofs"
	CheckDecoded     = "decoded content"
	CheckIdentity    = "header matches payload"
	CheckReferences  = "version references"
	CheckErasures    = "erasures"
	CheckTraces      = "traces"
	CheckOTLP        = "OTLP sources"
	CheckPinned      = "pinned checkpoint"
	CheckConsistency = "consistency proof"

	maxFailuresPerCheck = 20
)

// Check is the result of one kind of check over the whole bundle.
type Check struct {
	Name     string
	Passed   int
	Failures []string // at most maxFailuresPerCheck, then a count
	// Notes are facts an auditor should know that do not fail the check,
	// e.g. an entry whose payload has no decoded form.
	Notes   []string
	failed  int
	Skipped string // why the check did not run, if it did not
}

// OK reports whether the check ran and nothing failed.
func (c *Check) OK() bool { return c.failed == 0 && c.Skipped == "" }

// Report is the outcome of Verify. Origin and the failure texts come from
// the bundle: print them with Write, which escapes them.
type Report struct {
	Format   string
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

// Write prints the report for a person. Everything taken from the bundle
// is escaped (Printable), so that a bundle cannot drive a terminal.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintln(w, r.Headline())
	for _, c := range r.Checks {
		writeCheck(w, c)
	}
	if r.OK() {
		fmt.Fprintln(w, "VERIFIED: every check passed")
	} else {
		fmt.Fprintf(w, "NOT VERIFIED: %s\n", r.Summary())
	}
}

// Headline is the report's first line: what the bundle holds, by its
// manifest, once the manifest's signature and structure are checked;
// otherwise that the manifest could not be trusted, and why, with none of
// its figures. Text from the bundle is escaped (Printable).
func (r *Report) Headline() string {
	var skipped *Check
	for _, c := range r.Checks {
		if c.Name != CheckSignature && c.Name != CheckManifest || c.OK() {
			continue
		}
		if len(c.Failures) > 0 {
			return fmt.Sprintf("bundle of unknown content: its manifest could not be trusted (%s: %s)", c.Name, Printable(c.Failures[0]))
		}
		if skipped == nil {
			skipped = c
		}
	}
	switch {
	case skipped != nil:
		return fmt.Sprintf("bundle of unknown content: its manifest could not be trusted (%s: not checked: %s)", skipped.Name, Printable(skipped.Skipped))
	case r.Format == "":
		return "bundle of unknown content: its manifest could not be trusted"
	}
	return fmt.Sprintf("bundle of %d entries (%d traces) from %s at tree size %d (%s)", r.Entries, r.Traces, Printable(r.Origin), r.TreeSize, Printable(r.Format))
}

// Summary says, for a report that did not verify, which checks failed and
// which were not checked (they could not run, which fails them too): "bundle
// signature failed; 15 other checks not checked (the manifest is not
// signed by the key)". Check names and reasons are escaped.
func (r *Report) Summary() string { return summarize(r.Checks) }

// summarize says which of checks failed and which were not checked, in the
// words of Report.Summary; "every check passed" when none did either.
func summarize(checks []*Check) string {
	var failed, notRun []string
	why := ""
	for _, c := range checks {
		switch {
		case c.Skipped != "":
			notRun = append(notRun, c.Name)
			if why == "" {
				why = Printable(c.Skipped)
			} else if why != Printable(c.Skipped) {
				why = "reasons above"
			}
		case c.failed > 0:
			failed = append(failed, c.Name)
		}
	}
	var parts []string
	if len(failed) > 0 {
		parts = append(parts, strings.Join(failed, ", ")+" failed")
	}
	switch {
	case len(notRun) == 0:
	case len(notRun) <= 3:
		parts = append(parts, fmt.Sprintf("%s not checked (%s)", strings.Join(notRun, ", "), why))
	case len(failed) > 0:
		parts = append(parts, fmt.Sprintf("%d other checks not checked (%s)", len(notRun), why))
	default:
		parts = append(parts, fmt.Sprintf("%d checks not checked (%s)", len(notRun), why))
	}
	if len(parts) == 0 {
		return "every check passed"
	}
	return strings.Join(parts, "; ")
}

// writeCheck prints one check's verdict, its failures and notes, escaped.
func writeCheck(w io.Writer, c *Check) {
	switch {
	case c.Skipped != "":
		// Not run, so not passed either: the bundle does not verify, but
		// this check found nothing wrong ("--", not "FAIL").
		fmt.Fprintf(w, "--    %s: not checked: %s\n", c.Name, Printable(c.Skipped))
	case c.failed == 0:
		fmt.Fprintf(w, "ok    %s (%d)\n", c.Name, c.Passed)
	default:
		fmt.Fprintf(w, "FAIL  %s (%d ok, %d failed)\n", c.Name, c.Passed, c.failed)
		for _, f := range c.Failures {
			fmt.Fprintf(w, "        %s\n", Printable(f))
		}
		if c.failed > len(c.Failures) {
			fmt.Fprintf(w, "        ... %d more\n", c.failed-len(c.Failures))
		}
	}
	for _, n := range c.Notes {
		fmt.Fprintf(w, "      note: %s\n", Printable(n))
	}
}

// Printable returns s with every character that is not a graphic Unicode
// character (control characters, terminal escapes, bidirectional and
// other format characters, invalid UTF-8) escaped as in Go source (\x1b,
// \u202e), so that it shows as one line of plain text. Failure texts quote
// names from the bundle with %q, which escapes them unambiguously.
func Printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsGraphic(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

type verifier struct {
	rep    *Report
	checks map[string]*Check
	key    note.Verifier
	files  map[string]*zipMember // the zip's members by name, the first of each name
	zip    io.ReaderAt           // the bundle, for checkDescriptor
}

// zipMember is a member of the zip and, once the manifest is checked, the
// SHA-256 the manifest lists for it ("" when it lists none): one look-up
// of an entry file's name gives both.
type zipMember struct {
	f      *zip.File
	sha256 string // lowercase hex
}

// listedSHA256 is the SHA-256 the manifest lists for the zip's member
// name ("" when it lists none, or the zip holds no such member).
func (v *verifier) listedSHA256(name string) string {
	if mb := v.files[name]; mb != nil {
		return mb.sha256
	}
	return ""
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

func (v *verifier) note(name, format string, args ...any) {
	c := v.check(name)
	if len(c.Notes) < maxFailuresPerCheck {
		c.Notes = append(c.Notes, fmt.Sprintf(format, args...))
	}
}

// skip marks a check as not run, unless it already failed: a failure
// found stays reported as a failure, with its failures, whatever later
// stops the check from going on.
func (v *verifier) skip(name, why string) {
	if c := v.check(name); c.Skipped == "" && c.failed == 0 {
		c.Skipped = why
	}
}

// skipAll marks every check that neither passed nor failed as not run.
func (v *verifier) skipAll(why string) {
	for _, c := range v.rep.Checks {
		if c.Passed == 0 && c.failed == 0 {
			c.Skipped = why
		}
	}
}

// Verify checks a bundle against the log's verifier key, and, when pinned
// is not nil, against a checkpoint the auditor already trusts (a signed
// note). It needs nothing else: no server, no data directory.
//
// It checks the manifest's signature before anything else, and the
// manifest's structure before any entry, and refuses a bundle past the
// limits (MaxEntries and the other Max constants) before reading the files
// concerned, so that an unsigned or hostile bundle costs little. Entries
// are checked in parallel on GOMAXPROCS goroutines, which have ended when
// Verify returns.
func Verify(r io.ReaderAt, size int64, key note.Verifier, pinned []byte) *Report {
	v := &verifier{rep: &Report{}, checks: map[string]*Check{}, key: key}
	for _, name := range []string{CheckSignature, CheckManifest, CheckFiles, CheckCheckpoint, CheckHeaders,
		CheckCommitments, CheckLeafHashes, CheckInclusion, CheckDecoded, CheckIdentity, CheckReferences,
		CheckErasures, CheckTraces, CheckOTLP, CheckSelector, CheckRange} {
		v.check(name)
	}
	if pinned != nil {
		v.check(CheckPinned)
		v.check(CheckConsistency)
	}
	v.run(r, size, pinned)
	return v.rep
}

func (v *verifier) run(r io.ReaderAt, size int64, pinned []byte) {
	zr, err := zip.NewReader(r, size)
	if err == nil {
		err = checkContainer(r, size, zr)
	}
	if err != nil {
		v.fail(CheckManifest, "not a zip file: %v", err)
		v.skipAll("the bundle could not be opened")
		return
	}
	zr.RegisterDecompressor(zip.Deflate, newInflater)
	if len(zr.File) > MaxEntries+6 {
		v.fail(CheckFiles, "%d files, more than a bundle may hold", len(zr.File))
		v.skipAll("the bundle holds too many files")
		return
	}
	v.files = make(map[string]*zipMember, len(zr.File))
	v.zip = r
	members := make([]zipMember, len(zr.File))
	byFile := make([]*zipMember, len(zr.File)) // each file's member: a repeated name's first
	var total uint64
	for i, f := range zr.File {
		if mb := v.files[f.Name]; mb != nil {
			v.fail(CheckFiles, "%q appears twice", f.Name)
			byFile[i] = mb
			continue
		}
		members[i].f = f
		v.files[f.Name], byFile[i] = &members[i], &members[i]
		total += f.UncompressedSize64
	}
	if total > MaxBundleBytes {
		v.fail(CheckFiles, "%d bytes uncompressed, more than the limit of %d", total, uint64(MaxBundleBytes))
		v.skipAll("the bundle is too large")
		return
	}

	// The signature, before anything else is read.
	m, ok := v.signedManifest()
	if !ok {
		return
	}
	v.rep.Format, v.rep.Origin, v.rep.TreeSize, v.rep.Entries, v.rep.Traces = m.Format, m.Origin, m.TreeSize, len(m.Entries), len(m.Traces)
	if !v.checkManifest(m) {
		v.skipAll("the manifest is not valid")
		return
	}

	// Every file of the zip must be listed; the listed ones are hashed as
	// they are read below. (checkManifest saw each name listed once, with
	// 64 hex digits, so a member with none is not listed.)
	for _, fd := range m.Files {
		if mb := v.files[fd.Name]; mb != nil {
			mb.sha256 = fd.SHA256
		}
	}
	for i, f := range zr.File {
		if byFile[i].sha256 == "" && f.Name != ManifestFile && f.Name != SignatureFile {
			v.fail(CheckFiles, "%q is not listed in the manifest", f.Name)
		}
	}
	digest := func(name string, sum [32]byte) {
		if want := v.listedSHA256(name); hex.EncodeToString(sum[:]) != want {
			v.fail(CheckFiles, "%s: SHA-256 %x, the manifest says %q", name, sum[:8], short(want))
		} else {
			v.pass(CheckFiles)
		}
	}

	// The checkpoint.
	var cp *format.Checkpoint
	if b, sum, err := v.readFile(CheckpointFile, MaxSmallFileBytes, false); err != nil {
		v.fail(CheckFiles, "%v", err)
		v.fail(CheckCheckpoint, "%v", err)
	} else {
		digest(CheckpointFile, sum)
		if cp, err = format.OpenCheckpoint(b, v.key); err != nil {
			v.fail(CheckCheckpoint, "%v", err)
			cp = nil
		} else if cp.Origin != m.Origin || cp.Size != m.TreeSize {
			v.fail(CheckCheckpoint, "checkpoint is for %q at size %d, the manifest says %q at %d", cp.Origin, cp.Size, m.Origin, m.TreeSize)
			cp = nil
		} else {
			v.pass(CheckCheckpoint)
		}
	}
	if cp == nil {
		v.skip(CheckInclusion, "no valid checkpoint to prove against")
	}

	// Every entry, in parallel, with the report hashed beside them; the
	// results are merged in manifest order.
	type hashed struct {
		sum [32]byte
		err error
	}
	report := make(chan hashed, 1)
	go func() {
		sum, err := v.hashFile(ReportFile, MaxReportBytes, false)
		report <- hashed{sum, err}
	}()
	results := v.entries(m, cp)
	var passed [len(entryChecks)]int
	for i := range results {
		res := &results[i]
		for _, f := range res.fails {
			v.fail(f.check, "%s", f.msg)
		}
		for _, n := range res.notes {
			v.note(n.check, "%s", n.msg)
		}
		for c, ok := range res.passed {
			if ok {
				passed[c]++
			}
		}
	}
	for c, n := range passed {
		v.check(entryChecks[c]).Passed += n
	}
	v.crossChecks(m, results)
	v.checkSelectorHolds(m, results)
	v.checkTimeRange(m, cp, results)

	// The other files.
	if r := <-report; r.err != nil {
		v.fail(CheckFiles, "%v", r.err)
	} else {
		digest(ReportFile, r.sum)
	}
	var cons *ConsistencyProof
	if m.Consistency != nil {
		if b, sum, err := v.readFile(ConsistencyFile, MaxSmallFileBytes, false); err != nil {
			v.fail(CheckFiles, "%v", err)
		} else {
			digest(ConsistencyFile, sum)
			cons = &ConsistencyProof{}
			if err := parseConsistency(b, cons); err != nil {
				cons = nil
				v.fail(CheckConsistency, "%s is not a consistency proof: %v", ConsistencyFile, err)
			}
		}
	}
	v.checkConsistency(m, cp, cons, pinned)
}

// signedManifest reads manifest.json and checks its signature; it parses
// the manifest only once the signature holds.
func (v *verifier) signedManifest() (*Manifest, bool) {
	sig, _, err := v.readFile(SignatureFile, MaxSmallFileBytes, false)
	if err != nil {
		v.fail(CheckSignature, "%v", err)
		v.skipAll("the manifest's signature could not be read")
		return nil, false
	}
	n, err := note.Open(sig, note.VerifierList(v.key))
	if err != nil {
		v.fail(CheckSignature, "%s does not verify with key %s: %v", SignatureFile, v.key.Name(), err)
		v.skipAll("the manifest is not signed by the key")
		return nil, false
	}
	origin, want, err := format.ParseBundleSignatureBody(n.Text)
	if err != nil {
		v.fail(CheckSignature, "%v", err)
		v.skipAll("the manifest is not signed by the key")
		return nil, false
	}
	mb, ok := v.readManifest(want)
	if !ok {
		return nil, false
	}
	m := &Manifest{}
	if err := parseManifest(mb, m); err != nil {
		v.pass(CheckSignature)
		v.fail(CheckManifest, "manifest.json does not parse: %v", err)
		v.skipAll("the manifest could not be read")
		return nil, false
	}
	if origin != m.Origin {
		v.fail(CheckSignature, "the signature names origin %q, the manifest %q", origin, m.Origin)
		v.skipAll("the manifest is not signed for its origin")
		return nil, false
	}
	v.pass(CheckSignature)
	return m, true
}

// manifestOnePassBytes bounds a manifest read in one pass.
const manifestOnePassBytes = 1 << 20

// readManifest reads manifest.json if its SHA-256 is want. Any bundle's
// manifest.sig verifies with the key, so a signature alone proves nothing
// about the manifest that comes with it: a manifest that declares more
// than manifestOnePassBytes is hashed as it streams, holding none of it,
// and read into memory only once it is the signed one (a second pass).
// A smaller one is read, hashed and compared in one pass. So a manifest
// that is not the signed one costs at most manifestOnePassBytes of memory
// however large it declares itself.
func (v *verifier) readManifest(want [32]byte) ([]byte, bool) {
	unreadable := func(err error) ([]byte, bool) {
		v.fail(CheckSignature, "%v", err)
		v.skipAll("the manifest could not be read")
		return nil, false
	}
	unsigned := func() ([]byte, bool) {
		v.fail(CheckSignature, "the signature is for another manifest (signed %x)", want[:8])
		v.skipAll("the manifest is not signed by the key")
		return nil, false
	}
	if mb := v.files[ManifestFile]; mb == nil || mb.f.UncompressedSize64 > manifestOnePassBytes {
		digest, err := v.hashFile(ManifestFile, MaxManifestBytes, false)
		if err != nil {
			return unreadable(err)
		}
		if digest != want {
			return unsigned()
		}
	}
	mb, digest, err := v.readFile(ManifestFile, MaxManifestBytes, false)
	if err != nil {
		return unreadable(err)
	}
	if digest != want { // or, hashed first, it changed while it was read
		return unsigned()
	}
	return mb, true
}

// checkManifest checks the manifest's structure: what it lists, once each,
// and nothing a bundle does not hold.
func (v *verifier) checkManifest(m *Manifest) bool {
	bad := func(format string, args ...any) bool {
		v.fail(CheckManifest, format, args...)
		return false
	}
	if m.Format != Format && m.Format != FormatV2 && m.Format != FormatV1 {
		return bad("format %q, want %q, %q or %q", m.Format, Format, FormatV2, FormatV1)
	}
	tenant, ok := strings.CutPrefix(m.Origin, v.key.Name()+"/")
	if !ok || m.Tenant != tenant || format.ValidateTenant(tenant) != nil {
		return bad("origin %q and tenant %q: the origin must be %s/<tenant>", m.Origin, m.Tenant, v.key.Name())
	}
	if m.TreeSize == 0 {
		return bad("tree size 0")
	}
	if err := checkSelector(m); err != nil {
		return bad("selector: %v", err)
	}
	if len(m.Entries) == 0 || len(m.Entries) > MaxEntries {
		return bad("%d entries; a bundle holds 1 to %d", len(m.Entries), MaxEntries)
	}
	if len(m.Traces) == 0 || len(m.Traces) > MaxEntries {
		return bad("%d traces; a bundle holds 1 to %d", len(m.Traces), MaxEntries)
	}
	traces := make(map[string]bool, len(m.Traces))
	for _, t := range m.Traces {
		if !isHex(t, 16) || t == strings.Repeat("0", 32) {
			return bad("trace id %q is not 32 lowercase hex digits", t)
		}
		if traces[t] {
			return bad("trace %s is listed twice", t)
		}
		traces[t] = true
	}
	want := make(map[string]bool, len(m.Entries)+3)
	seen := make(map[uint64]bool, len(m.Entries))
	for _, e := range m.Entries {
		switch {
		case seen[e.Index]:
			return bad("entry %d is listed twice", e.Index)
		case e.Index >= m.TreeSize:
			return bad("entry %d is beyond the tree size %d", e.Index, m.TreeSize)
		case !isEntryFile(e.File, e.Index):
			return bad("entry %d: file %q, want %q", e.Index, e.File, EntryFile(e.Index))
		case e.Kind != format.KindSpan.String() && e.Kind != format.KindVersion.String() && e.Kind != format.KindTombstone.String():
			return bad("entry %d: kind %q; a bundle holds span, version and tombstone entries", e.Index, e.Kind)
		}
		seen[e.Index] = true
		want[e.File] = true
	}
	want[CheckpointFile], want[ReportFile] = true, true
	if c := m.Consistency; c != nil {
		if c.File != ConsistencyFile || c.OldSize == 0 || c.OldSize > m.TreeSize {
			return bad("consistency: file %q from size %d; want %q from a size in 1..%d", c.File, c.OldSize, ConsistencyFile, m.TreeSize)
		}
		want[ConsistencyFile] = true
	}
	if r := m.Range; r != nil {
		switch {
		case m.Format != Format:
			return bad("range: not part of %s", m.Format)
		case !m.Selector.IsTimeRange():
			return bad("range: the selector is not a time range whose other conditions lie in the headers")
		case r.File != RangeFile || r.First >= r.End || r.End > m.TreeSize:
			return bad("range: file %q of entries [%d, %d); want %q of a range in [0, %d) holding at least one entry", r.File, r.First, r.End, RangeFile, m.TreeSize)
		case len(r.Proof) > MaxInclusionHashes:
			return bad("range: an inclusion proof of %d hashes", len(r.Proof))
		}
		want[RangeFile] = true
	}
	names := make(map[string]bool, len(m.Files))
	for _, fd := range m.Files {
		switch {
		case names[fd.Name]:
			return bad("file %q is listed twice", fd.Name)
		case !want[fd.Name]:
			return bad("file %q is listed but is not an entry file, %s, %s, %s or %s", fd.Name, CheckpointFile, ReportFile, ConsistencyFile, RangeFile)
		case !isHex(fd.SHA256, 32):
			return bad("file %q: SHA-256 %q is not 64 lowercase hex digits", fd.Name, fd.SHA256)
		}
		names[fd.Name] = true
	}
	if len(names) != len(want) {
		for name := range want {
			if !names[name] {
				return bad("file %q is not listed", name)
			}
		}
	}
	v.pass(CheckManifest)
	return true
}

// isEntryFile reports whether name is EntryFile(index), without building it.
func isEntryFile(name string, index uint64) bool {
	var buf [len(EntryDir) + 20 + len(".json")]byte
	b := append(buf[:0], EntryDir...)
	var digits [20]byte // %020d: a uint64 has at most 20 digits
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + index%10)
		index /= 10
	}
	b = append(append(b, digits[:]...), ".json"...)
	return string(b) == name
}

// spanKinds are the selector's names of span kinds, by header sub-kind.
var spanKinds = []string{1: "generation", 2: "embedding", 3: "retrieval", 4: "tool", 5: "agent", 6: "chain", 7: "guardrail", 8: "other"}

// SpanKindName returns the selector name of a span kind (1..8).
func SpanKindName(k uint8) string {
	if int(k) < len(spanKinds) {
		return spanKinds[k]
	}
	return ""
}

func checkSelector(m *Manifest) error {
	s := m.Selector
	if m.Format == FormatV1 && (s.VersionID != "" || s.Kind != "" || s.Model != "" || s.ErrorsOnly) {
		return fmt.Errorf("version_id, kind, model and errors_only are not part of %s", FormatV1)
	}
	if s.TraceID != "" && !isHex(s.TraceID, 16) {
		return fmt.Errorf("trace_id %q is not 32 lowercase hex digits", s.TraceID)
	}
	if s.VersionID != "" && !isHex(s.VersionID, 32) {
		return fmt.Errorf("version_id %q is not 64 lowercase hex digits", s.VersionID)
	}
	if s.Kind != "" {
		found := false
		for _, k := range spanKinds[1:] {
			found = found || s.Kind == k
		}
		if !found {
			return fmt.Errorf("kind %q is not a span kind", s.Kind)
		}
	}
	if !s.From.IsZero() && !s.To.IsZero() && !s.From.Before(s.To) {
		return errors.New("from is not before to")
	}
	if s == (Selector{}) {
		return errors.New("it names no condition; an export names at least one")
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// The checks made entry by entry, in the order of entryResult.passed.
var entryChecks = [...]string{CheckFiles, CheckHeaders, CheckLeafHashes, CheckCommitments, CheckInclusion, CheckDecoded, CheckIdentity}

const (
	ecFiles = iota
	ecHeaders
	ecLeaf
	ecCommitment
	ecInclusion
	ecDecoded
	ecIdentity
)

type finding struct{ check, msg string }

// entryResult is what checking one entry found, and what the checks
// across entries need of it.
type entryResult struct {
	passed [len(entryChecks)]bool
	fails  []finding
	notes  []finding
	// Known when the header parsed:
	header *format.Header
	leaf   tlog.Hash
	erased bool
	// Of a span whose payload parsed: what it says of the selector's
	// payload conditions.
	payload payloadMatch
	// Of a tombstone whose payload parsed: the entries it names.
	names []format.TombstoneEntry
	// Of a span ingested over OTLP whose source passed its own checks:
	// the resource entry it refers to (otlpRef), or, for a resource entry,
	// the SHA-256 of what it holds (otlpResource).
	otlpRef, otlpResource []byte
	otlpPassed            bool
}

func (r *entryResult) fail(check, format string, args ...any) {
	r.fails = append(r.fails, finding{check, fmt.Sprintf(format, args...)})
}

// entryChunk is how many consecutive entries a goroutine takes at a time:
// neighbours share most of their inclusion proofs (provenPath).
const entryChunk = 16

// entries checks every entry on GOMAXPROCS goroutines, each taking the
// next entryChunk entries in manifest order.
func (v *verifier) entries(m *Manifest, cp *format.Checkpoint) []entryResult {
	results := make([]entryResult, len(m.Entries))
	workers := min(runtime.GOMAXPROCS(0), len(m.Entries))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &entryWork{}
			if cp != nil {
				w.path = newProvenPath(cp.Size, cp.Root)
			}
			for {
				start := int(next.Add(entryChunk)) - entryChunk
				if start >= len(m.Entries) {
					return
				}
				for i := start; i < min(start+entryChunk, len(m.Entries)); i++ {
					v.entry(m, m.Entries[i], cp, w, &results[i])
				}
			}
		}()
	}
	wg.Wait()
	return results
}

// entryWork is what one goroutine checking entries reuses from entry to
// entry: nothing of it outlives the entry being checked (entryResult holds
// no part of it).
type entryWork struct {
	file  []byte           // the entry file's bytes
	entry Entry            // the file parsed
	proof tlog.RecordProof // its inclusion proof
	path  *provenPath      // nil without a valid checkpoint
}

// entry checks one entry file. It may run on any goroutine, with its own
// w: it reads v's files and key only.
func (v *verifier) entry(m *Manifest, ref EntryRef, cp *format.Checkpoint, w *entryWork, res *entryResult) {
	mb := v.files[ref.File]
	b, sum, err := v.readMemberInto(w.file, mb, ref.File, MaxEntryFileBytes, true)
	if err != nil {
		res.fail(CheckFiles, "%v", err)
		res.fail(CheckHeaders, "entry %d: %v", ref.Index, err)
		return
	}
	if cap(b) <= 1<<20 { // a larger buffer is not kept
		w.file = b
	}
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	if want := mb.sha256; string(hexSum[:]) != want {
		res.fail(CheckFiles, "%s: SHA-256 %x, the manifest says %q", ref.File, sum[:8], short(want))
	} else {
		res.passed[ecFiles] = true
	}
	e := &w.entry
	decodedAt, err := parseEntryDeferred(b, e)
	if err != nil {
		decodedAt, err = -1, parseEntry(b, e) // parseEntry's verdict and error
	}
	if err != nil {
		res.fail(CheckHeaders, "entry %d: %s is not an entry file: %v", ref.Index, ref.File, err)
		return
	}
	if decodedAt < 0 {
		v.checkEntry(m, ref, cp, w, res)
		return
	}
	// The decoded value's syntax was left to its comparison with the
	// payload's decoded form; where that did not settle it, it is checked
	// now, and an entry file parseEntry refuses is reported as above and
	// nothing else of it counts.
	filesPassed, filesFails := res.passed[ecFiles], len(res.fails)
	if !v.checkEntry(m, ref, cp, w, res) {
		if err := checkDeferred(b, decodedAt, e.Decoded); err != nil {
			*res = entryResult{fails: res.fails[:filesFails]}
			res.passed[ecFiles] = filesPassed
			res.fail(CheckHeaders, "entry %d: %s is not an entry file: %v", ref.Index, ref.File, err)
		}
	}
}

// checkEntry checks a parsed entry file (w.entry) and reports whether its
// decoded value was found equal to the payload's decoded form
// (validDecoded).
func (v *verifier) checkEntry(m *Manifest, ref EntryRef, cp *format.Checkpoint, w *entryWork, res *entryResult) (decodedValid bool) {
	e := &w.entry
	h, err := format.ParseHeader(e.Header)
	switch {
	case err != nil:
		res.fail(CheckHeaders, "entry %d: %v", ref.Index, err)
		return false
	case h.Index != ref.Index || e.Index != ref.Index:
		res.fail(CheckHeaders, "entry %d: the header says index %d, the file %d", ref.Index, h.Index, e.Index)
		return false
	case h.Tenant != m.Tenant:
		res.fail(CheckHeaders, "entry %d: the header says tenant %q, the bundle is for %q", ref.Index, h.Tenant, m.Tenant)
		return false
	case h.Kind.String() != ref.Kind:
		res.fail(CheckHeaders, "entry %d: the header says kind %s, the manifest %s", ref.Index, h.Kind, ref.Kind)
		return false
	case len(e.InclusionProof) > MaxInclusionHashes:
		res.fail(CheckHeaders, "entry %d: an inclusion proof of %d hashes", ref.Index, len(e.InclusionProof))
		return false
	}
	res.passed[ecHeaders] = true
	res.header = h
	res.leaf = format.LeafHash(e.Header)
	if res.leaf != tlog.Hash(e.LeafHash) {
		res.fail(CheckLeafHashes, "entry %d: leaf hash %x, the header hashes to %x", ref.Index, e.LeafHash[:8], res.leaf[:8])
	} else {
		res.passed[ecLeaf] = true
	}
	if cp != nil {
		w.proof = w.proof[:0]
		for _, p := range e.InclusionProof {
			w.proof = append(w.proof, tlog.Hash(p))
		}
		if err := w.path.check(w.proof, h.Index, res.leaf); err != nil || h.Index >= cp.Size {
			res.fail(CheckInclusion, "entry %d is not proved in the tree of size %d: %v", ref.Index, cp.Size, err)
		} else {
			res.passed[ecInclusion] = true
		}
	}
	if e.Erased {
		res.erased = true
		if e.Payload != nil || e.Salt != nil || e.Decoded != nil || e.Undecodable != "" {
			res.fail(CheckCommitments, "entry %d is marked erased but carries a payload, salt or decoded content", ref.Index)
			return false
		}
		// Nothing to open or decode; the header still counts.
		res.passed[ecCommitment], res.passed[ecDecoded], res.passed[ecIdentity] = true, true, true
		return false
	}
	if len(e.Salt) != format.SaltSize || format.Commitment(e.Salt, e.Payload) != h.Commitment {
		res.fail(CheckCommitments, "entry %d: payload and salt do not match the header's commitment", ref.Index)
		return false
	}
	res.passed[ecCommitment] = true
	return v.checkPayload(m, h, e, res)
}

// checkPayload runs the decoded-content and identity checks of an entry
// whose payload opened its commitment.
//
// It reports whether e.Decoded was found equal to the payload's decoded
// form as the verifier renders it (validDecoded), which settles its
// syntax; the decoded form of a tombstone, retention or hold entry, which
// is only compacted JSON, never settles it.
func (v *verifier) checkPayload(m *Manifest, h *format.Header, e *Entry, res *entryResult) (decodedValid bool) {
	if jsonPayload(h.Kind) {
		want, err := DecodePayload(h.Kind, e.Payload)
		v.checkDecodedForm(m, h, e, res, err, want)
		if h.Kind == format.KindTombstone {
			ts, err := parseTombstone(e.Payload)
			if err != nil {
				res.fail(CheckIdentity, "tombstone %d: the payload is not a tombstone: %v", h.Index, err)
				return false
			}
			if !(ts.Reason == "erasure" && h.SubKind == format.TombstoneErasure || ts.Reason == "expiry" && h.SubKind == format.TombstoneExpiry) {
				res.fail(CheckIdentity, "tombstone %d: reason %q, the header's sub-kind %d", h.Index, ts.Reason, h.SubKind)
				return false
			}
			res.names = ts.Erased
		}
		res.passed[ecIdentity] = true
		return false
	}
	bp := jsonBufs.Get().(*[]byte)
	msg, want, err := parsePayloadJSON(h.Kind, e.Payload, (*bp)[:0])
	v.checkDecodedForm(m, h, e, res, err, want)
	decodedValid = err == nil && validDecoded(e.Decoded, want)
	if cap(want) <= 1<<20 { // a larger buffer is not kept
		*bp = want[:0]
	}
	jsonBufs.Put(bp)
	if msg == nil {
		res.fail(CheckIdentity, "entry %d: %v", h.Index, err)
		return decodedValid
	}
	if sp, ok := msg.(*v1.Span); ok {
		res.payload = m.Selector.matchPayload(sp)
	}
	if why := headerMismatch(h, msg); why != "" {
		res.fail(CheckIdentity, "entry %d: %s", h.Index, why)
		return decodedValid
	}
	res.passed[ecIdentity] = true
	if sp, ok := msg.(*v1.Span); ok {
		if why := checkOTLPSource(h, sp.GetOtlp(), res); why != "" {
			res.fail(CheckOTLP, "entry %d: %s", h.Index, why)
		}
	}
	return decodedValid
}

// checkOTLPSource checks a span entry's OTLP source against its header
// (docs/BUNDLE.md, check "OTLP sources"): the item's own ids are the
// header's, and a log record's or resource entry's span id is the one
// derived from what it holds. It records what the check across entries
// needs, and says what is wrong ("" when nothing is).
func checkOTLPSource(h *format.Header, src *v1.OtlpSource, res *entryResult) string {
	form := FormOf(src)
	switch form {
	case OTLPNone:
		return ""
	case OTLPLegacy:
		res.otlpPassed = true
		return ""
	case OTLPMixed:
		return "its OTLP source sets fields of more than one form"
	case OTLPResource:
		sum := sha256.Sum256(src.GetResourceScope())
		if err := resourceScopeShape(src.GetResourceScope()); err != nil {
			return err.Error()
		}
		if want := ResourceEntrySpanID(h.TraceID[:], sum[:]); h.SpanID != want || h.ParentSpanID != [8]byte{} || h.SubKind != uint8(v1.SpanKind_SPAN_KIND_OTHER) {
			return fmt.Sprintf("a resource entry must be a root of kind OTHER with span id %x (derived from its trace and content)", want)
		}
		res.otlpResource, res.otlpPassed = sum[:], true
		return ""
	}
	ref := src.GetResourceScopeSha256()
	if len(ref) != sha256.Size {
		return fmt.Sprintf("resource_scope_sha256 is %d bytes, not 32", len(ref))
	}
	if form == OTLPSpan {
		ids, err := wireBytesFields(src.GetSpan(), 1, 2, 4) // trace_id, span_id, parent_span_id
		if err != nil {
			return fmt.Sprintf("the OTLP span does not parse: %v", err)
		}
		var parent [8]byte
		copy(parent[:], ids[2])
		if !bytes.Equal(ids[0], h.TraceID[:]) || !bytes.Equal(ids[1], h.SpanID[:]) || len(ids[2]) != 0 && len(ids[2]) != 8 || parent != h.ParentSpanID {
			return fmt.Sprintf("the OTLP span's ids %x, %x, %x are not the header's", ids[0], ids[1], ids[2])
		}
	} else {
		ids, err := wireBytesFields(src.GetLogRecord(), 9, 10) // trace_id, span_id
		if err != nil {
			return fmt.Sprintf("the OTLP log record does not parse: %v", err)
		}
		if !bytes.Equal(ids[0], h.TraceID[:]) || !bytes.Equal(ids[1], h.ParentSpanID[:]) {
			return fmt.Sprintf("the OTLP log record's trace and span ids %x, %x are not the header's trace and parent span ids", ids[0], ids[1])
		}
		if want := LogEntrySpanID(ref, src.GetLogRecord()); h.SpanID != want {
			return fmt.Sprintf("a log record's span id must be %x (derived from its content), not %x", want, h.SpanID)
		}
	}
	res.otlpRef, res.otlpPassed = ref, true
	return ""
}

// checkDecodedForm checks an entry's decoded form: present and equal to
// the payload's (want, see decodedEqual) when the payload is decodable
// (decodeErr nil), and absent, with the reason, when it is not.
func (v *verifier) checkDecodedForm(m *Manifest, h *format.Header, e *Entry, res *entryResult, decodeErr error, want []byte) {
	switch {
	case decodeErr == nil && e.Decoded == nil:
		res.fail(CheckDecoded, "entry %d: the payload is decodable but the entry has no decoded content", h.Index)
	case decodeErr == nil && e.Undecodable != "":
		res.fail(CheckDecoded, "entry %d: the payload is decodable but the entry says it is not", h.Index)
	case decodeErr == nil && !decodedEqual(m.Format, want, e.Decoded):
		res.fail(CheckDecoded, "entry %d: the decoded content differs from the payload", h.Index)
	case decodeErr == nil:
		res.passed[ecDecoded] = true
	case m.Format == FormatV1:
		res.fail(CheckDecoded, "entry %d: the payload is not decodable: %v", h.Index, decodeErr)
	case e.Decoded != nil || e.Undecodable == "":
		res.fail(CheckDecoded, "entry %d: the payload is not decodable (%v) but the entry does not say so", h.Index, decodeErr)
	default:
		res.passed[ecDecoded] = true
		res.notes = append(res.notes, finding{CheckDecoded, fmt.Sprintf("entry %d has no decoded form: %v", h.Index, decodeErr)})
	}
}

// decodedEqual reports whether decoded is the payload's decoded form want
// (DecodePayload's compact text) as docs/BUNDLE.md check 9 requires: the
// same bytes once the white space outside strings is removed. For a span,
// version or access entry that makes decoded the one canonical proto JSON
// text every export writes. Parsing decoded and comparing messages would
// also pass texts that protojson reads as the payload but ordinary JSON
// readers do not (an int64 as a number past 2^53, which reads as a
// neighbour; "2e1" for 20), and verifiers built on other proto JSON
// parsers, such as the console's, would disagree on them.
//
// Bundles of formats 1 and 2 may also hold want as encoding/json wrote it
// before format 3: with <, >, & and U+2028, U+2029 in strings escaped as
// \u003c, \u003e, \u0026, \u2028, \u2029, which every JSON reader reads as
// those characters.
func decodedEqual(bundleFormat string, want, decoded []byte) bool {
	if bytes.Equal(want, decoded) || equalCompact(want, decoded) { // exporters write it compact
		return true
	}
	if bundleFormat != FormatV1 && bundleFormat != FormatV2 || !bytes.ContainsAny(want, "<>&\u2028\u2029") {
		return false
	}
	var escaped bytes.Buffer
	json.HTMLEscape(&escaped, want)
	return equalCompact(escaped.Bytes(), decoded)
}

// jsonBufs are pooled buffers for the decoded forms the verifier renders.
var jsonBufs = sync.Pool{New: func() any { return new([]byte) }}

// equalCompact reports whether two JSON texts are the same bytes once the
// white space outside strings (space, tab, line feed, carriage return) is
// removed from both: what comparing their json.Compact forms reports,
// without building them. Both must be valid JSON.
func equalCompact(a, b []byte) bool {
	i, j := 0, 0
	var st jsonStrings
	for {
		if !st.in {
			for i < len(a) && isJSONSpace(a[i]) {
				i++
			}
			for j < len(b) && isJSONSpace(b[j]) {
				j++
			}
		}
		if i == len(a) || j == len(b) {
			return i == len(a) && j == len(b)
		}
		c := a[i]
		if c != b[j] {
			return false
		}
		st.next(c)
		i++
		j++
	}
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// jsonStrings follows a valid JSON text byte by byte and tells whether the
// next byte lies inside a string (where white space is significant).
type jsonStrings struct{ in, escaped bool }

// next takes the next byte of the text.
func (s *jsonStrings) next(c byte) {
	switch {
	case s.escaped:
		s.escaped = false
	case s.in && c == '\\':
		s.escaped = true
	case c == '"':
		s.in = !s.in
	}
}

// headerMismatch compares the ids, kind and version references of a span
// or version entry's header with its payload's, and says how they differ
// ("" when they agree).
func headerMismatch(h *format.Header, msg proto.Message) string {
	switch p := msg.(type) {
	case *v1.Span:
		var parent [8]byte
		copy(parent[:], p.GetParentSpanId())
		switch {
		case h.SubKind != uint8(p.GetKind()):
			return fmt.Sprintf("the header says span kind %d, the payload %d", h.SubKind, p.GetKind())
		case !bytes.Equal(h.TraceID[:], p.GetTraceId()):
			return fmt.Sprintf("the header says trace id %x, the payload %x", h.TraceID, p.GetTraceId())
		case !bytes.Equal(h.SpanID[:], p.GetSpanId()):
			return fmt.Sprintf("the header says span id %x, the payload %x", h.SpanID, p.GetSpanId())
		case len(p.GetParentSpanId()) != 0 && len(p.GetParentSpanId()) != 8 || h.ParentSpanID != parent:
			return fmt.Sprintf("the header says parent span id %x, the payload %x", h.ParentSpanID, p.GetParentSpanId())
		}
		refs := p.GetVersions()
		for i, s := range []string{refs.GetPrompt(), refs.GetPolicy(), refs.GetPipeline()} {
			var want [32]byte
			if s != "" {
				if !isHex(s, 32) {
					return fmt.Sprintf("the payload's %s version reference %q is not a version id", format.VersionKind(i+1), s)
				}
				hex.Decode(want[:], []byte(s))
			}
			if h.Refs[i] != want {
				return fmt.Sprintf("the header's %s version reference %x differs from the payload's %q", format.VersionKind(i+1), h.Refs[i][:8], s)
			}
		}
	case *v1.Version:
		k := format.VersionKind(h.SubKind)
		id := format.VersionID(k, p.GetName(), p.GetLabel(), p.GetMediaType(), p.GetContent())
		var refs format.Refs
		refs[k-1] = id
		switch {
		case h.SubKind != uint8(p.GetKind()):
			return fmt.Sprintf("the header says version kind %d, the payload %d", h.SubKind, p.GetKind())
		case h.Refs != refs:
			return fmt.Sprintf("the header's references are not the payload's version id %x alone", id[:8])
		case h.TraceID != [16]byte{} || h.SpanID != [8]byte{} || h.ParentSpanID != [8]byte{}:
			return "a version entry's header has a trace, span or parent id"
		case p.GetId() != "" || p.GetIndex() != 0 || p.GetRegisteredAt() != nil || p.GetDecodeError() != "":
			return "the payload sets id, index, registered_at or decode_error"
		}
	case *v1.AccessRecord:
		if h.SubKind != uint8(p.GetOutcome()) {
			return fmt.Sprintf("the header says outcome %d, the payload %d", h.SubKind, p.GetOutcome())
		}
	}
	return ""
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// crossChecks runs the checks that relate entries to each other and to the
// manifest: version references, erasures and traces. Every entry must be
// in the bundle for a reason: a span of a listed trace, a version a span
// references, or a tombstone naming an erased entry.
func (v *verifier) crossChecks(m *Manifest, results []entryResult) {
	type versionRef struct {
		kind format.VersionKind
		id   [32]byte
	}
	versions := map[versionRef]uint64{} // the version entries: their index
	referenced := map[versionRef]bool{}
	named := map[uint64]string{} // entries named by a tombstone: their leaf hash, hex
	spans := map[string]int{}
	for i := range results {
		r := &results[i]
		switch h := r.header; {
		case h == nil:
		case h.Kind == format.KindVersion:
			k := format.VersionKind(h.SubKind)
			versions[versionRef{k, h.Refs.Ref(k)}] = h.Index
		case h.Kind == format.KindTombstone:
			for _, te := range r.names {
				named[te.Index] = te.LeafHash
			}
		}
	}
	listed := make(map[string]bool, len(m.Traces))
	for _, t := range m.Traces {
		listed[t] = true
	}
	usedTombstone := map[uint64]bool{}
	inBundle := map[uint64]bool{}
	for i := range results {
		r := &results[i]
		h := r.header
		if h == nil {
			continue
		}
		inBundle[h.Index] = true
		if h.Kind == format.KindSpan {
			trace := hex.EncodeToString(h.TraceID[:])
			if !listed[trace] {
				v.fail(CheckTraces, "span entry %d belongs to trace %s, which the manifest does not list", h.Index, trace)
			}
			spans[trace]++
			for k := format.VersionPrompt; k <= format.VersionPipeline; k++ {
				id := h.Refs.Ref(k)
				at, ok := versions[versionRef{k, id}]
				switch {
				case id == [32]byte{}:
				case !ok:
					v.fail(CheckReferences, "entry %d references %s version %x, which the bundle does not hold", h.Index, k, id[:8])
				case at > h.Index:
					v.fail(CheckReferences, "entry %d references %s version %x, which was registered after it (entry %d)", h.Index, k, id[:8], at)
				default:
					referenced[versionRef{k, id}] = true
					v.pass(CheckReferences)
				}
			}
		}
		leaf, isNamed := named[h.Index]
		switch {
		case !r.erased && isNamed:
			v.fail(CheckErasures, "a tombstone names entry %d as erased, but the bundle holds its payload", h.Index)
		case !r.erased:
		case !isNamed:
			v.fail(CheckErasures, "entry %d has no payload and no tombstone in the bundle names it", h.Index)
		case leaf != hex.EncodeToString(r.leaf[:]):
			v.fail(CheckErasures, "the tombstone names entry %d with another leaf hash", h.Index)
		default:
			usedTombstone[h.Index] = true
			v.pass(CheckErasures)
		}
	}
	for i := range results {
		r := &results[i]
		h := r.header
		if h == nil {
			continue
		}
		switch h.Kind {
		case format.KindVersion:
			if k := format.VersionKind(h.SubKind); !referenced[versionRef{k, h.Refs.Ref(k)}] {
				v.fail(CheckReferences, "version entry %d is referenced by no span of the bundle", h.Index)
			}
		case format.KindTombstone:
			uses := false
			for _, te := range r.names {
				uses = uses || usedTombstone[te.Index]
			}
			if !uses && !r.erased {
				v.fail(CheckErasures, "tombstone %d names no erased entry of the bundle", h.Index)
			}
		}
	}
	for _, t := range m.Traces {
		if spans[t] == 0 {
			v.fail(CheckTraces, "trace %s is listed, but the bundle holds none of its spans", t)
		} else {
			v.pass(CheckTraces)
		}
	}
	v.crossCheckOTLP(results)
}

// crossCheckOTLP checks that every OTLP span and log record of the bundle
// has the resource entry it refers to: in the same trace, with the derived
// span id, holding exactly the bytes of the digest, or erased (its payload
// gone with the trace's subject or its retention period).
func (v *verifier) crossCheckOTLP(results []entryResult) {
	type key struct {
		trace [16]byte
		span  [8]byte
	}
	byID := map[key]*entryResult{}
	for i := range results {
		if r := &results[i]; r.header != nil && r.header.Kind == format.KindSpan {
			byID[key{r.header.TraceID, r.header.SpanID}] = r
		}
	}
	for i := range results {
		r := &results[i]
		if !r.otlpPassed {
			continue
		}
		if r.otlpRef == nil {
			v.pass(CheckOTLP)
			continue
		}
		h := r.header
		res := byID[key{h.TraceID, ResourceEntrySpanID(h.TraceID[:], r.otlpRef)}]
		switch {
		case res == nil:
			v.fail(CheckOTLP, "entry %d refers to the resource entry of its trace holding %x, which the bundle does not hold", h.Index, r.otlpRef[:8])
		case res.erased:
			v.pass(CheckOTLP)
		case !bytes.Equal(res.otlpResource, r.otlpRef):
			v.fail(CheckOTLP, "entry %d refers to resource entry %d for content %x, which holds other content", h.Index, res.header.Index, r.otlpRef[:8])
		default:
			v.pass(CheckOTLP)
		}
	}
}

// checkConsistency checks the bundle's consistency proof, if it has one,
// against the old checkpoint it carries (format 2), and the bundle's
// checkpoint against the auditor's pinned one, if given.
func (v *verifier) checkConsistency(m *Manifest, cp *format.Checkpoint, cons *ConsistencyProof, pinned []byte) {
	var proof tlog.TreeProof
	if m.Consistency != nil {
		v.check(CheckConsistency)
		switch {
		case cons == nil:
			v.fail(CheckConsistency, "the manifest names a consistency proof that could not be read")
		case cons.OldSize != m.Consistency.OldSize || cons.NewSize != m.TreeSize:
			v.fail(CheckConsistency, "%s is a proof from %d to %d, the manifest says from %d to %d", ConsistencyFile, cons.OldSize, cons.NewSize, m.Consistency.OldSize, m.TreeSize)
		case len(cons.Proof) > MaxConsistencyHashes:
			v.fail(CheckConsistency, "a consistency proof of %d hashes", len(cons.Proof))
		default:
			proof = make(tlog.TreeProof, len(cons.Proof))
			for i, p := range cons.Proof {
				proof[i] = tlog.Hash(p)
			}
		}
		switch {
		case proof == nil:
		case cp == nil:
			v.skip(CheckConsistency, "no valid bundle checkpoint")
		case m.Format == FormatV1:
			if cons.OldCheckpoint != "" {
				v.fail(CheckConsistency, "%s carries an old checkpoint, which is not part of %s", ConsistencyFile, FormatV1)
			} else if pinned == nil {
				v.fail(CheckConsistency, "a %s bundle's consistency proof can be checked only against a pinned checkpoint of size %d", FormatV1, cons.OldSize)
			}
		default:
			old, err := format.OpenCheckpoint([]byte(cons.OldCheckpoint), v.key)
			switch {
			case err != nil:
				v.fail(CheckConsistency, "the old checkpoint in %s: %v", ConsistencyFile, err)
			case old.Origin != m.Origin || old.Size != cons.OldSize:
				v.fail(CheckConsistency, "the old checkpoint in %s is for %s at size %d, the proof is from %s at %d", ConsistencyFile, old.Origin, old.Size, m.Origin, cons.OldSize)
			default:
				if err := tlog.CheckTree(proof, int64(cp.Size), cp.Root, int64(old.Size), old.Root); err != nil {
					v.fail(CheckConsistency, "the log at size %d does not extend its checkpoint at size %d: %v", cp.Size, old.Size, err)
				} else {
					v.pass(CheckConsistency)
				}
			}
		}
	}
	if pinned == nil {
		return
	}
	old, err := format.OpenCheckpoint(pinned, v.key)
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
	switch {
	case cp == nil:
		v.skip(CheckConsistency, "no valid bundle checkpoint")
	case old.Size == cp.Size && old.Root != cp.Root:
		v.fail(CheckConsistency, "the pinned checkpoint and the bundle's have size %d and different roots: the log forked", cp.Size)
	case old.Size == cp.Size:
		v.pass(CheckConsistency)
	case old.Size == 0 && old.Root == format.EmptyRoot:
		v.pass(CheckConsistency) // the empty tree is a prefix of every tree
	case old.Size > cp.Size:
		v.fail(CheckConsistency, "the pinned checkpoint (size %d) is newer than the bundle's (size %d); export again", old.Size, cp.Size)
	case m.Consistency == nil || m.Consistency.OldSize != old.Size || proof == nil:
		v.fail(CheckConsistency, "the bundle holds no consistency proof from size %d; export with that size", old.Size)
	default:
		if err := tlog.CheckTree(proof, int64(cp.Size), cp.Root, int64(old.Size), old.Root); err != nil {
			v.fail(CheckConsistency, "the log at size %d does not extend the pinned checkpoint at size %d: %v", cp.Size, old.Size, err)
		} else {
			v.pass(CheckConsistency)
		}
	}
}
