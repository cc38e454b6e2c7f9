package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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
// most two at once, both of them of one key if it likes.
func inflightServer(t *testing.T, wait time.Duration) (*testServer, string) {
	const limit = 1 << 20
	s := startServerWith(t, Options{MaxRequestBytes: limit, OTLP: OTLPOptions{MaxBytes: limit}, MaxInflightBytes: 2 * limit, MaxKeyInflightBytes: 2 * limit, MaxQueueWait: &wait})
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
	// Waits as long as the client does (0).
	s, token := inflightServer(t, 0)
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
	// the bound every request is in memory at once. The slack covers the
	// ledger's caches and one Badger memtable rotation (a new 16 MiB arena
	// is allocated while the full one is still held until it is flushed),
	// which a run that fills a memtable meets: without the bound the heap
	// grows by 120 MiB and more.
	h2Streams := 0
	for _, r := range reqs {
		if r.p.hc == h2 {
			h2Streams++
		}
	}
	allowed := 8*st.MaxBytes + int64(h2Streams)*http2StreamWindow + 32<<20
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
	return stallBody(t, http.DefaultClient, s.url+veritracev1connect.IngestServiceAppendSpansProcedure, "application/proto", token)
}

// stallBody sends tenant acme a request to url declaring a body of 1 MiB
// and sends none of it until stop; stop returns once the request ended.
func stallBody(t *testing.T, hc *http.Client, url, ctype, token string) (stop func()) {
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 20
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(TenantHeader, "acme")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := hc.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	return func() {
		pw.CloseWithError(errors.New("test: body abandoned"))
		<-done
	}
}

// admittedBoth says that two stalled bodies of 1 MiB filled the bound:
// seen full, or both already cut (a body is cut only once admitted; a
// loaded machine can let the body timeout pass before waitFor looks).
func admittedBoth(st InflightStats) bool {
	return st.HeldBytes == st.MaxBytes || st.BodiesCut == 2
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
	// The waiter that gives up waits on a server whose longest wait it
	// cannot reach (a minute): with 200 ms, a loaded machine can refuse it
	// before the test has seen it wait and cancelled it.
	patient, ptoken := inflightServer(t, time.Minute)
	// Over HTTP/2, where the server learns at once that a client gave up
	// (over HTTP/1.1 it learns when the request's turn comes: docs).
	g := patient.clients("grpc", "acme", ptoken)
	pstop1, pstop2 := holdBytes(t, patient, ptoken), holdBytes(t, patient, ptoken)
	waitFor(t, patient, "full", func(st InflightStats) bool { return st.HeldBytes == st.MaxBytes })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := g.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}}))
		errc <- err
	}()
	waitFor(t, patient, "waiting", func(st InflightStats) bool { return st.Waiting == 1 })
	cancel()
	if err := <-errc; connect.CodeOf(err) != connect.CodeCanceled {
		t.Errorf("cancelled waiter: AppendSpans = %v, want canceled", err)
	}
	waitFor(t, patient, "rid of the waiter", func(st InflightStats) bool { return st.Waiting == 0 && st.HeldBytes == st.MaxBytes })
	if st := patient.h.InflightStats(); st.Refused != 0 {
		t.Errorf("Refused = %d after a waiter gave up, want 0: %+v", st.Refused, st)
	}
	pstop1()
	pstop2()

	s, token := inflightServer(t, 200*time.Millisecond)
	c := s.clients("connect", "acme", token)
	stop1, stop2 := holdBytes(t, s, token), holdBytes(t, s, token)
	waitFor(t, s, "full", func(st InflightStats) bool { return st.HeldBytes == st.MaxBytes })
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

