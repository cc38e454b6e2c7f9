package bundle

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// Names of the checks of an erasure receipt (docs/RETENTION.md, "The
// receipt", steps 1 to 4), in report order. The console's check in the
// browser uses the same names.
const (
	CheckReceiptSignature  = "receipt signature"
	CheckReceiptCheckpoint = "receipt checkpoint"
	CheckReceiptParts      = "tombstone parts"
	CheckReceiptCounts     = "counts"
)

// Receipt formats (docs/RETENTION.md).
const (
	ReceiptFormatV1 = "veritrace-erasure-receipt/v1"
	ReceiptFormatV2 = "veritrace-erasure-receipt/v2"
)

// Limits on a receipt file, which is untrusted input.
const (
	// MaxReceiptBytes bounds a receipt file. A format 2 receipt grows by
	// about 100 bytes per 1000 entries; a format 1 receipt lists every
	// entry (about 100 bytes each).
	MaxReceiptBytes = 64 << 20
	// MaxReceiptParts bounds the tombstone parts a receipt may name
	// (100 million entries): each is one entry to fetch and check.
	MaxReceiptParts = 100_000
)

// Receipt is an erasure receipt as read from its file (both formats).
type Receipt struct {
	Format      string
	RequestID   string
	Origin      string
	Tenant      string
	Selector    string
	LegalBasis  string
	Ticket      string
	RequestedBy string
	RequestedAt time.Time
	CompletedAt time.Time
	// ErasedCount and HeldCount: format 2 says them; for format 1 they
	// are the lengths of Erased and Held.
	ErasedCount uint64
	HeldCount   uint64
	// Tombstones are the request's tombstone parts, part 1 first. Format 1
	// names them by index only (LeafHash empty).
	Tombstones []format.TombstoneEntry
	Checkpoint string
	// Erased and Held are format 1's lists.
	Erased []format.TombstoneEntry
	Held   []format.HeldEntry
}

// ReceiptPart is a tombstone entry, as a server's GetEntry or an evidence
// bundle gives it, with the evidence that it is in the log.
type ReceiptPart struct {
	Header, Payload, Salt []byte
	// Proof is the entry's inclusion proof into Checkpoint.
	Proof []tlog.Hash
	// Checkpoint is the signed checkpoint Proof leads to: empty for the
	// receipt's own, else a later one of the same log, with Consistency,
	// the proof that it extends the receipt's.
	Checkpoint  []byte
	Consistency []tlog.Hash
}

// PartSource returns the tombstone entry at a log index, with its proof
// into the receipt's checkpoint rc or a later checkpoint. CheckReceipt
// checks everything it returns.
type PartSource func(index uint64, rc *format.Checkpoint) (*ReceiptPart, error)

// ReceiptReport is the outcome of CheckReceipt. The receipt's fields and
// the failure texts come from the file: print them with Write, which
// escapes them.
type ReceiptReport struct {
	Receipt *Receipt // set once the signature holds and the JSON parsed
	// Checks are the four checks in order, each passed, failed or not
	// checked (Skipped says why: an earlier check failed, or no tombstone
	// entries were given).
	Checks []*Check
	// PartsChecked is false when no source of tombstone entries was given:
	// steps 3 and 4 did not run (Checks says so) and OK judges steps 1
	// and 2 alone.
	PartsChecked bool
}

// OK reports whether every check that was asked for ran and passed: all
// four, or, without a source of tombstone entries, the signature and the
// checkpoint.
func (r *ReceiptReport) OK() bool {
	for _, c := range r.Checks {
		if !c.OK() && (r.PartsChecked || c.Name == CheckReceiptSignature || c.Name == CheckReceiptCheckpoint) {
			return false
		}
	}
	return true
}

// Failed returns the names of the checks that ran and failed; a check that
// was not checked is not among them (Summary names those).
func (r *ReceiptReport) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if c.failed > 0 {
			out = append(out, c.Name)
		}
	}
	return out
}

