package main

import (
	"testing"

	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// TestBenchClientReusesTemplates: a load-generator client that fills its
// template again makes exactly the request a fresh client makes, in every
// mode, whatever the sizes of its earlier requests (times aside).
func TestBenchClientReusesTemplates(t *testing.T) {
	native, err := benchSender(clientFlags{addr: "http://127.0.0.1:1"}, "native")
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]func(string, bool) func(uint64, int) any{"native": native.client, "otlp": benchOTLPClient}
	noTimes := func(req any) any {
		req = proto.Clone(req.(proto.Message))
		switch r := req.(type) {
		case *v1.AppendSpansRequest:
			for _, sp := range r.Spans {
				sp.StartTime, sp.EndTime = nil, nil
			}
		case *coltrace.ExportTraceServiceRequest:
			for _, sp := range r.GetResourceSpans()[0].GetScopeSpans()[0].GetSpans() {
				sp.StartTimeUnixNano, sp.EndTimeUnixNano = 0, 0
			}
		}
		return req
	}
	for name, client := range clients {
		for _, noSubject := range []bool{false, true} {
			reused := client("text", noSubject)
			for _, c := range []struct {
				first uint64
				n     int
			}{{1, 100}, {101, 3}, {7, 10}, {1000, 100}} {
				got := noTimes(reused(c.first, c.n))
				want := noTimes(client("text", noSubject)(c.first, c.n))
				if !proto.Equal(got.(proto.Message), want.(proto.Message)) {
					t.Fatalf("%s (no subject %v): fill(%d, %d) after earlier requests = %v, want %v", name, noSubject, c.first, c.n, got, want)
				}
			}
		}
	}
	// Spans are numbered: ids, subject and session follow the number.
	req := native.client("text", false)(16, 2).(*v1.AppendSpansRequest)
	a, b := req.Spans[0], req.Spans[1]
	if string(a.TraceId) != string(b.TraceId) || string(a.SpanId) == string(b.SpanId) || a.SubjectId != "bench-user-16" || a.SessionId != "session-2" {
		t.Errorf("spans 16 and 17: %v, %v", a, b)
	}
}
