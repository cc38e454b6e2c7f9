package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/ledger"
)

// ErrNothingSelected is returned when a selector matches no trace.
var ErrNothingSelected = errors.New("no trace matches the selector")

// ErrErasureInProgress is returned when an entry to export has been erased
// but the tombstone naming it is not yet in the log: an erasure or sweep is
// running. A bundle without that tombstone would not verify; export again
// once it is done.
var ErrErasureInProgress = errors.New("an erasure of entries of this selection is in progress; export again in a moment")

// MaxExportTraces bounds the traces one bundle holds.
const MaxExportTraces = 100_000

// maxBundleSpans is the most spans a bundle holds (bundle.MaxEntries);
// tests lower it.
var maxBundleSpans = bundle.MaxEntries

// Path is a trace's decision path: its span entries in index order and the
// version entries they reference.
type Path struct {
	Spans    []*ledger.Entry
	Versions []*ledger.Entry
	// Omitted names the span entries given without their payload (nil
	// Payload, not erased): before the page's start, or past its cap
	// (DecisionPathPage).
	Omitted map[uint64]bool
	// Resources names the span entries known to be OTLP resource entries
	// (bundle.IsResourceEntry): those the page read, in its range or
	// because a span it gives refers to them. They hold the resource and
	// scope of the spans that refer to them, and are not spans to show. An
	// omitted entry of a resource entry's shape (bundle.MayBeResourceEntry)
	// may be one: the page that reads it says.
	Resources map[uint64]bool
	// Next is the index of the first span entry past the page's cap whose
	// payload is omitted: where the next page starts. 0 when the page
	// gives every payload from its start on.
	Next uint64
}

// MaxPathSpans bounds the spans DecisionPath returns: it holds them all in
// memory and answers with them at once. A bigger trace is exported.
const MaxPathSpans = 10_000

// ErrTraceTooLarge is returned by DecisionPath for a trace of more than
// MaxPathSpans spans.
var ErrTraceTooLarge = errors.New("trace too large to show at once")

// DecisionPath returns a trace's span entries (payloads decrypted) and the
// versions they reference. ErrNotFound when the trace has no span,
// ErrTraceTooLarge when it has more than MaxPathSpans.
func (s *Searcher) DecisionPath(ctx context.Context, tenant string, trace [16]byte) (*Path, error) {
	return s.DecisionPathPage(ctx, tenant, trace, 0, 0)
}

