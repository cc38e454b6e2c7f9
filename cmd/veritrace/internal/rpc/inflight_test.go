package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/policy"
)

// liveHeap is the live heap as of the last garbage collection.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// bigSpan is span n carrying about size bytes of text.
func bigSpan(n, size int) *v1.Span {
	sp := testSpan(n)
	sp.TraceId = bytes.Repeat([]byte{0xc0, byte(n)}, 8)
	sp.Content.InputMessages[0].Parts[0].Part = &v1.MessagePart_Text{Text: strings.Repeat(fmt.Sprintf("%03d ", n%1000), size/4)}
	return sp
}

// bigOTLP is an OTLP export of one span (n) carrying about size bytes.
func bigOTLP(n, size int) *coltrace.ExportTraceServiceRequest {
	sp := otlpSpan(n)
	sp.TraceId = bytes.Repeat([]byte{0xd0, byte(n)}, 8)
	sp.Attributes = append(sp.Attributes, kv("gen_ai.output.messages", `[{"role":"assistant","parts":[{"type":"text","content":"`+strings.Repeat("y", size)+`"}]}]`))
	return otlpExport(sp)
}

// inflightServer is a server taking requests of up to 1 MiB and holding at
// most two at once.
func inflightServer(t *testing.T, wait time.Duration) (*testServer, string) {
	const limit = 1 << 20
	s := startServerWith(t, Options{MaxRequestBytes: limit, OTLP: OTLPOptions{MaxBytes: limit}, MaxInflightBytes: 2 * limit, MaxQueueWait: wait})
	s.tenant(t, "acme")
	return s, s.key(t, policy.Ingester, "acme")
}

// grpcFrame frames a message for gRPC and gRPC-Web.
func grpcFrame(msg []byte) []byte {
	framed := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(framed[1:], uint32(len(msg)))
	copy(framed[5:], msg)
	return framed
}

// rawAppend sends a prebuilt request body (framed for gRPC and gRPC-Web)
// to path over hc with the given content type, and checks the answer: the test's clients then hold nothing but the bodies, built
// before the heap is measured.
func rawAppend(ctx context.Context, hc *http.Client, url, path, ctype string, body []byte, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(TenantHeader, "acme")
	if strings.HasPrefix(ctype, "application/grpc") && !strings.HasPrefix(ctype, "application/grpc-web") {
		req.Header.Set("Te", "trailers")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return err
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, out)
	case strings.HasPrefix(ctype, "application/grpc-web"):
		if !bytes.Contains(out, []byte("grpc-status: 0")) {
			return fmt.Errorf("gRPC-Web answer without grpc-status 0: %.200q", out)
		}
	case strings.HasPrefix(ctype, "application/grpc"):
		if st := resp.Trailer.Get("Grpc-Status"); st != "0" {
			return fmt.Errorf("grpc-status %q: %s", st, resp.Trailer.Get("Grpc-Message"))
		}
	}
	return nil
}

