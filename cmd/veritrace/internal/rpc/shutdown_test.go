package rpc

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// blockedExportOptions are the options of the shutdown tests: room for
// little more than one export, one export slot, a long queue wait.
func blockedExportOptions() Options {
	return Options{MaxRequestBytes: 700, MaxInflightBytes: 1000, MaxKeyInflightBytes: 1000, MaxQueueWait: new(10 * time.Minute),
		OTLP: OTLPOptions{MaxBytes: 700, MaxConcurrent: 1}}
}

// TestShutdownAnswersWaitersAtOnce: requests waiting for room when the
// server shuts down (an OTLP/gRPC export waiting for a slot, one waiting
// for bytes, an OTLP/HTTP export and a native append waiting for bytes)
// are answered at once, retryably: unavailable ("the server is shutting
// down"), OTLP/HTTP 503 with Retry-After. The export in progress goes on
// and is acknowledged; the shutdown ends when it has, and Wait then says
// no handler runs.
func TestShutdownAnswersWaitersAtOnce(t *testing.T) {
	s, entered, release := startFirstExportBlocked(t, blockedExportOptions())
	ctx := context.Background()
	token := s.key(t, policy.Ingester, "default")
	g := s.clients("grpc", "", token)
	first := exportAsync(ctx, g, otlpSpan(1))
	<-entered // the only slot, and most of the bytes
	type answer struct {
		what string
		err  error
	}
	answers := make(chan answer, 4)
	go func() {
		_, err := g.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(2))))
		answers <- answer{"gRPC export waiting for the slot", err}
	}()
	waitFor(t, s, "an export waiting for the slot", func(st InflightStats) bool { return st.ExportsWaiting == 1 })
	go func() {
		_, err := g.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(3))))
		answers <- answer{"gRPC export waiting for bytes", err}
	}()
	go func() {
		_, _, err := g.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(4))))
		answers <- answer{"OTLP/HTTP export waiting for bytes", err}
	}()
	go func() {
		c := s.clients("connect", "default", token)
		_, err := c.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(5)}}))
		answers <- answer{"native append waiting for bytes", err}
	}()
	waitFor(t, s, "four requests waiting", func(st InflightStats) bool { return st.Waiting == 4 })

	stopped := make(chan error, 1)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	go func() { stopped <- s.h.Shutdown(sctx, s.srv) }()
	for range 4 {
		a := <-answers // while the export in progress still blocks
		var he *httpError
		switch {
		case errors.As(a.err, &he):
			if he.status != http.StatusServiceUnavailable || he.header.Get("Retry-After") == "" || !strings.Contains(he.msg, "shutting down") {
				t.Errorf("%s at shutdown = %d %q (Retry-After %q); want 503 with Retry-After, the server is shutting down", a.what, he.status, he.msg, he.header.Get("Retry-After"))
			}
		case connect.CodeOf(a.err) != connect.CodeUnavailable || !strings.Contains(a.err.Error(), "shutting down"):
			t.Errorf("%s at shutdown = %v; want unavailable, the server is shutting down", a.what, a.err)
		}
	}
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown = %v while an export was still in progress", err)
	default:
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the export in progress at shutdown = %v; want it appended", err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := s.h.Wait(ctx); err != nil {
		t.Errorf("Wait = %v", err)
	}
	if st := s.h.InflightStats(); st.Refused != 0 || st.HeldBytes != 0 || st.Waiting != 0 {
		t.Errorf("after the shutdown: %+v; want nothing held or waiting, and the waiters not counted as refused for load", st)
	}
}

// TestShutdownWaitOutlastsTheDeadline: when the shutdown's deadline ends
// with a request still in its handler, Shutdown closes the servers and
// returns, but Wait returns only once the handler has: the ledger is
// closed after it (serve).
func TestShutdownWaitOutlastsTheDeadline(t *testing.T) {
	s, entered, release := startFirstExportBlocked(t, blockedExportOptions())
	ctx := context.Background()
	g := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	first := exportAsync(ctx, g, otlpSpan(1))
	<-entered
	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.h.Shutdown(sctx, s.srv); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a handler blocked past its deadline = %v, want %v", err, context.DeadlineExceeded)
	}
	<-first // the server closed its connection
	wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer wcancel()
	if err := s.h.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait while a handler still runs = %v, want it to wait (%v)", err, context.DeadlineExceeded)
	}
	close(release)
	if err := s.h.Wait(ctx); err != nil {
		t.Errorf("Wait once the handler returned = %v", err)
	}
}