// Summary is the report's verdict after its first word, in the words of
// Report.Summary: which checks failed and which were not checked, and why
// ("receipt signature failed; receipt checkpoint, tombstone parts, counts
// not checked (the receipt's signature does not hold)"). For a report
// that is OK it says what the verdict covers. Reasons are escaped.
func (r *ReceiptReport) Summary() string {
	switch {
	case !r.OK():
		return summarize(r.Checks)
	case r.PartsChecked:
		return "every check passed"
	}
	return "the log key signed this receipt and its checkpoint; its tombstone parts were not checked (give the tombstone entries: an evidence bundle or the server)"
}

// Verdict is the report's last line: VERIFIED when every check ran and
// passed, SIGNED when the signature and checkpoint passed and no tombstone
// entries were given, NOT VERIFIED otherwise; then Summary.
func (r *ReceiptReport) Verdict() string {
	switch {
	case !r.OK():
		return "NOT VERIFIED: " + r.Summary()
	case r.PartsChecked:
		return "VERIFIED: " + r.Summary()
	}
	return "SIGNED: " + r.Summary()
}

// Write prints the report for a person, escaping everything taken from
// the receipt (Printable): a line of what the receipt says, once its
// signature holds; a line a check (as Report.Write: "ok", "FAIL" or "--"
// for not checked); then Verdict.
func (r *ReceiptReport) Write(w io.Writer) {
	if rc := r.Receipt; rc == nil {
		fmt.Fprintln(w, "receipt of unknown content: its signature does not hold or it could not be read")
	} else {
		ticket := ""
		if rc.Ticket != "" {
			ticket = ", ticket " + Printable(rc.Ticket)
		}
		fmt.Fprintf(w, "erasure receipt %s (%s) of %s, tenant %s: %s erasure under %s%s, completed %s; %d erased, %d held, %d tombstone parts\n",
			Printable(rc.RequestID), Printable(rc.Format), Printable(rc.Origin), Printable(rc.Tenant), Printable(rc.Selector),
			Printable(rc.LegalBasis), ticket, rc.CompletedAt.UTC().Format(time.RFC3339), rc.ErasedCount, rc.HeldCount, len(rc.Tombstones))
	}
	for _, c := range r.Checks {
		writeCheck(w, c)
	}
	fmt.Fprintln(w, r.Verdict())
}

// ParseReceiptFile splits a receipt file into the receipt's JSON bytes
// and its signature (a signed note). It reads both forms a receipt is
// saved in: the JSON on one line, then the signature ("veritrace erase
// --receipt"), and the console's download, a JSON object whose members
// receipt_json and signature hold them (and receipt, the same receipt for
// reading, which is ignored: the signature covers receipt_json's bytes).
func ParseReceiptFile(file []byte) (receiptJSON, sig []byte, err error) {
	if len(file) > MaxReceiptBytes {
		return nil, nil, fmt.Errorf("%d bytes, more than a receipt file may hold (%d)", len(file), MaxReceiptBytes)
	}
	if i := bytes.IndexByte(file, '\n'); i >= 0 && bytes.HasPrefix(file[i+1:], []byte(format.ReceiptSignatureTitle+"\n")) {
		return file[:i], file[i+1:], nil
	}
	p := &jsonParser{b: file}
	p.ws()
	var rj, s string
	err = p.fields(map[string]func() error{
		"receipt":      func() error { return p.skip(0) },
		"receipt_json": func() (err error) { rj, err = p.str(); return },
		"signature":    func() (err error) { s, err = p.str(); return },
	}, "receipt_json", "signature")
	if err == nil {
		err = p.end()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("not a receipt file (the receipt's JSON on one line, then its signature; or the console's download): %w", err)
	}
	return []byte(rj), []byte(s), nil
}