// TestInflightBytesBound sends many maximal appends at once over every
// ingest protocol (Connect, Connect JSON, gRPC, gRPC-Web, OTLP gRPC,
// OTLP/HTTP protobuf and JSON), over HTTP/1.1 and HTTP/2: all succeed, and
// the server's live heap grows by a small multiple of the bound, not by
// what the requests add up to.
func TestInflightBytesBound(t *testing.T) {
	s, token := inflightServer(t, -1)
	const size = 900 << 10 // a maximal request: just under the 1 MiB limit
	const perProtocol = 8
	ctx := context.Background()
	h1 := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0}}
	h2t := &http.Transport{Protocols: new(http.Protocols)}
	h2t.Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: h2t}
	type protocol struct {
		name, path, ctype string
		grpc              bool
		hc                *http.Client
		body              func(n int) []byte
	}
	native := func(n int) []byte {
		b, _ := proto.Marshal(&v1.AppendSpansRequest{Spans: []*v1.Span{bigSpan(n, size)}})
		return b
	}
	nativeJSON := func(n int) []byte {
		b, _ := protojson.Marshal(&v1.AppendSpansRequest{Spans: []*v1.Span{bigSpan(n, size)}})
		return b
	}
	otlpProto := func(n int) []byte { return mustMarshal(bigOTLP(n, size)) }
	otlpJSONBody := func(n int) []byte { return []byte(otlp.JSON(bigOTLP(n, size))) }
	appendPath := veritracev1connect.IngestServiceAppendSpansProcedure
	protocols := []protocol{
		{"connect", appendPath, "application/proto", false, h1, native},
		{"connect-json", appendPath, "application/json", false, h1, nativeJSON},
		{"connect-h2", appendPath, "application/proto", false, h2, native},
		{"grpc", appendPath, "application/grpc", true, h2, native},
		{"grpc-web", appendPath, "application/grpc-web+proto", true, h1, native},
		{"otlp-grpc", otlp.TraceExportProcedure, "application/grpc", true, h2, otlpProto},
		{"otlp-http-proto", otlp.TracesPath, otlp.ContentProtobuf, false, h1, otlpProto},
		{"otlp-http-json", otlp.TracesPath, otlp.ContentJSON, false, h2, otlpJSONBody},
	}
	type request struct {
		p    protocol
		body []byte
	}
	var reqs []request
	for _, p := range protocols {
		for range perProtocol {
			b := p.body(len(reqs))
			if p.grpc {
				b = grpcFrame(b)
			}
			reqs = append(reqs, request{p, b})
		}
	}

	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtime.GC()
	base := liveHeap()
	var peak atomic.Int64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peak.Store(max(peak.Load(), liveHeap()))
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, len(reqs))
	for i, r := range reqs {
		wg.Go(func() {
			if err := rawAppend(ctx, r.p.hc, s.url, r.p.path, r.p.ctype, r.body, token); err != nil {
				errs <- fmt.Errorf("%s request %d: %w", r.p.name, i, err)
			}
		})
	}
	wg.Wait()
	close(done)
	<-sampled
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.h.InflightStats()
	grown := peak.Load() - base
	// Each admitted request holds its bytes a few times over while decoded,
	// validated, encrypted and appended, and the ledger's caches fill; a
	// waiting HTTP/2 stream holds at most its flow-control window. Without
	// the bound every request is in memory at once.
	h2Streams := 0
	for _, r := range reqs {
		if r.p.hc == h2 {
			h2Streams++
		}
	}
	allowed := 8*st.MaxBytes + int64(h2Streams)*http2StreamWindow + 16<<20
	t.Logf("%d requests of %d KiB: live heap grew %d MiB at most (allowed %d MiB; bound %d MiB); %d waited", len(reqs), size>>10, grown>>20, allowed>>20, st.MaxBytes>>20, st.Waited)
	if grown > allowed {
		t.Errorf("live heap grew by %d MiB under %d concurrent maximal requests, want at most %d MiB (bound of in-flight bytes %d MiB)", grown>>20, len(reqs), allowed>>20, st.MaxBytes>>20)
	}
	if st.HeldBytes != 0 || st.Waiting != 0 {
		t.Errorf("after the load: %+v, want nothing held or waiting", st)
	}
}

// holdBytes starts a Connect append over HTTP/1.1 whose body (1 MiB by its
// Content-Length) is never sent: it holds 1 MiB of the bound until
// stop is called.
func holdBytes(t *testing.T, s *testServer, token string) (stop func()) {
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, s.url+veritracev1connect.IngestServiceAppendSpansProcedure, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 20
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(TenantHeader, "acme")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	return func() {
		pw.CloseWithError(errors.New("test: body abandoned"))
		<-done
	}
}

// waitFor polls the bound's stats until ok holds.
func waitFor(t *testing.T, s *testServer, what string, ok func(InflightStats) bool) {
	t.Helper()
	for range 2000 {
		if ok(s.h.InflightStats()) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("never %s: %+v", what, s.h.InflightStats())
}

// TestInflightWaiterGivesUp fills the bound with two requests whose bodies
// never come, then: a request that waits and is cancelled holds nothing;
// one the server gives up on (MaxQueueWait) is refused resource_exhausted;
// once the held requests end, appends go through again.
func TestInflightWaiterGivesUp(t *testing.T) {
	s, token := inflightServer(t, 200*time.Millisecond)
	c := s.clients("connect", "acme", token)
	// Over HTTP/2, where the server learns at once that a client gave up
	// (over HTTP/1.1 it learns when the request's turn comes: docs).
	g := s.clients("grpc", "acme", token)
	stop1, stop2 := holdBytes(t, s, token), holdBytes(t, s, token)
	waitFor(t, s, "full", func(st InflightStats) bool { return st.HeldBytes == st.MaxBytes })

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := g.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}}))
		errc <- err
	}()
	waitFor(t, s, "waiting", func(st InflightStats) bool { return st.Waiting == 1 })
	cancel()
	if err := <-errc; connect.CodeOf(err) != connect.CodeCanceled {
		t.Errorf("cancelled waiter: AppendSpans = %v, want canceled", err)
	}
	waitFor(t, s, "rid of the waiter", func(st InflightStats) bool { return st.Waiting == 0 && st.HeldBytes == st.MaxBytes })

	_, err := c.ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(2)}}))
	wantCode(t, "AppendSpans past the longest wait", err, connect.CodeResourceExhausted, "waited")
	if st := s.h.InflightStats(); st.Refused != 1 {
		t.Errorf("Refused = %d, want 1: %+v", st.Refused, st)
	}
	_, _, err = c.otlp.post(context.Background(), otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(3))))
	wantCode(t, "OTLP/HTTP export past the longest wait", err, connect.CodeResourceExhausted, "waited")

	stop1()
	stop2()
	waitFor(t, s, "empty", func(st InflightStats) bool { return st.HeldBytes == 0 && st.Waiting == 0 })
	if _, err := c.ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(4)}})); err != nil {
		t.Fatalf("AppendSpans after the held requests ended = %v", err)
	}
}