// bodyTimeoutServer is inflightServer with a body timeout of timeout.
func bodyTimeoutServer(t *testing.T, timeout time.Duration) (*testServer, string) {
	const limit = 1 << 20
	s := startServerWith(t, Options{MaxRequestBytes: limit, OTLP: OTLPOptions{MaxBytes: limit}, MaxInflightBytes: 2 * limit,
		MaxKeyInflightBytes: 2 * limit, MaxQueueWait: new(300 * time.Millisecond), BodyTimeout: timeout})
	s.tenant(t, "acme")
	return s, s.key(t, policy.Ingester, "acme")
}

// TestStalledBodyReleasesTheBound: an app sends appends whose
// Content-Length is the largest request and never sends their bodies
// (slowloris), over HTTP/1.1 and HTTP/2 (h2c), natively and over
// OTLP/HTTP. They are admitted and hold the whole bound; the server cuts
// each body once it makes no progress for the body timeout, gives its
// bytes back, and another tenant's append goes through (review attack17:
// they held the bound for as long as the client kept its connection).
func TestStalledBodyReleasesTheBound(t *testing.T) {
	h2t := &http.Transport{Protocols: new(http.Protocols)}
	h2t.Protocols.SetUnencryptedHTTP2(true)
	h1, h2 := &http.Client{Transport: &http.Transport{}}, &http.Client{Transport: h2t}
	for _, tc := range []struct {
		name, path, ctype string
		hc                *http.Client
	}{
		{"connect HTTP/1.1", veritracev1connect.IngestServiceAppendSpansProcedure, "application/proto", h1},
		{"grpc h2c", veritracev1connect.IngestServiceAppendSpansProcedure, "application/grpc", h2},
		{"otlp-http HTTP/1.1", otlp.TracesPath, "application/x-protobuf", h1},
		{"otlp-http h2c", otlp.TracesPath, "application/x-protobuf", h2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, token := bodyTimeoutServer(t, 300*time.Millisecond)
			s.tenant(t, "beta")
			other := s.clients("connect", "beta", s.key(t, policy.Ingester, "beta"))
			stop1, stop2 := stallBody(t, tc.hc, s.url+tc.path, tc.ctype, token), stallBody(t, tc.hc, s.url+tc.path, tc.ctype, token)
			defer stop1()
			defer stop2()
			waitFor(t, s, "full", admittedBoth)
			waitFor(t, s, "released by the body timeout (10 s)", func(st InflightStats) bool { return st.BodiesCut == 2 && st.HeldBytes == 0 })
			if _, err := other.ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}})); err != nil {
				t.Errorf("tenant beta's append after acme's bodies stalled: %v", err)
			}
		})
	}
}

// TestSlowBodyThatProgressesIsServed: a body that arrives slowly but
// steadily, above the least rate (256 KiB over 1.6 s: 160 KiB/s against
// the default 64 KiB/s), over more than the body timeout in all, is read
// to its end and appended: the deadline moves forward while bytes arrive.
func TestSlowBodyThatProgressesIsServed(t *testing.T) {
	const timeout = time.Second
	s, token := bodyTimeoutServer(t, timeout)
	body, err := proto.Marshal(&v1.AppendSpansRequest{Spans: []*v1.Span{bigSpan(1, 256<<10)}})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		const chunks = 8 // 8 × timeout/5: longer than the timeout in all
		step := (len(body) + chunks - 1) / chunks
		for b := body; len(b) > 0; b = b[min(step, len(b)):] {
			if _, err := pw.Write(b[:min(step, len(b))]); err != nil {
				return
			}
			time.Sleep(timeout / 5)
		}
		pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, s.url+veritracev1connect.IngestServiceAppendSpansProcedure, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(TenantHeader, "acme")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("slow but steady append: HTTP %d: %.200s", resp.StatusCode, out)
	}
	if n, _ := s.l.Size(context.Background(), "acme"); n != 1 {
		t.Errorf("ledger holds %d entries of acme, want 1", n)
	}
}