// CheckReceipt checks an erasure receipt file (ParseReceiptFile) against
// the log's verifier key, following docs/RETENTION.md: (1) the signature
// over the receipt's exact bytes, (2) its checkpoint, and, when parts is
// not nil, (3) each tombstone part it names, fetched from parts, and (4)
// the counts the parts add up to. Receipts of both formats are read; a
// format 1 receipt's lists must be exactly what its parts name.
//
// It checks the signature before it parses the receipt, and refuses a
// receipt past MaxReceiptBytes or MaxReceiptParts before any part is
// fetched. It calls parts once per part, in order, on the calling
// goroutine.
func CheckReceipt(file []byte, key note.Verifier, parts PartSource) *ReceiptReport {
	v := &verifier{rep: &Report{}, checks: map[string]*Check{}, key: key}
	for _, name := range []string{CheckReceiptSignature, CheckReceiptCheckpoint, CheckReceiptParts, CheckReceiptCounts} {
		v.check(name)
	}
	rep := &ReceiptReport{PartsChecked: parts != nil}
	defer func() { rep.Checks = v.rep.Checks }()

	// Step 1: the signature, then the receipt it covers.
	rj, sig, err := ParseReceiptFile(file)
	if err != nil {
		v.fail(CheckReceiptSignature, "%v", err)
		v.skipAll("the receipt could not be read")
		return rep
	}
	n, err := note.Open(sig, note.VerifierList(key))
	if err != nil {
		v.fail(CheckReceiptSignature, "the signature does not verify with the log key %s: %v", key.Name(), err)
		v.skipAll("the receipt's signature does not hold")
		return rep
	}
	origin, digest, err := format.ParseReceiptSignatureBody(n.Text)
	switch {
	case err != nil:
		v.fail(CheckReceiptSignature, "the signed text is not a receipt signature: %v", err)
	case digest != sha256.Sum256(rj):
		v.fail(CheckReceiptSignature, "the signature is for another receipt: it signs SHA-256 %x, the receipt's bytes hash to %x", digest[:8], sha256.Sum256(rj))
	}
	if v.checks[CheckReceiptSignature].failed > 0 {
		v.skipAll("the receipt's signature does not hold")
		return rep
	}
	rc, err := parseReceipt(rj)
	if err != nil {
		v.fail(CheckReceiptSignature, "the signed receipt is not a receipt: %v", err)
		v.skipAll("the receipt could not be read")
		return rep
	}
	if rc.Origin != origin {
		v.fail(CheckReceiptSignature, "the signature names the log %q, the receipt %q", origin, rc.Origin)
		v.skipAll("the receipt's signature does not hold")
		return rep
	}
	rep.Receipt = rc
	v.pass(CheckReceiptSignature)

	// Step 2: the checkpoint covers every part.
	cp, err := format.OpenCheckpoint([]byte(rc.Checkpoint), key)
	switch {
	case err != nil:
		v.fail(CheckReceiptCheckpoint, "%v", err)
	case cp.Origin != rc.Origin:
		v.fail(CheckReceiptCheckpoint, "the checkpoint is of %q, the receipt of %q", cp.Origin, rc.Origin)
	default:
		for k, t := range rc.Tombstones {
			if t.Index >= cp.Size {
				v.fail(CheckReceiptCheckpoint, "part %d is entry %d, not below the checkpoint's tree size %d", k+1, t.Index, cp.Size)
			}
		}
	}
	if v.checks[CheckReceiptCheckpoint].failed > 0 {
		v.skipAll("the receipt's checkpoint does not hold")
		return rep
	}
	v.pass(CheckReceiptCheckpoint)

	if parts == nil {
		v.skipAll("needs the tombstone entries (an evidence bundle that carries them, or the server)")
		return rep
	}
	// Step 3: every part.
	pc := &partChecker{v: v, rc: rc, cp: cp, later: map[string]*format.Checkpoint{}}
	var erased []format.TombstoneEntry
	var held []format.HeldEntry
	named := map[uint64]bool{}
	dup := false
	for k, t := range rc.Tombstones {
		ts := pc.part(k+1, t, parts)
		if ts == nil {
			continue
		}
		v.pass(CheckReceiptParts)
		for _, e := range ts.Erased {
			dup = dup || named[e.Index]
			named[e.Index] = true
		}
		for _, h := range ts.Held {
			dup = dup || named[h.Index]
			named[h.Index] = true
		}
		erased = append(erased, ts.Erased...)
		held = append(held, ts.Held...)
	}
	if v.checks[CheckReceiptParts].failed > 0 {
		v.skip(CheckReceiptCounts, "not every tombstone part holds")
		return rep
	}
	// Step 4: what the parts name adds up to the receipt's counts.
	if uint64(len(erased)) != rc.ErasedCount {
		v.fail(CheckReceiptCounts, "the parts name %d erased entries, the receipt says %d", len(erased), rc.ErasedCount)
	}
	if uint64(len(held)) != rc.HeldCount {
		v.fail(CheckReceiptCounts, "the parts name %d held entries, the receipt says %d", len(held), rc.HeldCount)
	}
	if dup {
		v.fail(CheckReceiptCounts, "the parts name an entry more than once")
	}
	if rc.Format == ReceiptFormatV1 {
		for i := range min(len(erased), len(rc.Erased)) {
			if erased[i] != rc.Erased[i] {
				v.fail(CheckReceiptCounts, "erased entry %d of the receipt is entry %d (leaf hash %q), the parts name entry %d (%q)", i+1, rc.Erased[i].Index, short(rc.Erased[i].LeafHash), erased[i].Index, short(erased[i].LeafHash))
				break
			}
		}
		for i := range min(len(held), len(rc.Held)) {
			if held[i] != rc.Held[i] {
				v.fail(CheckReceiptCounts, "held entry %d of the receipt is entry %d, the parts name entry %d (or another hold)", i+1, rc.Held[i].Index, held[i].Index)
				break
			}
		}
	}
	if v.checks[CheckReceiptCounts].failed == 0 {
		v.pass(CheckReceiptCounts)
	}
	return rep
}

