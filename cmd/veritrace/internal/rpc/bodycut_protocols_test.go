package rpc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// cutH2 sends, over h2c, a body of declared bytes of which only start
// arrives, and returns the answer's status, headers and trailers merged,
// and body.
func cutH2(t *testing.T, h2 *http.Client, url, ctype, token string, declared int, start []byte) (int, http.Header, string) {
	t.Helper()
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(declared)
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(TenantHeader, "acme")
	go pw.Write(start)
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	h := resp.Header.Clone()
	for k, v := range resp.Trailer {
		h[k] = v
	}
	return resp.StatusCode, h, string(b)
}

// TestCutBodyCodes: a cut body is answered with the code the
// change promises on every protocol (Connect: deadline_exceeded, HTTP
// 504; gRPC: status 4; OTLP/HTTP: 503 with Retry-After; OTLP/gRPC: a
// retryable status naming the limit), never with an address, and the
// in-flight bound's room comes back exactly (held 0) after many cuts.
func TestCutBodyCodes(t *testing.T) {
	s, token := bodyTimeoutServer(t, 300*time.Millisecond)
	h2t := &http.Transport{Protocols: new(http.Protocols)}
	h2t.Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: h2t}
	host := strings.TrimPrefix(s.url, "http://")
	// A gRPC envelope declaring a 64 KiB message, then a few of its bytes:
	// cut mid-message.
	grpcStart := []byte{0, 0, 1, 0, 0, 0x0a, 0x80}
	for round := 0; round < 3; round++ {
		for _, tc := range []struct {
			name, path, ctype string
			start             []byte
			ok                func(status int, h http.Header, body string) string
		}{
			{"connect h2c", veritracev1connect.IngestServiceAppendSpansProcedure, "application/proto", []byte{0x0a, 0x80}, func(st int, h http.Header, body string) string {
				if st != http.StatusGatewayTimeout || !strings.Contains(body, "deadline_exceeded") {
					return fmt.Sprintf("want HTTP 504 deadline_exceeded, got %d %.200s", st, body)
				}
				return ""
			}},
			{"grpc h2c mid-message", veritracev1connect.IngestServiceAppendSpansProcedure, "application/grpc", grpcStart, func(st int, h http.Header, body string) string {
				if h.Get("Grpc-Status") != "4" {
					return fmt.Sprintf("want grpc-status 4 (deadline_exceeded), got %q %q", h.Get("Grpc-Status"), h.Get("Grpc-Message"))
				}
				return ""
			}},
			{"otlp-grpc h2c mid-message", otlp.TraceExportProcedure, "application/grpc", grpcStart, func(st int, h http.Header, body string) string {
				// OTLP/gRPC: retryable codes are UNAVAILABLE and DEADLINE_EXCEEDED (among others).
				if g := h.Get("Grpc-Status"); g != "4" && g != "14" {
					return fmt.Sprintf("want grpc-status 4 or 14 (retryable), got %q %q", g, h.Get("Grpc-Message"))
				}
				if !strings.Contains(h.Get("Grpc-Message"), "body-timeout") {
					return fmt.Sprintf("grpc-message does not name the limit: %q", h.Get("Grpc-Message"))
				}
				return ""
			}},
			{"otlp-http json h2c", otlp.TracesPath, "application/json", []byte(`{"resourceSpans":[`), func(st int, h http.Header, body string) string {
				if st != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body, "body-timeout") {
					return fmt.Sprintf("want HTTP 503 with Retry-After naming the limit, got %d Retry-After=%q %.200s", st, h.Get("Retry-After"), body)
				}
				return ""
			}},
			{"otlp-http h2c", otlp.TracesPath, "application/x-protobuf", []byte{0x0a, 0x80}, func(st int, h http.Header, body string) string {
				if st != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
					return fmt.Sprintf("want HTTP 503 with Retry-After, got %d Retry-After=%q", st, h.Get("Retry-After"))
				}
				return ""
			}},
		} {
			status, h, body := cutH2(t, h2, s.url+tc.path, tc.ctype, token, 64<<10, tc.start)
			all := fmt.Sprintf("%d %v %s", status, h, body)
			if round == 0 {
				t.Logf("%s: %.400s", tc.name, all)
			}
			if msg := tc.ok(status, h, body); msg != "" {
				t.Errorf("round %d, %s: %s", round, tc.name, msg)
			}
			if strings.Contains(all, "127.0.0.1") || strings.Contains(all, host) {
				t.Errorf("round %d, %s: the answer names socket addresses: %.300s", round, tc.name, all)
			}
		}
	}
	// OTLP/HTTP over HTTP/1.1: the status line and Retry-After too.
	for _, declared := range []int{64 << 10, 1 << 20} {
		text := cutBodyAnswer(t, h2, true, declared, s.url+otlp.TracesPath, "application/x-protobuf", token)
		if !strings.HasPrefix(text, "HTTP/1.1 503") || !strings.Contains(text, "Retry-After:") {
			t.Errorf("OTLP/HTTP over HTTP/1.1, %d bytes declared, cut: %.300q", declared, text)
		}
	}
	waitFor(t, s, "all room given back after the cuts", func(st InflightStats) bool { return st.HeldBytes == 0 && st.Waiting == 0 })
	if st := s.h.InflightStats(); st.HeldBytes != 0 {
		t.Errorf("after the cuts: %+v", st)
	}
}

