package rpc

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/policy"
)

// h2cClient is an HTTP client that speaks gRPC's HTTP/2 without TLS.
func h2cClient() *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// TestFrontAuthenticatesBeforeBody: every Connect and gRPC procedure on the
// port, not only OTLP's, refuses a request without a valid key before
// reading its body: a body that is not even a message, or a gzip bomb, is
// answered unauthenticated, recorded in the access log like any failed
// authentication, and counted by the limiter, which then answers
// resource_exhausted.
func TestFrontAuthenticatesBeforeBody(t *testing.T) {
	s := startServerWith(t, Options{AuthFailureBurst: 4, AuthFailureRate: 0.001})
	ctx := context.Background()
	before := len(s.accessRecords(t, "system"))
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 8<<20))
	zw.Close()
	procs := []string{veritracev1connect.IngestServiceAppendSpansProcedure, veritracev1connect.LedgerServiceGetEntryProcedure, otlp.TraceExportProcedure}
	n := 0
	for _, proc := range procs {
		for _, protocol := range []string{"grpc", "connect"} {
			opts := []connect.ClientOption{connect.WithCodec(rawCodec{}), connect.WithSendGzip()}
			if protocol == "grpc" {
				opts = append(opts, connect.WithGRPC())
			}
			c := connect.NewClient[rawMsg, rawMsg](h2cClient(), s.url+proc, opts...)
			body := []byte("\xff\xff\xff not a message")
			if n%2 == 1 {
				body = make([]byte, 8<<20) // sent gzipped: 8 KiB on the wire
			}
			_, err := c.CallUnary(ctx, connect.NewRequest(&rawMsg{body}))
			want := connect.CodeUnauthenticated
			if n >= 4 {
				want = connect.CodeResourceExhausted
			}
			if connect.CodeOf(err) != want {
				t.Errorf("%s over %s without a key = %v; want %v before the body is read", proc, protocol, err, want)
			}
			n++
		}
	}
	recs := s.accessRecords(t, "system")[before:]
	if len(recs) == 0 || recs[0].GetCode() != "unauthenticated" || recs[0].GetProcedure() != procs[0] {
		t.Errorf("access records of the refusals = %v; want the first refusal recorded", recs)
	}
}

// TestGzipInflatedOnlyToTheLimit: a gzip message from a caller with a
// valid key is inflated at most to the read limit and then refused with
// resource_exhausted; connect-go's own decompressor would inflate the rest
// to count it.
func TestGzipInflatedOnlyToTheLimit(t *testing.T) {
	const limit = 1 << 20
	s := startServerWith(t, Options{MaxRequestBytes: limit, OTLP: OTLPOptions{MaxBytes: limit}})
	token := s.key(t, policy.Ingester, "default")
	for _, proc := range []string{veritracev1connect.IngestServiceAppendSpansProcedure, otlp.TraceExportProcedure} {
		c := connect.NewClient[rawMsg, rawMsg](h2cClient(), s.url+proc,
			connect.WithGRPC(), connect.WithCodec(rawCodec{}), connect.WithSendGzip(), connect.WithInterceptors(ClientHeaders("", token)))
		_, err := c.CallUnary(context.Background(), connect.NewRequest(&rawMsg{make([]byte, 8*limit)}))
		if connect.CodeOf(err) != connect.CodeResourceExhausted || strings.Contains(err.Error(), fmt.Sprintf("message size %d", 8*limit)) {
			t.Errorf("%s: gzip bomb of %d bytes = %v; want resource_exhausted without inflating it whole", proc, 8*limit, err)
		}
	}
	// The decompressor itself: only a sliver of a bomb's compressed bytes
	// is consumed.
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	var bomb bytes.Buffer
	for range 64 {
		bomb.Write(member.Bytes())
	}
	src := &countingReader{r: bytes.NewReader(bomb.Bytes())}
	d := newLimitedGzip(limit)
	if err := d.Reset(src); err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, io.LimitReader(d, limit+1))
	if err != nil || got != limit+1 {
		t.Fatalf("read %d bytes, %v; want %d", got, err, limit+1)
	}
	if _, err := io.Copy(io.Discard, d); !errors.Is(err, errInflateLimit) {
		t.Errorf("reading on past the limit = %v, want errInflateLimit", err)
	}
	if n := src.n.Load(); n > int64(bomb.Len()/10) {
		t.Errorf("consumed %d of %d compressed bytes: inflated far past the limit", n, bomb.Len())
	}
}