// partChecker checks the tombstone parts of one receipt.
type partChecker struct {
	v     *verifier
	rc    *Receipt
	cp    *format.Checkpoint
	later map[string]*format.Checkpoint // later checkpoints already checked, by note
}

// part checks part k (from 1) of the receipt and returns its tombstone, or
// nil after recording why it does not hold.
func (pc *partChecker) part(k int, t format.TombstoneEntry, parts PartSource) *format.Tombstone {
	fail := func(msg string, args ...any) *format.Tombstone {
		pc.v.fail(CheckReceiptParts, "part %d (entry %d): %s", k, t.Index, fmt.Sprintf(msg, args...))
		return nil
	}
	p, err := parts(t.Index, pc.cp)
	if err != nil {
		return fail("%v", err)
	}
	if len(p.Payload) > MaxEntryFileBytes || len(p.Header) > MaxEntryFileBytes {
		return fail("an entry of more than %d bytes", MaxEntryFileBytes)
	}
	h, err := format.ParseHeader(p.Header)
	switch {
	case err != nil:
		return fail("%v", err)
	case h.Index != t.Index:
		return fail("the entry's header says index %d", h.Index)
	case h.Kind != format.KindTombstone || h.SubKind != format.TombstoneErasure:
		return fail("the entry is a %s (sub-kind %d), not an erasure tombstone", h.Kind, h.SubKind)
	case h.Tenant != pc.rc.Tenant:
		return fail("the entry is of tenant %q, the receipt of %q", h.Tenant, pc.rc.Tenant)
	}
	leaf := format.LeafHash(p.Header)
	if t.LeafHash != "" && hex.EncodeToString(leaf[:]) != t.LeafHash {
		return fail("its leaf hash is %x, the receipt says %q", leaf[:8], short(t.LeafHash))
	}
	cp, err := pc.checkpoint(p)
	if err != nil {
		return fail("%v", err)
	}
	if len(p.Proof) > MaxInclusionHashes {
		return fail("an inclusion proof of %d hashes", len(p.Proof))
	}
	if err := tlog.CheckRecord(p.Proof, int64(cp.Size), cp.Root, int64(t.Index), leaf); err != nil {
		return fail("not proved in the tree of size %d: %v", cp.Size, err)
	}
	if len(p.Salt) != format.SaltSize || format.Commitment(p.Salt, p.Payload) != h.Commitment {
		return fail("the payload and salt do not match the header's commitment")
	}
	ts, err := parseTombstone(p.Payload)
	if err != nil {
		return fail("the payload is not a tombstone: %v", err)
	}
	n := len(pc.rc.Tombstones)
	switch {
	case ts.Reason != "erasure":
		return fail("reason %q, not an erasure", ts.Reason)
	case ts.RequestID != pc.rc.RequestID:
		return fail("it is of request %q, the receipt of %q", ts.RequestID, pc.rc.RequestID)
	case ts.Part == 0 && ts.Parts == 0 && pc.rc.Format == ReceiptFormatV1 && n == 1:
		// A tombstone written before requests were split names them all.
	case ts.Part != k || ts.Parts != n:
		return fail("it says part %d of %d, the receipt names it part %d of %d", ts.Part, ts.Parts, k, n)
	}
	if len(ts.Erased)+len(ts.Held) > format.MaxTombstoneNames && n > 1 {
		return fail("it names %d entries, more than a part may", len(ts.Erased)+len(ts.Held))
	}
	return ts
}

