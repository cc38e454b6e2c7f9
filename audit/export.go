package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

// Path is a trace's decision path: its span entries in index order and the
// version entries they reference.
type Path struct {
	Spans    []*ledger.Entry
	Versions []*ledger.Entry
}

// DecisionPath returns a trace's span entries (payloads decrypted) and the
// versions they reference. ErrNotFound when the trace has no span.
func (s *Searcher) DecisionPath(ctx context.Context, tenant string, trace [16]byte) (*Path, error) {
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
	p := &Path{}
	refs := map[[32]byte]bool{}
	for _, i := range idxs {
		e, err := s.L.GetEntry(ctx, tenant, i)
		if err != nil {
			return nil, err
		}
		p.Spans = append(p.Spans, e)
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
}

// Export writes the bundle for req to w as it goes, holding one trace at a
// time in memory. It returns the bundle's manifest.
func (x *Exporter) Export(ctx context.Context, req ExportRequest, w io.Writer) (*bundle.Manifest, error) {
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
	bw := bundle.NewWriter(w, bundle.Manifest{
		Origin: cp.Origin, Tenant: req.Tenant, LogKey: l.VerifierKey(), CreatedAt: x.Now().UTC(),
		Selector: req.Selector, TreeSize: cp.Size,
	})
	// add writes an entry, with its inclusion proof, into the bundle.
	add := func(e *ledger.Entry) (*bundle.Entry, error) {
		p, leaf, _, err := l.InclusionProof(ctx, req.Tenant, e.Header.Index, cp.Size)
		if err != nil {
			return nil, err
		}
		be := &bundle.Entry{Index: e.Header.Index, Header: e.HeaderBytes, LeafHash: bundle.Hex(leaf),
			Payload: e.Payload, Salt: e.Salt, Erased: e.Erased, InclusionProof: hexes(p)}
		return be, bw.AddEntry(be)
	}
	refs := map[[32]byte]bool{}
	var versionIDs [][32]byte
	tombstones := map[uint64]bool{}
	var tombstoneIdxs []uint64
	for _, t := range traces {
		bw.AddTrace(t)
		idxs, err := x.S.TraceSpans(ctx, req.Tenant, t, cp.Size)
		if err != nil {
			return nil, err
		}
		for _, i := range idxs {
			e, err := l.GetEntry(ctx, req.Tenant, i)
			if err != nil {
				return nil, err
			}
			if _, err := add(e); err != nil {
				return nil, err
			}
			if e.Erased && (e.ErasedBy == nil || *e.ErasedBy >= cp.Size) {
				return nil, fmt.Errorf("entry %d: %w", i, ErrErasureInProgress)
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
		}
	}
	var versions []*bundle.Entry
	for _, id := range versionIDs {
		e, err := l.GetVersion(ctx, req.Tenant, id)
		if err != nil {
			return nil, fmt.Errorf("version %x: %w", id, err)
		}
		be, err := add(e)
		if err != nil {
			return nil, err
		}
		versions = append(versions, be)
	}
	// The tombstones that name erased entries travel with them.
	for _, i := range tombstoneIdxs {
		e, err := l.GetEntry(ctx, req.Tenant, i)
		if err != nil {
			return nil, err
		}
		if _, err := add(e); err != nil {
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
	// The report re-reads each trace, so that no more than one is in memory.
	err = bw.AddReport(func(out io.Writer) error {
		rw := bundle.NewReportWriter(out, bundle.ReportInfo{
			Origin: cp.Origin, Tenant: req.Tenant, LogKey: l.VerifierKey(), TreeSize: cp.Size,
			Root: hex.EncodeToString(cp.Root[:]), CreatedAt: bw.Manifest().CreatedAt, Selector: req.Selector, Traces: len(traces),
		}, versions)
		for _, t := range traces {
			idxs, err := x.S.TraceSpans(ctx, req.Tenant, t, cp.Size)
			if err != nil {
				return err
			}
			var es []*bundle.Entry
			for _, i := range idxs {
				e, err := l.GetEntry(ctx, req.Tenant, i)
				if err != nil {
					return err
				}
				es = append(es, &bundle.Entry{Index: i, Header: e.HeaderBytes, Payload: e.Payload, Erased: e.Erased})
			}
			rw.Trace(t, es)
		}
		return rw.Close()
	})
	if err != nil {
		return nil, err
	}
	err = bw.Close(func(digest [32]byte) ([]byte, error) { return l.SignBundle(ctx, req.Tenant, digest) })
	return bw.Manifest(), err
}

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
