package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// TestGRPCExportsChargedTheirDeclaredSize: grpc-go (the official Go
// OTLP/gRPC exporter) sends no Content-Length, so an export used to be
// charged the whole --otlp-max-bytes (16 MiB): with the default bound
// (256 MiB, 128 MiB a key) only 8 small exports of one key were handled
// at once, far below the 64 export slots. An uncompressed gRPC export is
// charged the length its message prefix declares: 12 small exports of one
// key are all in progress at once.
func TestGRPCExportsChargedTheirDeclaredSize(t *testing.T) {
	const n = 12
	entered := make(chan struct{}, n)
	release := make(chan struct{})
	var l atomic.Pointer[ledger.Ledger]
	s := startServerWith(t, Options{otlpAppend: func(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error) {
		entered <- struct{}{}
		<-release
		return l.Load().Append(ctx, tenant, recs)
	}})
	l.Store(s.l)
	ctx := context.Background()
	token := s.key(t, policy.Ingester, "default")
	host := strings.TrimPrefix(s.url, "http://")
	errs := make(chan error, n)
	for range n {
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(host), otlptracegrpc.WithInsecure(),
			otlptracegrpc.WithHeaders(map[string]string{"Authorization": "Bearer " + token}), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		defer exp.Shutdown(ctx)
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		_, sp := tp.Tracer("veritrace-test").Start(ctx, "chat")
		sp.End()
		go func() { errs <- exp.ExportSpans(ctx, rec.Ended()) }()
	}
	waitFor(t, s, "every export in progress or waiting", func(st InflightStats) bool { return st.ExportsInProgress+st.Waiting == n })
	st := s.h.InflightStats()
	t.Logf("%d small exports of one key over grpc-go with the default bound: %+v", n, st)
	if st.ExportsInProgress != n {
		t.Errorf("%d of %d small grpc-go exports of one key in progress at once with the default bound (%d bytes held), want all: an export is charged what it declares, not --otlp-max-bytes",
			st.ExportsInProgress, n, st.HeldBytes)
	}
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("export: %v", err)
		}
	}
}

// rawGRPC posts body to the OTLP gRPC trace service over h2c as it is
// (prefix included) and returns the call's grpc-status and grpc-message.
func rawGRPC(t *testing.T, s *testServer, token string, body io.Reader) (string, string) {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, s.url+otlp.TraceExportProcedure, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	for _, h := range []http.Header{resp.Trailer, resp.Header} {
		if st := h.Get("Grpc-Status"); st != "" {
			return st, h.Get("Grpc-Message")
		}
	}
	t.Fatalf("no grpc-status: %s %v", resp.Status, resp.Header)
	return "", ""
}

// grpcMessage is msg with its gRPC prefix, declaring size bytes.
func grpcMessage(flags byte, size uint32, msg []byte) []byte {
	b := []byte{flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], size)
	return append(b, msg...)
}

// TestGRPCExportPrefixIsChecked: a gRPC export is charged what its prefix
// declares, so what it sends must keep to it: a body that sends nothing
// before its prefix is cut after --body-timeout and holds nothing; one that
// goes on past its message is refused; one that declares more than
// --otlp-max-bytes is refused; a valid one passes.
func TestGRPCExportPrefixIsChecked(t *testing.T) {
	s := startServerWith(t, Options{BodyTimeout: 200 * time.Millisecond, OTLP: OTLPOptions{MaxBytes: 1 << 20}})
	token := s.key(t, policy.Ingester, "default")
	msg := mustMarshal(otlpExport(otlpSpan(1)))

	if st, m := rawGRPC(t, s, token, bytes.NewReader(grpcMessage(0, uint32(len(msg)), msg))); st != "0" {
		t.Errorf("a valid export = grpc-status %s %q, want 0", st, m)
	}
	more := append(grpcMessage(0, uint32(len(msg)), msg), grpcMessage(0, 1<<19, make([]byte, 1<<19))...)
	if st, m := rawGRPC(t, s, token, bytes.NewReader(more)); st != "3" || !strings.Contains(m, "past the message its prefix declares") {
		t.Errorf("an export that goes on past its message = grpc-status %s %q, want 3 (invalid_argument), past the message its prefix declares", st, m)
	}
	if st, m := rawGRPC(t, s, token, bytes.NewReader(grpcMessage(0, 1<<20+1, msg))); st != "8" {
		t.Errorf("an export declaring more than --otlp-max-bytes = grpc-status %s %q, want 8 (resource_exhausted)", st, m)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	if st, m := rawGRPC(t, s, token, pr); st != "4" || !strings.Contains(m, "before its message") {
		t.Errorf("an export that sends nothing = grpc-status %s %q, want 4 (deadline_exceeded), cut before its message's length", st, m)
	}
	waitFor(t, s, "nothing held", func(st InflightStats) bool { return st.HeldBytes == 0 && st.Waiting == 0 && st.ExportsInProgress == 0 })
	if st := s.h.InflightStats(); st.BodiesCut != 1 {
		t.Errorf("BodiesCut = %d after one export cut before its prefix, want 1", st.BodiesCut)
	}
}

// countingReader counts the bytes read through it (by another goroutine,
// a client's transport, too).
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// zeros is an endless body of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestGRPCExportDeclaringMoreThanMaxIsRefusedAtItsPrefix: a gRPC export
// whose prefix declares 4 GiB (more than --otlp-max-bytes), compressed or
// not, is refused at its prefix with resource_exhausted (not retryable:
// the export is the client's data), before admission: the server does not
// read on to the declared length (connect-go would discard it all before
// refusing), so the client sends no more than its stream's window past
// the prefix.
func TestGRPCExportDeclaringMoreThanMaxIsRefusedAtItsPrefix(t *testing.T) {
	const limit = 1 << 20
	s := startServerWith(t, Options{OTLP: OTLPOptions{MaxBytes: limit}})
	token := s.key(t, policy.Ingester, "default")
	for _, flags := range []byte{0, 1} {
		t.Run(fmt.Sprintf("flags=%d", flags), func(t *testing.T) {
			const sent = 64 << 20
			body := &countingReader{r: io.MultiReader(
				bytes.NewReader(grpcMessage(flags, 0xFFFFFFFF, nil)),
				io.LimitReader(zeros{}, sent))}
			st, m := rawGRPC(t, s, token, body)
			got := body.n.Load()
			t.Logf("grpc-status %s %q after the server took %d bytes of the body (limit %d)", st, m, got, limit)
			// The client may run ahead of the server by the stream's window.
			if bound := int64(limit + 2*http2StreamWindow + 64<<10); got > bound {
				t.Errorf("the server read %d bytes of an export declaring 4 GiB before refusing it, want at most %d (--otlp-max-bytes and the stream's window)", got, bound)
			}
			if st != "8" || !strings.Contains(m, "--otlp-max-bytes") {
				t.Errorf("grpc-status %s %q, want 8 (resource_exhausted, not retryable) naming --otlp-max-bytes", st, m)
			}
		})
	}
}

// TestDeclaredBodyStopsAtMax: the second guard: a declaredBody never gives
// more than max bytes of its message, whatever the prefix declared.
func TestDeclaredBodyStopsAtMax(t *testing.T) {
	b := &declaredBody{ReadCloser: io.NopCloser(io.LimitReader(zeros{}, 100)), left: 100, max: 10}
	got, err := io.ReadAll(b)
	if len(got) != 10 || !errors.Is(err, otlp.ErrTooLarge) || connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("ReadAll(declaredBody of 100 bytes, max 10) = %d bytes, %v; want 10 bytes, resource_exhausted wrapping otlp.ErrTooLarge", len(got), err)
	}
}