// DecisionPathPage is DecisionPath holding at most about maxBytes of
// payloads (0: no cap). It reads every span entry's header and erasure
// state without decrypting (ledger.ReadEntryHeads), and decrypts only the
// entries from index from on, in index order, up to the first whose
// payload would take the page past maxBytes, and the OTLP resource
// entries the spans it gives refer to (wherever they are in the trace).
// A resource entry's payload counts against maxBytes as a span's does.
// The first span from index from on is always given, with its resource
// entry, so that pages make progress. The other entries' payloads are
// omitted (Path.Omitted, not read) and Path.Next names where the next
// page starts.
//
// So a page decrypts and holds at most maxBytes of payloads plus one span
// and its resource entry (the first, given whatever its size) and one
// entry more (the first past the cap, read to measure it), and reads
// every entry's header: reading a trace page by page decrypts each entry
// about once, plus two entries and the resource entries of the spans given
// on each page.
func (s *Searcher) DecisionPathPage(ctx context.Context, tenant string, trace [16]byte, from uint64, maxBytes int) (*Path, error) {
	size, err := s.L.Size(ctx, tenant)
	if err != nil {
		return nil, err
	}
	idxs, err := s.TraceSpans(ctx, tenant, trace, size)
	if err != nil {
		return nil, err
	}
	if len(idxs) == 0 {
		return nil, fmt.Errorf("trace %x: %w", trace, ledger.ErrNotFound)
	}
	if len(idxs) > MaxPathSpans {
		return nil, fmt.Errorf("trace %x has %d spans, more than the %d shown at once; export it: %w", trace, len(idxs), MaxPathSpans, ErrTraceTooLarge)
	}
	p := &Path{Omitted: map[uint64]bool{}, Resources: map[uint64]bool{}}
	// Where each entry of a resource entry's shape is, by span id.
	shaped := map[[8]byte]int{}
	if err := s.L.ReadEntryHeads(ctx, tenant, idxs, func(e *ledger.Entry) error {
		if bundle.MayBeResourceEntry(e.Header) {
			if _, dup := shaped[e.Header.SpanID]; !dup {
				shaped[e.Header.SpanID] = len(p.Spans)
			}
		}
		if !e.Erased {
			p.Omitted[e.Header.Index] = true
		}
		p.Spans = append(p.Spans, e)
		return nil
	}); err != nil {
		return nil, err
	}
	// read decrypts the entry at position i of p.Spans: false when it is
	// erased (since its header was read).
	read := func(i int) (bool, error) {
		e, err := s.L.GetEntry(ctx, tenant, p.Spans[i].Header.Index)
		if err != nil {
			return false, err
		}
		s.decrypted.Add(1)
		p.Spans[i] = e
		if e.Erased {
			delete(p.Omitted, e.Header.Index)
		}
		return !e.Erased, nil
	}
	// resourceOf reads the OTLP resource entry span e refers to, looked up
	// by its derived span id: its position in p.Spans; -1 when e refers to
	// none, or the entry is erased, not one, or already read by this page
	// (a resource entry the page holds, or a span it gives).
	resourceOf := func(e *ledger.Entry) (int, error) {
		id, ok := bundle.ResourceEntryOf(trace[:], e.Payload)
		r, found := shaped[id]
		if !ok || !found || p.Spans[r].Erased || p.Spans[r].Payload != nil {
			return -1, nil
		}
		live, err := read(r)
		if err != nil || !live {
			return -1, err
		}
		if bundle.IsResourceEntry(p.Spans[r].Header, p.Spans[r].Payload) {
			return r, nil
		}
		p.Spans[r].Payload, p.Spans[r].Salt = nil, nil // a span, omitted here or read when the walk reaches it
		return -1, nil
	}
	held, taken, spanGiven := 0, false, false
	fits := func(n int, first bool) bool { return maxBytes <= 0 || first || held+n <= maxBytes }
	for i, e := range p.Spans {
		if e.Header.Index < from || e.Erased || p.Resources[e.Header.Index] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		live, err := read(i)
		if err != nil {
			return nil, err
		}
		if !live {
			continue
		}
		e = p.Spans[i]
		if bundle.IsResourceEntry(e.Header, e.Payload) {
			if !fits(len(e.Payload), !taken) {
				p.Next = e.Header.Index
				break
			}
			held, taken = held+len(e.Payload), true
			p.Resources[e.Header.Index] = true
			delete(p.Omitted, e.Header.Index)
			continue
		}
		// A span: given with the resource entry it refers to, if the page
		// does not hold it yet.
		n, res := len(e.Payload), -1
		if r, err := resourceOf(e); err != nil {
			return nil, err
		} else if r >= 0 {
			res, n = r, n+len(p.Spans[r].Payload)
		}
		if !fits(n, !spanGiven) {
			p.Next = e.Header.Index
			e.Payload = nil
			if res >= 0 {
				p.Spans[res].Payload = nil
			}
			break
		}
		held, taken, spanGiven = held+n, true, true
		delete(p.Omitted, e.Header.Index)
		if res >= 0 {
			p.Resources[p.Spans[res].Header.Index] = true
			delete(p.Omitted, p.Spans[res].Header.Index)
		}
	}
	// The entries past the cap: read no further.
	if p.Next != 0 {
		for _, e := range p.Spans {
			if e.Header.Index >= p.Next && !p.Resources[e.Header.Index] && e.Payload != nil {
				e.Payload, e.Salt = nil, nil
				p.Omitted[e.Header.Index] = true
			}
		}
	}
	refs := map[[32]byte]bool{}
	for _, e := range p.Spans {
		for _, r := range e.Header.Refs {
			if r != ([32]byte{}) && !refs[r] {
				refs[r] = true
				v, err := s.L.GetVersion(ctx, tenant, r)
				if err != nil {
					return nil, err
				}
				p.Versions = append(p.Versions, v)
			}
		}
	}
	return p, nil
}

// ExportRequest says what to export.
type ExportRequest struct {
	Tenant   string
	Selector bundle.Selector
	// Query selects the traces; a set TraceID selects exactly that trace.
	Query Query
	// KnownSize, when not zero, is the size of a checkpoint the auditor
	// holds: the bundle then carries a consistency proof from it.
	KnownSize uint64
}

// Exporter writes evidence bundles.
type Exporter struct {
	S   *Searcher
	Now func() time.Time
	// onBatch, when not nil, sees each batch of entry files (tests).
	onBatch func([]*bundle.PreparedEntry)
}