// TestCutHTTP1Pipelined: over HTTP/1.1 with keep-alive, a
// complete append followed on the same connection by one whose body
// stalls: the first is answered 200, the second is cut with 504
// deadline_exceeded naming the limit, and the connection then closes.
func TestCutHTTP1Pipelined(t *testing.T) {
	s, token := bodyTimeoutServer(t, 300*time.Millisecond)
	body, err := proto.Marshal(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}})
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(s.url, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	head := func(n int) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/proto\r\nAuthorization: Bearer %s\r\n%s: acme\r\nContent-Length: %d\r\n\r\n",
			veritracev1connect.IngestServiceAppendSpansProcedure, host, token, TenantHeader, n)
	}
	// Both written at once (pipelined): the second declares 64 KiB and
	// sends 2 bytes.
	fmt.Fprintf(c, "%s%s%s%s", head(len(body)), body, head(64<<10), []byte{0x0a, 0x80})
	br := bufio.NewReader(c)
	var codes []int
	var texts []string
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		texts = append(texts, string(b))
	}
	t.Logf("answers: %v %.300q", codes, texts)
	if len(codes) != 2 || codes[0] != http.StatusOK || codes[1] != http.StatusGatewayTimeout {
		t.Fatalf("pipelined complete + stalled append: answers %v, want [200 504]", codes)
	}
	if !strings.Contains(texts[1], "body-timeout") || strings.Contains(texts[1], "127.0.0.1") {
		t.Errorf("the cut's answer: %.300s", texts[1])
	}
	if n, _ := s.l.Size(context.Background(), "acme"); n != 1 {
		t.Errorf("ledger holds %d entries of acme, want 1", n)
	}
	waitFor(t, s, "room given back", func(st InflightStats) bool { return st.HeldBytes == 0 })
}

