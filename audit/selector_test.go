package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/retention"
)

// selectorOf is the manifest selector of a query, as the RPC layer makes
// it.
func selectorOf(q Query) bundle.Selector {
	s := bundle.Selector{SessionID: q.SessionID, SubjectID: q.SubjectID, From: q.From, To: q.To, Model: q.Model, ErrorsOnly: q.ErrorsOnly,
		Kind: bundle.SpanKindName(q.Kind)}
	if q.TraceID != ([16]byte{}) {
		s.TraceID = hex.EncodeToString(q.TraceID[:])
	}
	if q.VersionID != ([32]byte{}) {
		s.VersionID = hex.EncodeToString(q.VersionID[:])
	}
	return s
}

func (f *fixture) exportQuery(t *testing.T, q Query) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := f.x.Export(context.Background(), ExportRequest{Tenant: "default", Selector: selectorOf(q), Query: q}, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSelectorCheckPassesHonestExports: every kind of condition, alone and
// combined, as an honest export writes it, passes the selector check.
func TestSelectorCheckPassesHonestExports(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v1ID, _ := f.seed(t)
	h7, _ := f.l.Header(ctx, "default", 7)
	key := f.verifier(t)
	for _, q := range []Query{
		{SubjectID: "alice"}, {SessionID: "s2"}, {TraceID: traceID(3)}, {VersionID: v1ID}, {Model: "gpt-4o"}, {ErrorsOnly: true},
		{Kind: uint8(v1.SpanKind_SPAN_KIND_TOOL)}, {From: h7.AppendedAt}, {To: h7.AppendedAt},
		{SubjectID: "alice", Kind: uint8(v1.SpanKind_SPAN_KIND_GENERATION), Model: "gpt-4o"},
	} {
		b := f.exportQuery(t, q)
		rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), key, nil)
		if !rep.OK() {
			var out strings.Builder
			rep.Write(&out)
			t.Errorf("the honest export of %+v does not verify:\n%s", selectorOf(q), out.String())
		}
	}
}

// TestSelectorCheckNotesErasedSpans: a trace whose spans were all erased
// can be shown to match no payload condition, nor to fail one: the check
// passes with a note that says so.
func TestSelectorCheckNotesErasedSpans(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)
	rs := &retention.Service{L: f.l, SessionField: FieldSession, Log: slog.New(slog.DiscardHandler)}
	if _, err := rs.Erase(ctx, "default", retention.ErasureRequest{ID: "dsr-1", TraceIDs: [][16]byte{traceID(1)}, LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}); err != nil {
		t.Fatal(err)
	}
	b := f.exportQuery(t, Query{TraceID: traceID(1)})
	relabeled := f.resign(t, b, nil, nil, func(m *bundle.Manifest) { m.Selector = bundle.Selector{SubjectID: "alice"} })
	rep := bundle.Verify(bytes.NewReader(relabeled), int64(len(relabeled)), f.verifier(t), nil)
	var out strings.Builder
	rep.Write(&out)
	if !rep.OK() || !strings.Contains(out.String(), "note: trace 01010101010101010101010101010101: only spans whose payload the bundle does not hold") {
		t.Errorf("a bundle of an erased trace, selected by subject, does not verify with a note on the selector:\n%s", out.String())
	}
	// A header condition is still checked on erased spans.
	wrongKind := f.resign(t, b, nil, nil, func(m *bundle.Manifest) { m.Selector = bundle.Selector{SubjectID: "alice", Kind: "retrieval"} })
	if rep := bundle.Verify(bytes.NewReader(wrongKind), int64(len(wrongKind)), f.verifier(t), nil); !slices.Contains(rep.Failed(), bundle.CheckSelector) {
		t.Errorf("an erased trace with no retrieval span passed a kind=retrieval selector: failed %v", rep.Failed())
	}
}
