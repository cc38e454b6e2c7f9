package rpc

import (
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// cutBodyAnswer sends an append whose body stops after a few bytes
// (declaring declared bytes) and returns what the server answers once it cuts
// the body: over HTTP/1.1 everything it writes on the connection until
// it closes it; over HTTP/2 the answer's body and grpc-message.
func cutBodyAnswer(t *testing.T, h2 *http.Client, h1 bool, declared int, url, ctype, token string) string {
	t.Helper()
	start := []byte{0x0a, 0x80, 0x80, 0x04} // then nothing
	if h1 {
		u, err := neturl.Parse(url)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nAuthorization: Bearer %s\r\n%s: acme\r\nContent-Length: %d\r\n\r\n%s",
			u.Path, u.Host, ctype, token, TenantHeader, declared, start)
		b, _ := io.ReadAll(c)
		return string(b)
	}
	status, h, b := cutH2(t, h2, url, ctype, token, declared, start)
	return fmt.Sprintf("HTTP %d %s grpc-message: %s", status, b, h.Get("Grpc-Message"))
}

// TestCutBodyAnswerNamesTheLimit: a client whose append body the server
// cuts (--body-timeout, --min-body-rate) is told so, in words naming the
// limit, and never the server's or its own socket addresses (those stay
// in the server's log). Before, over HTTP/1.1 a client was answered "read
// tcp <server>-><client>: i/o timeout", or, for a body of up to 256 KiB,
// nothing at all while the server waited for the rest of it.
func TestCutBodyAnswerNamesTheLimit(t *testing.T) {
	s, token := bodyTimeoutServer(t, 300*time.Millisecond)
	h2t := &http.Transport{Protocols: new(http.Protocols)}
	h2t.Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: h2t}
	host := strings.TrimPrefix(s.url, "http://")
	// Over HTTP/1.1 the server reads the rest of a body of up to 256 KiB
	// before it answers, and closes the connection after a larger one.
	for _, tc := range []struct {
		name, path, ctype string
		h1                bool
		declared          int
	}{
		{"connect HTTP/1.1 64 KiB", veritracev1connect.IngestServiceAppendSpansProcedure, "application/proto", true, 64 << 10},
		{"connect HTTP/1.1 1 MiB", veritracev1connect.IngestServiceAppendSpansProcedure, "application/proto", true, 1 << 20},
		{"connect h2c", veritracev1connect.IngestServiceAppendSpansProcedure, "application/proto", false, 64 << 10},
		{"grpc h2c", veritracev1connect.IngestServiceAppendSpansProcedure, "application/grpc", false, 64 << 10},
		{"otlp-http HTTP/1.1 64 KiB", otlp.TracesPath, "application/x-protobuf", true, 64 << 10},
		{"otlp-http HTTP/1.1 1 MiB", otlp.TracesPath, "application/x-protobuf", true, 1 << 20},
		{"otlp-http h2c", otlp.TracesPath, "application/x-protobuf", false, 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := cutBodyAnswer(t, h2, tc.h1, tc.declared, s.url+tc.path, tc.ctype, token)
			t.Logf("answer: %.400q", text)
			if strings.Contains(text, "127.0.0.1") || strings.Contains(text, host) {
				t.Errorf("the answer to a cut body names socket addresses: %.300s", text)
			}
			if !strings.Contains(text, "body-timeout") {
				t.Errorf("the answer to a cut body does not name the limit (--body-timeout): %.300s", text)
			}
		})
	}
	if logs := s.logs.String(); !strings.Contains(logs, "an append's body was cut") {
		t.Errorf("the server's log has no line for the cut bodies:\n%s", logs)
	}
}