// checkpoint returns the checkpoint p's proof leads to: the receipt's, or
// a later one of the same log, signed by the key and proved to extend the
// receipt's.
func (pc *partChecker) checkpoint(p *ReceiptPart) (*format.Checkpoint, error) {
	if len(p.Checkpoint) == 0 {
		return pc.cp, nil
	}
	if cp := pc.later[string(p.Checkpoint)]; cp != nil {
		return cp, nil
	}
	cp, err := format.OpenCheckpoint(p.Checkpoint, pc.v.key)
	switch {
	case err != nil:
		return nil, fmt.Errorf("the checkpoint it is proved into: %w", err)
	case cp.Origin != pc.cp.Origin:
		return nil, fmt.Errorf("it is proved into a checkpoint of %q, the receipt's is of %q", cp.Origin, pc.cp.Origin)
	case cp.Size < pc.cp.Size:
		return nil, fmt.Errorf("it is proved into a checkpoint of size %d, older than the receipt's (%d)", cp.Size, pc.cp.Size)
	case len(p.Consistency) > MaxConsistencyHashes:
		return nil, fmt.Errorf("a consistency proof of %d hashes", len(p.Consistency))
	case cp.Size == pc.cp.Size && cp.Root != pc.cp.Root:
		return nil, fmt.Errorf("the checkpoint it is proved into and the receipt's have size %d and different roots: the log forked", cp.Size)
	case cp.Size > pc.cp.Size:
		if err := tlog.CheckTree(p.Consistency, int64(cp.Size), cp.Root, int64(pc.cp.Size), pc.cp.Root); err != nil {
			return nil, fmt.Errorf("the log at size %d does not extend the receipt's checkpoint at size %d: %v", cp.Size, pc.cp.Size, err)
		}
	}
	pc.later[string(p.Checkpoint)] = cp
	return cp, nil
}

