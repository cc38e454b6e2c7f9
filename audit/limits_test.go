package audit

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
)

// TestExportRefusesWhatNoBundleHolds: a bundle holds whole traces and at
// most bundle.MaxEntries spans (lowered here). A trace bigger than that
// cannot be exported by any selector, and the error says so instead of
// asking to narrow the selector; a selection of smaller traces that holds
// too many spans together is asked to be narrowed.
func TestExportRefusesWhatNoBundleHolds(t *testing.T) {
	defer func(n int) { maxBundleSpans = n }(maxBundleSpans)
	maxBundleSpans = 3
	f := newFixture(t)
	gen := v1.SpanKind_SPAN_KIND_GENERATION
	for s := byte(1); s <= 4; s++ {
		f.append(t, spanSpec{trace: 7, span: s, kind: gen, subject: "big"})
	}
	f.append(t, spanSpec{trace: 8, span: 1, kind: gen, subject: "two"}, spanSpec{trace: 8, span: 2, kind: gen, subject: "two"},
		spanSpec{trace: 9, span: 1, kind: gen, subject: "two"}, spanSpec{trace: 9, span: 2, kind: gen, subject: "two"})
	export := func(q Query) error {
		_, err := f.x.Export(context.Background(), ExportRequest{Tenant: "default", Selector: selectorOf(q), Query: q}, &bytes.Buffer{})
		return err
	}
	err := export(Query{TraceID: traceID(7)})
	if !errors.Is(err, ledger.ErrInvalid) || !strings.Contains(err.Error(), "trace 07070707070707070707070707070707 has 4 spans, more than a bundle holds (3); a bundle holds whole traces, so no selector can export this one") {
		t.Errorf("export of a trace bigger than a bundle = %v", err)
	}
	err = export(Query{SubjectID: "two"})
	if !errors.Is(err, ledger.ErrInvalid) || !strings.Contains(err.Error(), "hold 4 spans, more than a bundle holds (3); narrow it") {
		t.Errorf("export of traces bigger than a bundle together = %v", err)
	}
	if err := export(Query{TraceID: traceID(9)}); err != nil {
		t.Errorf("export of a trace that fits = %v", err)
	}
}