// Export writes the bundle for req to w as it goes, holding one trace at a
// time in memory. It returns the bundle's manifest. A selection too large
// for a bundle (bundle.MaxEntries and the other limits a verifier accepts)
// fails with ledger.ErrInvalid.
func (x *Exporter) Export(ctx context.Context, req ExportRequest, w io.Writer) (*bundle.Manifest, error) {
	m, err := x.export(ctx, req, w)
	if errors.Is(err, bundle.ErrTooLarge) {
		return nil, fmt.Errorf("%w: %w; narrow the selector", ledger.ErrInvalid, err)
	}
	return m, err
}

func (x *Exporter) export(ctx context.Context, req ExportRequest, w io.Writer) (*bundle.Manifest, error) {
	l := x.S.L
	cp, err := l.Checkpoint(ctx, req.Tenant, true)
	if err != nil {
		return nil, err
	}
	if req.KnownSize > cp.Size {
		return nil, fmt.Errorf("%w: known size %d is beyond the log's size %d", ledger.ErrInvalid, req.KnownSize, cp.Size)
	}
	// The bundle carries the old checkpoint, so that its consistency proof
	// can be checked without a pinned one (docs/BUNDLE.md).
	var old *ledger.Checkpoint
	if req.KnownSize > 0 {
		if old, err = l.CheckpointAt(ctx, req.Tenant, req.KnownSize); errors.Is(err, ledger.ErrNotFound) {
			return nil, fmt.Errorf("%w: known size %d: the log signed no checkpoint of that size; give the size of a checkpoint you hold", ledger.ErrInvalid, req.KnownSize)
		} else if err != nil {
			return nil, err
		}
	}
	traces, err := x.traces(ctx, req, cp.Size)
	if err != nil {
		return nil, err
	}
	// Every trace's spans, listed before the first byte is written, so that
	// a selection too large for a bundle is refused cleanly.
	spans := make([][]uint64, len(traces))
	total := 0
	for i, t := range traces {
		if spans[i], err = x.S.TraceSpans(ctx, req.Tenant, t, cp.Size); err != nil {
			return nil, err
		}
		if len(spans[i]) > maxBundleSpans {
			return nil, fmt.Errorf("%w: trace %x has %d spans, more than a bundle holds (%d); a bundle holds whole traces, so no selector can export this one",
				ledger.ErrInvalid, t, len(spans[i]), maxBundleSpans)
		}
		if total += len(spans[i]); total > maxBundleSpans {
			return nil, fmt.Errorf("%w: the selector's first %d traces hold %d spans, more than a bundle holds (%d); narrow it", ledger.ErrInvalid, i+1, total, maxBundleSpans)
		}
	}
	bw := bundle.NewWriter(w, bundle.Manifest{
		Origin: cp.Origin, Tenant: req.Tenant, LogKey: l.VerifierKey(), CreatedAt: x.Now().UTC(),
		Selector: req.Selector, TreeSize: cp.Size,
	})
	ew := &entryWriter{ctx: ctx, l: l, tenant: req.Tenant, size: cp.Size, bw: bw, batch: firstExportBatch, onBatch: x.onBatch}

	// The spans, trace by trace, in one stream of batches (a batch may
	// span traces: most traces are smaller than a batch); what they
	// reference is gathered as they go.
	refs := map[[32]byte]bool{}
	var versionIDs [][32]byte
	tombstones := map[uint64]bool{}
	var tombstoneIdxs []uint64
	all := make([]uint64, 0, total)
	for ti, t := range traces {
		bw.AddTrace(t)
		all = append(all, spans[ti]...)
	}
	err = ew.write(all, func(e *ledger.Entry) error {
		if e.Erased && (e.ErasedBy == nil || *e.ErasedBy >= cp.Size) {
			return fmt.Errorf("entry %d: %w", e.Header.Index, ErrErasureInProgress)
		}
		if e.ErasedBy != nil && !tombstones[*e.ErasedBy] {
			tombstones[*e.ErasedBy] = true
			tombstoneIdxs = append(tombstoneIdxs, *e.ErasedBy)
		}
		for _, r := range e.Header.Refs {
			if r != ([32]byte{}) && !refs[r] {
				refs[r] = true
				versionIDs = append(versionIDs, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The versions they reference, kept for the report.
	var versionIdxs []uint64
	for _, id := range versionIDs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, err := l.GetVersion(ctx, req.Tenant, id)
		if err != nil {
			return nil, fmt.Errorf("version %x: %w", id, err)
		}
		versionIdxs = append(versionIdxs, e.Header.Index)
	}
	var versions []*bundle.Entry
	if err := ew.write(versionIdxs, func(e *ledger.Entry) error {
		versions = append(versions, &bundle.Entry{Index: e.Header.Index, Header: e.HeaderBytes, Payload: e.Payload, Erased: e.Erased})
		return nil
	}); err != nil {
		return nil, err
	}
	// The tombstones that name erased entries travel with them.
	if err := ew.write(tombstoneIdxs, nil); err != nil {
		return nil, err
	}
	if req.Selector.IsTimeRange() {
		if err := x.addRange(ctx, req, cp, bw); err != nil {
			return nil, err
		}
	}
	if err := bw.AddCheckpoint(cp.Note); err != nil {
		return nil, err
	}
	if req.KnownSize > 0 {
		p, _, err := l.ConsistencyProof(ctx, req.Tenant, req.KnownSize, cp.Size)
		if err != nil {
			return nil, err
		}
		if err := bw.AddConsistency(&bundle.ConsistencyProof{OldSize: req.KnownSize, NewSize: cp.Size, Proof: hexes(p), OldCheckpoint: string(old.Note)}); err != nil {
			return nil, err
		}
	}
	// The report reads again the spans it shows (at most
	// bundle.MaxReportSpans), a trace at a time on each of GOMAXPROCS
	// goroutines: it keeps a clipped view of each, never the payloads of a
	// whole trace.
	err = bw.AddReport(func(out io.Writer) error {
		rw := bundle.NewReportWriter(out, bundle.ReportInfo{
			Origin: cp.Origin, Tenant: req.Tenant, LogKey: l.VerifierKey(), TreeSize: cp.Size,
			Root: hex.EncodeToString(cp.Root[:]), CreatedAt: bw.Manifest().CreatedAt, Selector: req.Selector, Traces: len(traces),
		}, versions)
		sizes := make([]int, len(spans))
		for ti := range spans {
			sizes[ti] = len(spans[ti])
		}
		if err := rw.WriteTraces(traces, sizes, func(ti int, add func(*bundle.Entry)) error {
			return l.ReadEntries(ctx, req.Tenant, spans[ti], func(e *ledger.Entry) error {
				add(&bundle.Entry{Index: e.Header.Index, Header: e.HeaderBytes, Payload: e.Payload, Erased: e.Erased})
				return nil
			})
		}); err != nil {
			return err
		}
		return rw.Close()
	})
	if err != nil {
		return nil, err
	}
	err = bw.Close(func(digest [32]byte) ([]byte, error) { return l.SignBundle(ctx, req.Tenant, digest) })
	return bw.Manifest(), err
}

// rangeBatch is the headers a time range's export reads at once.
const rangeBatch = 4096

// addRange writes the range of a time-range export (docs/BUNDLE.md,
// format 3): the header of every entry appended in [from, to) and of the
// entries just before and after, and the inclusion proof of the last, so
// that a verifier can check that the bundle holds every trace of the range.
// Appended_at never decreases along a log, so the range is the indices
// [IndexAt(from), IndexAt(to)).
func (x *Exporter) addRange(ctx context.Context, req ExportRequest, cp *ledger.Checkpoint, bw *bundle.Writer) error {
	l := x.S.L
	first, end := uint64(0), cp.Size
	if !req.Selector.From.IsZero() {
		i, err := l.IndexAt(ctx, req.Tenant, req.Selector.From)
		if err != nil {
			return err
		}
		first = min(i, cp.Size)
	}
	if !req.Selector.To.IsZero() {
		i, err := l.IndexAt(ctx, req.Tenant, req.Selector.To)
		if err != nil {
			return err
		}
		end = min(i, cp.Size)
	}
	if first >= end { // no trace was selected, so this is not expected
		return fmt.Errorf("the time range holds no entry below size %d: %w", cp.Size, ErrNothingSelected)
	}
	start, stop := first, end
	if start > 0 {
		start--
	}
	if stop < cp.Size {
		stop++
	}
	if stop-start > bundle.MaxRangeHeaders {
		return fmt.Errorf("%w: the time range holds %d entries, more than a bundle shows complete (%d)", bundle.ErrTooLarge, end-first, bundle.MaxRangeHeaders-2)
	}
	proof, _, _, err := l.InclusionProof(ctx, req.Tenant, stop-1, cp.Size)
	if err != nil {
		return err
	}
	return bw.AddRange(bundle.Range{First: first, End: end, Proof: hexes(proof)}, func(add func([]byte) error) error {
		idxs := make([]uint64, 0, rangeBatch)
		for i := start; i < stop; {
			idxs = idxs[:0]
			for ; i < stop && len(idxs) < rangeBatch; i++ {
				idxs = append(idxs, i)
			}
			hs, err := l.Headers(ctx, req.Tenant, idxs)
			if err != nil {
				return err
			}
			for _, h := range hs {
				if err := add(h.Marshal()); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// maxExportBatch bounds the entries an export reads and prepares at once,
// and maxBatchBytes their entry files' bytes (uncompressed): a batch holds
// at most maxExportBatch entries and maxBatchBytes of files, or is a
// single entry whose file alone is larger. Two batches are in memory at
// once: one being added to the bundle while the next is prepared.
//
// The bytes are enforced while a batch is prepared, not predicted: each
// batch is planned at firstExportBatch entries (the first) or as many as
// fit maxBatchBytes at the largest file of the previous batch, split among
// GOMAXPROCS goroutines, each with its share of maxBatchBytes; a goroutine
// stops reading entries once their payloads alone (a file holds its
// payload in base64) pass its share, and stops preparing files once they
// do. The batch is then the longest run of prepared entries from its start
// that fits maxBatchBytes; what was read beyond it is read again for the
// next batch. So a trace of 2 MiB spans is read one span at a time, one of
// small spans 256 at a time, and small spans followed by large ones cost
// one batch's worth of preparation that is thrown away, never memory in
// proportion to the large ones.
const (
	firstExportBatch = 8
	maxExportBatch   = 256
)

// maxBatchBytes is a variable so that tests can lower it.
var maxBatchBytes = 4 << 20

// entryWriter writes entry files to a bundle in batches: each batch is
// split among GOMAXPROCS goroutines, each of which reads its entries and
// their inclusion proofs in one read transaction and encodes, hashes and
// compresses their files; then the files are added in order, while the
// next batch is prepared.
type entryWriter struct {
	ctx    context.Context
	l      *ledger.Ledger
	tenant string
	size   uint64 // the bundle's tree size
	bw     *bundle.Writer
	batch  int // the entries the next batch is planned at
	// onBatch, when not nil, is called with each batch's files before
	// they are added (tests).
	onBatch func([]*bundle.PreparedEntry)
}

// preparedBatch is a batch of entries read and prepared, or why not.
type preparedBatch struct {
	entries []*ledger.Entry
	files   []*bundle.PreparedEntry
	err     error
}

// write adds the entries idxs to the bundle in order, calling seen (if not
// nil) with each entry, in order, before its file is added. One goroutine
// prepares the batches while this one adds them; it has returned when
// write returns.
func (w *entryWriter) write(idxs []uint64, seen func(*ledger.Entry) error) error {
	if len(idxs) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	batches := make(chan preparedBatch) // unbuffered: at most one batch waits
	go func() {
		defer close(batches)
		for len(idxs) > 0 {
			entries, files, err := w.prepare(ctx, idxs[:min(len(idxs), w.batch)])
			select {
			case batches <- preparedBatch{entries, files, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
			idxs = idxs[len(files):]
			largest := 1
			for _, f := range files {
				largest = max(largest, f.Size())
			}
			w.batch = max(1, min(maxExportBatch, maxBatchBytes/largest))
		}
	}()
	err := w.add(ctx, batches, seen)
	cancel()
	for range batches { // let the preparing goroutine finish
	}
	return err
}

// add adds the prepared batches' files in order until the first error.
// The preparing goroutine stops without a batch when ctx is done, so the
// batches' end is a success only while ctx is not.
func (w *entryWriter) add(ctx context.Context, batches <-chan preparedBatch, seen func(*ledger.Entry) error) error {
	for b := range batches {
		if b.err != nil {
			return b.err
		}
		if w.onBatch != nil {
			w.onBatch(b.files)
		}
		for i, f := range b.files {
			if seen != nil {
				if err := seen(b.entries[i]); err != nil {
					return err
				}
			}
			if err := w.bw.AddPrepared(f); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// prepare reads and prepares a batch of at most the entries idxs on
// GOMAXPROCS goroutines, each given a contiguous part of idxs and its
// share of maxBatchBytes. It returns the longest run of prepared entries
// from the start of idxs whose files fit maxBatchBytes (at least one
// entry).
func (w *entryWriter) prepare(ctx context.Context, idxs []uint64) ([]*ledger.Entry, []*bundle.PreparedEntry, error) {
	entries := make([]*ledger.Entry, len(idxs))
	files := make([]*bundle.PreparedEntry, len(idxs))
	workers := min(runtime.GOMAXPROCS(0), len(idxs))
	per := (len(idxs) + workers - 1) / workers
	errs := make([]error, workers)
	done := make([]int, workers) // entries prepared, from each part's start
	var wg sync.WaitGroup
	for k := range workers {
		lo, hi := k*per, min(len(idxs), (k+1)*per)
		if lo >= hi {
			continue
		}
		// A share in proportion to the part: a batch planned at the
		// previous batch's largest file then fits every part.
		share := maxBatchBytes * (hi - lo) / len(idxs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			done[k], errs[k] = w.prepareRange(ctx, idxs[lo:hi], entries[lo:hi], files[lo:hi], share)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	// The run of prepared entries from the start, then what of it fits;
	// what is left is dropped now, not kept while the batch waits.
	n := batchEnd(files, done, per)
	clear(entries[n:])
	clear(files[n:])
	return entries[:n], files[:n], nil
}

// batchEnd returns how many of files, prepared in parts of per entries of
// which done[k] each from the part's start, make a batch: the run of
// prepared files from the start while they fit maxBatchBytes, at least one.
func batchEnd(files []*bundle.PreparedEntry, done []int, per int) int {
	n, bytes := 0, 0
	for k, d := range done {
		lo := k * per
		if lo >= len(files) {
			break
		}
		for _, f := range files[lo : lo+d] {
			if n > 0 && bytes+f.Size() > maxBatchBytes {
				return n
			}
			bytes += f.Size()
			n++
		}
		if lo+d < min(len(files), lo+per) {
			break
		}
	}
	return n
}

// errShareFull stops a read or a preparation whose share of a batch's
// bytes is full.
var errShareFull = errors.New("share of the batch full")

// prepareRange reads and prepares the entries idxs into entries and files,
// in order, until their files would pass share bytes (but at least one),
// and returns how many it prepared.
func (w *entryWriter) prepareRange(ctx context.Context, idxs []uint64, entries []*ledger.Entry, files []*bundle.PreparedEntry, share int) (int, error) {
	n, bytes := 0, 0
	err := w.l.ReadEntries(ctx, w.tenant, idxs, func(e *ledger.Entry) error {
		// A file holds its payload in base64: 4/3 of its bytes at least.
		if n > 0 && bytes+base64Len(len(e.Payload)) > share {
			return errShareFull
		}
		bytes += base64Len(len(e.Payload))
		entries[n] = e
		n++
		return nil
	})
	if err != nil && !errors.Is(err, errShareFull) {
		return 0, err
	}
	read := n
	n, bytes = 0, 0
	err = w.l.InclusionProofs(ctx, w.tenant, idxs[:read], w.size, func(_ uint64, proof tlog.RecordProof, leaf tlog.Hash) error {
		e := entries[n]
		be := &bundle.Entry{Index: e.Header.Index, Header: e.HeaderBytes, LeafHash: bundle.Hex(leaf),
			Payload: e.Payload, Salt: e.Salt, Erased: e.Erased, InclusionProof: hexes(proof)}
		f, err := w.bw.Prepare(be)
		if err != nil {
			return err
		}
		if n > 0 && bytes+f.Size() > share {
			return errShareFull
		}
		bytes += f.Size()
		files[n] = f
		n++
		return nil
	})
	if err != nil && !errors.Is(err, errShareFull) {
		return 0, err
	}
	return n, nil
}

// base64Len is the length of n bytes in padded base64.
func base64Len(n int) int { return (n + 2) / 3 * 4 }

// traces lists the traces a request selects, below size.
func (x *Exporter) traces(ctx context.Context, req ExportRequest, size uint64) ([][16]byte, error) {
	var out [][16]byte
	for cursor := uint64(0); ; {
		hits, next, err := x.S.Traces(ctx, req.Tenant, req.Query, cursor, 1000, size)
		if err != nil {
			return nil, err
		}
		for _, h := range hits {
			out = append(out, h.TraceID)
		}
		if len(out) > MaxExportTraces {
			return nil, fmt.Errorf("%w: the selector matches more than %d traces; narrow it", ledger.ErrInvalid, MaxExportTraces)
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if len(out) == 0 {
		return nil, ErrNothingSelected
	}
	return out, nil
}

func hexes[T ~[]tlog.Hash](hs T) []bundle.Hex {
	out := make([]bundle.Hex, len(hs))
	for i, h := range hs {
		out[i] = bundle.Hex(h)
	}
	return out
}
