package retention

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/veritrace/veritrace/audit"
	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/ledger/format"
)

// TestSweepTombstonesAreChunked (issue 9, item 3): a sweep of many entries
// writes tombstones of at most format.MaxTombstoneNames entries each, every
// expired entry is named by exactly one of them (the one GetEntry points
// to), and a bundle of one expired span carries only that chunk and
// verifies.
func TestSweepTombstonesAreChunked(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	const n = 2*format.MaxTombstoneNames + 500
	var idxs []uint64
	for len(idxs) < n-1 {
		idxs = append(idxs, e.spans(t, "", "", byte(1+len(idxs)/1000), min(1000, n-1-len(idxs)), false, "old")...)
	}
	idxs = append(idxs, e.spans(t, "", "", 9, 1, false, "old")...) // a trace of one span
	p := DefaultPolicy()
	days, _ := p.Days(DefaultClass)
	e.clock.Add(Day * time.Duration(days+2))
	r, err := e.s.Sweep(ctx, "default")
	if err != nil || r.Erased != n {
		t.Fatalf("Sweep() = %+v, %v; want %d erased", r, err, n)
	}
	size, _ := e.l.Size(ctx, "default")
	tombstones, _, err := e.l.EntriesOfKind(ctx, "default", format.KindTombstone, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := (n + format.MaxTombstoneNames - 1) / format.MaxTombstoneNames; len(tombstones) != want {
		t.Errorf("the sweep wrote %d tombstones (size of the log %d), want %d", len(tombstones), size, want)
	}
	named := map[uint64]uint64{}
	for _, ts := range tombstones {
		var p format.Tombstone
		if err := json.Unmarshal(ts.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Erased)+len(p.Held) > format.MaxTombstoneNames {
			t.Errorf("tombstone %d names %d entries (%d bytes)", ts.Header.Index, len(p.Erased)+len(p.Held), len(ts.Payload))
		}
		for _, te := range p.Erased {
			if by, ok := named[te.Index]; ok {
				t.Errorf("entry %d is named by tombstones %d and %d", te.Index, by, ts.Header.Index)
			}
			named[te.Index] = ts.Header.Index
		}
	}
	for _, i := range idxs {
		en, err := e.l.GetEntry(ctx, "default", i)
		if err != nil {
			t.Fatal(err)
		}
		if en.ErasedBy == nil || *en.ErasedBy != named[i] {
			t.Fatalf("entry %d: erased by %v, named by tombstone %d", i, en.ErasedBy, named[i])
		}
	}

	// A bundle of the one-span trace carries its chunk alone.
	x := &audit.Exporter{S: &audit.Searcher{L: e.l}, Now: e.clock.Now}
	last, _ := e.l.Header(ctx, "default", idxs[n-1])
	var buf bytes.Buffer
	m, err := x.Export(ctx, audit.ExportRequest{Tenant: "default", Query: audit.Query{TraceID: last.TraceID},
		Selector: bundle.Selector{TraceID: hex.EncodeToString(last.TraceID[:])}}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	var tombstoneIdxs []uint64
	for _, ref := range m.Entries {
		if ref.Kind == format.KindTombstone.String() {
			tombstoneIdxs = append(tombstoneIdxs, ref.Index)
		}
	}
	key, _ := note.NewVerifier(e.l.VerifierKey())
	rep := bundle.Verify(bytes.NewReader(buf.Bytes()), int64(buf.Len()), key, nil)
	var out strings.Builder
	rep.Write(&out)
	if !rep.OK() || len(m.Entries) != 2 || len(tombstoneIdxs) != 1 || tombstoneIdxs[0] != named[idxs[n-1]] {
		t.Errorf("bundle of a trace of one expired span: entries %v, tombstones %v, want the span and tombstone %d\n%s",
			m.Entries, tombstoneIdxs, named[idxs[n-1]], out.String())
	}
	t.Logf("bundle of one expired span: %d bytes", buf.Len())
}

// TestTombstonePartsAfterACrash: a sweep interrupted between two parts of
// its tombstone is finished by Resume without writing any part twice.
func TestTombstonePartsAfterACrash(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	idxs := e.spans(t, "", "", 1, 1000, false, "a")
	idxs = append(idxs, e.spans(t, "", "", 2, 500, false, "b")...)
	p := DefaultPolicy()
	days, _ := p.Days(DefaultClass)
	e.clock.Add(Day * time.Duration(days+2))
	testHookAfterTombstonePart = func(part int) error {
		if part == 1 {
			return errors.New("simulated crash")
		}
		return nil
	}
	_, err := e.s.Sweep(ctx, "default")
	testHookAfterTombstonePart = nil
	if err == nil {
		t.Fatal("the simulated crash did not interrupt the sweep")
	}
	e.l.Close()
	e.open(t)
	if err := e.s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	tombstones, _, err := e.l.EntriesOfKind(ctx, "default", format.KindTombstone, 0, 100)
	if err != nil || len(tombstones) != 2 {
		t.Fatalf("after Resume: %d tombstones, %v; want 2", len(tombstones), err)
	}
	for _, i := range idxs {
		en, err := e.l.GetEntry(ctx, "default", i)
		if err != nil || !en.Erased || en.ErasedBy == nil {
			t.Fatalf("entry %d after Resume: %+v, %v", i, en, err)
		}
		if want := tombstones[i/1000].Header.Index; *en.ErasedBy != want {
			t.Fatalf("entry %d is marked erased by %d, want %d", i, *en.ErasedBy, want)
		}
	}
	e.verify(t)
}

// TestExportDuringErasure: an export that meets entries already erased but
// not yet named by a tombstone in the log refuses (a bundle without the
// tombstone would not verify), and succeeds once the erasure is done.
func TestExportDuringErasure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.spans(t, "gus", "", 1, 3, false, "x")
	var trace [16]byte
	trace[0], trace[15] = 1, 1
	x := &audit.Exporter{S: &audit.Searcher{L: e.l}, Now: e.clock.Now}
	export := func() error {
		_, err := x.Export(ctx, audit.ExportRequest{Tenant: "default", Query: audit.Query{TraceID: trace}}, io.Discard)
		return err
	}
	var during error
	testHookAfterShred = func() error { during = export(); return nil }
	_, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "e", Subject: "gus", LegalBasis: "GDPR Art. 17", Reason: "r"})
	testHookAfterShred = nil
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(during, audit.ErrErasureInProgress) {
		t.Errorf("export during the erasure = %v, want ErrErasureInProgress", during)
	}
	if err := export(); err != nil {
		t.Errorf("export after the erasure = %v", err)
	}
}