// parseReceipt decodes a receipt's JSON strictly: the members of its
// format, none other, each of its type.
func parseReceipt(b []byte) (*Receipt, error) {
	p := &jsonParser{b: b}
	rc := &Receipt{}
	p.ws()
	hex64 := func(s string) error {
		if !isHex(s, 32) {
			return fmt.Errorf("%q is not 64 lowercase hex digits", short(s))
		}
		return nil
	}
	entries := func(out *[]format.TombstoneEntry, idxOnly bool) func() error {
		return func() error {
			*out = []format.TombstoneEntry{}
			return p.array(func(i int) error {
				if i == MaxEntries {
					return fmt.Errorf("more than %d entries", MaxEntries)
				}
				var e format.TombstoneEntry
				var err error
				if idxOnly {
					e.Index, err = p.uint()
				} else {
					err = p.fields(map[string]func() error{
						"index":     func() (err error) { e.Index, err = p.uint(); return },
						"leaf_hash": func() (err error) { e.LeafHash, err = p.str(); return },
					}, "index", "leaf_hash")
					if err == nil {
						err = hex64(e.LeafHash)
					}
				}
				*out = append(*out, e)
				return at(i, err)
			})
		}
	}
	var first uint64
	var v1Erased, v1Tombs []format.TombstoneEntry
	str := func(s *string) func() error { return func() (err error) { *s, err = p.str(); return } }
	tm := func(t *time.Time) func() error { return func() (err error) { *t, err = p.time(); return } }
	common := map[string]func() error{
		"format":       str(&rc.Format),
		"request_id":   str(&rc.RequestID),
		"origin":       str(&rc.Origin),
		"tenant":       str(&rc.Tenant),
		"selector":     str(&rc.Selector),
		"legal_basis":  str(&rc.LegalBasis),
		"ticket":       str(&rc.Ticket),
		"requested_by": str(&rc.RequestedBy),
		"requested_at": tm(&rc.RequestedAt),
		"completed_at": tm(&rc.CompletedAt),
		"checkpoint":   str(&rc.Checkpoint),
		// Format 2.
		"erased_count": func() (err error) { rc.ErasedCount, err = p.uint(); return },
		"held_count":   func() (err error) { rc.HeldCount, err = p.uint(); return },
		"tombstones":   entries(&rc.Tombstones, false),
		// Format 1.
		"erased":            entries(&v1Erased, false),
		"tombstone_index":   func() (err error) { first, err = p.uint(); return },
		"tombstone_indexes": entries(&v1Tombs, true),
		"held": func() error {
			return p.array(func(i int) error {
				if i == MaxEntries {
					return fmt.Errorf("more than %d entries", MaxEntries)
				}
				var he format.HeldEntry
				err := p.heldEntry(&he)
				rc.Held = append(rc.Held, he)
				return at(i, err)
			})
		},
	}
	seen := map[string]bool{}
	err := p.object(func(key string) error {
		f := common[key]
		if f == nil {
			return p.errorf("unknown field %q", key)
		}
		seen[key] = true
		return named(key, f())
	})
	if err == nil {
		err = p.end()
	}
	if err != nil {
		return nil, err
	}
	base := []string{"format", "request_id", "origin", "tenant", "selector", "legal_basis", "requested_at", "completed_at", "checkpoint"}
	// only refuses members other than base, required and optional, and
	// requires base and required.
	only := func(required []string, optional ...string) error {
		allowed := map[string]bool{"ticket": true, "requested_by": true}
		for _, m := range append(append(base, required...), optional...) {
			allowed[m] = true
		}
		for m := range seen {
			if !allowed[m] {
				return fmt.Errorf("member %q is not part of %s", m, rc.Format)
			}
		}
		return requiredMembers(seen, append(base, required...)...)
	}
	switch rc.Format {
	case ReceiptFormatV2:
		if err := only([]string{"erased_count", "held_count", "tombstones"}); err != nil {
			return nil, err
		}
	case ReceiptFormatV1:
		if err := only([]string{"erased", "tombstone_index", "tombstone_indexes"}, "held"); err != nil {
			return nil, err
		}
		rc.Erased, rc.Tombstones = v1Erased, v1Tombs
		rc.ErasedCount, rc.HeldCount = uint64(len(rc.Erased)), uint64(len(rc.Held))
		if len(rc.Tombstones) > 0 && rc.Tombstones[0].Index != first {
			return nil, fmt.Errorf("tombstone_index %d is not the first of tombstone_indexes (%d)", first, rc.Tombstones[0].Index)
		}
	default:
		return nil, fmt.Errorf("format %q is not a receipt format this verifier knows (%s, %s)", rc.Format, ReceiptFormatV2, ReceiptFormatV1)
	}
	switch n := len(rc.Tombstones); {
	case n == 0:
		return nil, fmt.Errorf("the receipt names no tombstone")
	case n > MaxReceiptParts:
		return nil, fmt.Errorf("the receipt names %d tombstone parts, more than %d", n, MaxReceiptParts)
	}
	for i := 1; i < len(rc.Tombstones); i++ {
		if rc.Tombstones[i].Index <= rc.Tombstones[i-1].Index {
			return nil, fmt.Errorf("tombstone part %d (entry %d) does not follow part %d (entry %d)", i+1, rc.Tombstones[i].Index, i, rc.Tombstones[i-1].Index)
		}
	}
	return rc, nil
}