// dripBody sends tenant acme an append declaring a body of 1 MiB and
// sends one byte every every, until stop.
func dripBody(t *testing.T, url, token string, every time.Duration) (stop func()) {
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 20
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(TenantHeader, "acme")
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-quit:
				pw.CloseWithError(io.ErrUnexpectedEOF)
				return
			case <-tk.C:
				if _, err := pw.Write([]byte{0x0a}); err != nil {
					return
				}
			}
		}
	}()
	go func() {
		defer close(done)
		if resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	return func() { close(quit); <-done }
}

// TestDripBodyIsCutBelowTheLeastRate: a body that sends one byte per
// third of the body timeout never goes a whole timeout without progress,
// but falls far behind the least rate (--min-body-rate): it is cut about
// a body timeout after admission and its charge given back. Two such
// requests declaring the largest body fill the bound; another tenant's
// append gets room well within 20 body timeouts (review attack20: they
// held it for as long as the client liked, 1 MiB at a byte per 10 s being
// about four months).
func TestDripBodyIsCutBelowTheLeastRate(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s, token := bodyTimeoutServer(t, timeout)
	s.tenant(t, "beta")
	other := s.clients("connect", "beta", s.key(t, policy.Ingester, "beta"))
	url := s.url + veritracev1connect.IngestServiceAppendSpansProcedure
	stop1, stop2 := dripBody(t, url, token, timeout/3), dripBody(t, url, token, timeout/3)
	defer stop1()
	defer stop2()
	waitFor(t, s, "full", admittedBoth)
	var err error
	for i := range 20 { // each refusal waits MaxQueueWait (300 ms): 20 body timeouts in all
		if _, err = other.ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(i)}})); err == nil {
			return
		}
	}
	t.Errorf("tenant beta's appends refused for 20 body timeouts while acme's two bodies drip one byte per timeout/3: last %v; stats %+v", err, s.h.InflightStats())
}

// TestOneKeyHoldsAtMostItsShare: by default one API key holds at most
// half the bound (here one maximal request). Its stalled request holds
// that; its next waits, and is refused after the longest wait, while
// another tenant's app still gets room.
func TestOneKeyHoldsAtMostItsShare(t *testing.T) {
	const limit = 1 << 20
	s := startServerWith(t, Options{MaxRequestBytes: limit, OTLP: OTLPOptions{MaxBytes: limit}, MaxInflightBytes: 2 * limit, MaxQueueWait: new(300 * time.Millisecond)})
	s.tenant(t, "acme")
	s.tenant(t, "beta")
	token := s.key(t, policy.Ingester, "acme")
	other := s.clients("connect", "beta", s.key(t, policy.Ingester, "beta"))
	stop1 := holdBytes(t, s, token)
	defer stop1()
	waitFor(t, s, "acme's share taken", func(st InflightStats) bool { return st.HeldBytes == limit })
	_, err := s.clients("connect", "acme", token).ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}}))
	wantCode(t, "acme's next append while its share is held", err, connect.CodeResourceExhausted, "API key")
	if _, err := other.ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(2)}})); err != nil {
		t.Errorf("tenant beta's append while acme holds its share: %v", err)
	}
}

// TestLyingContentLength: a request that declares 10 bytes and sends a
// full message is charged 10 bytes; the server reads no more than it
// declared (HTTP/1.1: the rest is not this request's body), so the
// message cannot be appended through a 10-byte charge.
func TestLyingContentLength(t *testing.T) {
	s, token := inflightServer(t, time.Second)
	body, err := proto.Marshal(&v1.AppendSpansRequest{Spans: []*v1.Span{bigSpan(1, 64<<10)}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nAuthorization: Bearer %s\r\n%s: acme\r\nContent-Length: 10\r\n\r\n",
		veritracev1connect.IngestServiceAppendSpansProcedure, token, TenantHeader)
	conn.Write(body)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("a request declaring 10 bytes and sending %d was appended", len(body))
	}
	if n, _ := s.l.Size(context.Background(), "acme"); n != 0 {
		t.Errorf("ledger holds %d entries after the lying request", n)
	}
}
