package rpc

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// TestPiecesAfterErasure: once a subject is erased, later pieces of its
// traces are refused, never stored: an OTLP log event and a child span
// (named in partial_success; OTLP/HTTP shares the backend) and a native span
// (failed_precondition naming the span); a new trace of the subject is
// accepted.
func TestPiecesAfterErasure(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	sp := otlpSpan(901)
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(sp))); err != nil {
		t.Fatal(err)
	}
	native := testSpan(91)
	native.TraceId = sp.TraceId
	native.SpanId = []byte{9, 9, 9, 9, 9, 9, 9, 1}
	native.ParentSpanId = sp.SpanId
	native.SubjectId = ""
	if _, err := ing.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{native}})); err != nil {
		t.Fatal(err)
	}
	erase(t, s, "dsr-late", "customer-42")
	size, _ := s.l.Size(ctx, "default")

	late := otlpLogRecord(901)
	late.SpanId = []byte{0xb0, 0, 0, 0, 0, 0, 0x99, 1}
	child := otlpSpan(902)
	child.ParentSpanId = sp.SpanId
	child.Attributes = child.Attributes[:5] // no user.id, no session.id
	for _, tc := range []struct {
		name string
		call func() (int64, string, error)
	}{
		{"log event over gRPC", func() (int64, string, error) {
			r, err := ing.otlp.logs.CallUnary(ctx, connect.NewRequest(otlpLogs(late)))
			return r.Msg.GetPartialSuccess().GetRejectedLogRecords(), r.Msg.GetPartialSuccess().GetErrorMessage(), err
		}},
		{"child span over gRPC", func() (int64, string, error) {
			r, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(child)))
			return r.Msg.GetPartialSuccess().GetRejectedSpans(), r.Msg.GetPartialSuccess().GetErrorMessage(), err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, msg, err := tc.call()
			if err != nil || n != 1 || !strings.Contains(msg, "was erased; later spans") || strings.Contains(msg, "dsr-late") {
				t.Errorf("= rejected %d %q, %v; want 1 rejected, saying the trace was erased, not naming the request", n, msg, err)
			}
		})
	}
	t.Run("native span", func(t *testing.T) {
		again := testSpan(92)
		again.TraceId, again.SubjectId = sp.TraceId, ""
		_, err := ing.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{again}}))
		wantCode(t, "AppendSpans of a span of an erased trace", err, connect.CodeFailedPrecondition, "spans[0]")
	})
	if after, _ := s.l.Size(ctx, "default"); after != size {
		t.Errorf("the log grew from %d to %d entries with pieces of an erased trace", size, after)
	}
	fresh := otlpSpan(1001) // another trace of the same subject
	r, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport([]*trace.Span{fresh}...)))
	if err != nil || r.Msg.GetPartialSuccess().GetRejectedSpans() != 0 {
		t.Errorf("a new trace of the erased subject = %v, %v; want accepted", r.Msg.GetPartialSuccess(), err)
	}
}

// TestOTLPTraceClosedDuringExport: an erasure that closes a trace after an
// export checked it and before its batch is appended costs the export only
// that trace's items (named in partial_success, in one more append), never
// the whole export.
func TestOTLPTraceClosedDuringExport(t *testing.T) {
	var l *ledger.Ledger
	var calls int
	var armed bool
	var closed [16]byte
	s := startServerWith(t, Options{otlpAppend: func(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error) {
		if !armed {
			return l.Append(ctx, tenant, recs)
		}
		if calls++; calls == 1 {
			if err := l.CloseTraces(ctx, tenant, [][16]byte{closed}, "dsr-race"); err != nil {
				return nil, err
			}
		}
		return l.Append(ctx, tenant, recs)
	}})
	l = s.l
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	var spans []*trace.Span
	for i := range 6 {
		spans = append(spans, otlpSpan(1100+i*50)) // traces 11, 11, 12, 12, 13, 13
	}
	closed = [16]byte(spans[2].TraceId)
	// The trace's resource entry is in the log already: its batch holds
	// only its two spans.
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(1299)))); err != nil {
		t.Fatal(err)
	}
	armed = true
	r, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(spans...)))
	if err != nil {
		t.Fatal(err)
	}
	if ps := r.Msg.GetPartialSuccess(); ps.GetRejectedSpans() != 2 || strings.Count(ps.GetErrorMessage(), "was erased; later spans") != 2 || strings.Contains(ps.GetErrorMessage(), "dsr-race") || calls != 2 {
		t.Errorf("export of 6 spans, 2 of a trace closed meanwhile = rejected %d %q in %d appends; want those 2 rejected in 2 appends", ps.GetRejectedSpans(), ps.GetErrorMessage(), calls)
	}
	size, _ := l.Size(ctx, "default")
	for _, sp := range []*trace.Span{spans[0], spans[4]} {
		if idxs, _ := l.SpansOfTrace(ctx, "default", [16]byte(sp.TraceId), size); len(idxs) != 3 { // 2 spans and the resource entry
			t.Errorf("trace %x: %d entries stored, want 3", sp.TraceId, len(idxs))
		}
	}
	if idxs, _ := l.SpansOfTrace(ctx, "default", closed, size); len(idxs) != 2 {
		t.Errorf("the closed trace has %d entries, want the 2 from before it was closed", len(idxs))
	}
}