// TestCutCompressedAndChunked: a cut body that is gzip-compressed
// (the server decompresses while it reads) or sent chunked over
// HTTP/1.1 is answered like any cut body: deadline_exceeded (OTLP/HTTP
// 503), naming the limit.
func TestCutCompressedAndChunked(t *testing.T) {
	s, token := bodyTimeoutServer(t, 300*time.Millisecond)
	h2t := &http.Transport{Protocols: new(http.Protocols)}
	h2t.Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: h2t}
	host := strings.TrimPrefix(s.url, "http://")
	gz := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff} // a gzip header, then nothing
	for _, tc := range []struct {
		name, path, ctype string
		wantStatus        int
	}{
		{"connect gzip", veritracev1connect.IngestServiceAppendSpansProcedure, "application/proto", http.StatusGatewayTimeout},
		{"otlp-http gzip", otlp.TracesPath, "application/x-protobuf", http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pw.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+tc.path, pr)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = 64 << 10
			req.Header.Set("Content-Type", tc.ctype)
			req.Header.Set("Content-Encoding", "gzip")
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set(TenantHeader, "acme")
			go pw.Write(gz)
			resp, err := h2.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("answer: %d %.300q", resp.StatusCode, b)
			if resp.StatusCode != tc.wantStatus || !strings.Contains(string(b), "body-timeout") || strings.Contains(string(b), "127.0.0.1") {
				t.Errorf("a cut gzip body: HTTP %d %.300q; want %d naming --body-timeout", resp.StatusCode, b, tc.wantStatus)
			}
		})
	}
	for _, path := range []string{veritracev1connect.IngestServiceAppendSpansProcedure, otlp.TracesPath} {
		t.Run("HTTP/1.1 chunked "+path, func(t *testing.T) {
			c, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			ctype := "application/proto"
			if path == otlp.TracesPath {
				ctype = "application/x-protobuf"
			}
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nAuthorization: Bearer %s\r\n%s: acme\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n\n\x80\r\n",
				path, host, ctype, token, TenantHeader)
			b, _ := io.ReadAll(c)
			t.Logf("answer: %.300q", b)
			if !strings.Contains(string(b), "body-timeout") || strings.Contains(string(b), "127.0.0.1") ||
				!(strings.HasPrefix(string(b), "HTTP/1.1 504") || strings.HasPrefix(string(b), "HTTP/1.1 503")) {
				t.Errorf("a cut chunked body: %.300q", b)
			}
		})
	}
	waitFor(t, s, "room given back", func(st InflightStats) bool { return st.HeldBytes == 0 })
}

// TestSlowBodyServedOverH2: a body that arrives slowly but above
// the least rate, over more than the body timeout in all, is served over
// h2c too (Connect and gRPC), not only over HTTP/1.1.
func TestSlowBodyServedOverH2(t *testing.T) {
	const timeout = time.Second
	s, token := bodyTimeoutServer(t, timeout)
	h2t := &http.Transport{Protocols: new(http.Protocols)}
	h2t.Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: h2t}
	msg, err := proto.Marshal(&v1.AppendSpansRequest{Spans: []*v1.Span{bigSpan(1, 256<<10)}})
	if err != nil {
		t.Fatal(err)
	}
	msg2, err := proto.Marshal(&v1.AppendSpansRequest{Spans: []*v1.Span{bigSpan(2, 256<<10)}})
	if err != nil {
		t.Fatal(err)
	}
	grpcBody := append([]byte{0, byte(len(msg2) >> 24), byte(len(msg2) >> 16), byte(len(msg2) >> 8), byte(len(msg2))}, msg2...)
	for _, tc := range []struct {
		name, ctype string
		body        []byte
	}{
		{"connect h2c", "application/proto", msg},
		{"grpc h2c", "application/grpc", grpcBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			go func() {
				const chunks = 8 // 8 × timeout/5: longer than the timeout in all
				step := (len(tc.body) + chunks - 1) / chunks
				for b := tc.body; len(b) > 0; b = b[min(step, len(b)):] {
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
			req.ContentLength = int64(len(tc.body))
			req.Header.Set("Content-Type", tc.ctype)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set(TenantHeader, "acme")
			resp, err := h2.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if g := resp.Trailer.Get("Grpc-Status") + resp.Header.Get("Grpc-Status"); resp.StatusCode != http.StatusOK || g != "" && g != "0" {
				t.Errorf("slow but steady append: HTTP %d grpc-status %q %q: %.200s", resp.StatusCode, g, resp.Trailer.Get("Grpc-Message"), out)
			}
		})
	}
	if n, _ := s.l.Size(context.Background(), "acme"); n != 2 {
		t.Errorf("ledger holds %d entries of acme, want 2", n)
	}
}