// BundleParts returns a PartSource that takes the tombstone entries from
// an evidence bundle (docs/BUNDLE.md): an entry file's header, payload,
// salt and inclusion proof into the bundle's checkpoint, and, when the
// bundle is of a later tree than the receipt's checkpoint, the bundle's
// consistency proof from the receipt's tree size (export with
// --known-size set to it). CheckReceipt checks all of it; the bundle's own
// signature is not needed for that, and is checked by Verify.
//
// It reads the bundle's directory and manifest once, within the limits of
// Verify; the source reads one entry file per call.
func BundleParts(r io.ReaderAt, size int64) (PartSource, error) {
	zr, err := zip.NewReader(r, size)
	if err == nil {
		err = checkContainer(r, size, zr)
	}
	if err != nil {
		return nil, fmt.Errorf("not a zip file: %w", err)
	}
	if len(zr.File) > MaxEntries+6 {
		return nil, fmt.Errorf("%d files, more than a bundle may hold", len(zr.File))
	}
	zr.RegisterDecompressor(zip.Deflate, newInflater)
	v := &verifier{files: make(map[string]*zipMember, len(zr.File)), zip: r}
	for _, f := range zr.File {
		if v.files[f.Name] != nil {
			return nil, fmt.Errorf("%q appears twice", f.Name)
		}
		v.files[f.Name] = &zipMember{f: f}
	}
	mb, _, err := v.readFile(ManifestFile, MaxManifestBytes, true)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := parseManifest(mb, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	files := map[uint64]string{}
	for _, e := range m.Entries {
		if e.Kind == format.KindTombstone.String() {
			files[e.Index] = e.File
		}
	}
	cpNote, _, err := v.readFile(CheckpointFile, MaxSmallFileBytes, false)
	if err != nil {
		return nil, err
	}
	var cons *ConsistencyProof
	if m.Consistency != nil {
		b, _, err := v.readFile(ConsistencyFile, MaxSmallFileBytes, false)
		if err != nil {
			return nil, err
		}
		cons = &ConsistencyProof{}
		if err := parseConsistency(b, cons); err != nil {
			return nil, fmt.Errorf("%s: %w", ConsistencyFile, err)
		}
	}
	return func(index uint64, rc *format.Checkpoint) (*ReceiptPart, error) {
		name, ok := files[index]
		if !ok {
			return nil, fmt.Errorf("the bundle does not carry this tombstone (a bundle carries the parts that name its erased entries: export the erased traces or their time range, or check with the server)")
		}
		b, _, err := v.readFile(name, MaxEntryFileBytes, true)
		if err != nil {
			return nil, err
		}
		var e Entry
		if err := parseEntry(b, &e); err != nil {
			return nil, fmt.Errorf("%s is not an entry file: %w", name, err)
		}
		p := &ReceiptPart{Header: e.Header, Payload: e.Payload, Salt: e.Salt, Checkpoint: cpNote}
		for _, h := range e.InclusionProof {
			p.Proof = append(p.Proof, tlog.Hash(h))
		}
		if m.TreeSize != rc.Size {
			if cons == nil || cons.OldSize != rc.Size {
				return nil, fmt.Errorf("the bundle (tree size %d) carries no consistency proof from the receipt's tree size %d: export with --known-size %d", m.TreeSize, rc.Size, rc.Size)
			}
			for _, h := range cons.Proof {
				p.Consistency = append(p.Consistency, tlog.Hash(h))
			}
		}
		return p, nil
	}, nil
}
