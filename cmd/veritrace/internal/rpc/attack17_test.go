package rpc

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/policy"
)

// TestAttack17StalledBodyHoldsBoundForever: an app of one tenant sends
// two append requests whose Content-Length is the largest request and
// never sends their bodies (slowloris). They are admitted, hold the whole
// bound, and nothing ever ends them: no read deadline is set on an
// admitted request's body, so every other tenant's appends are refused
// resource_exhausted for as long as the stalled client keeps its
// connections open. The server must end a body that makes no progress
// (here: well within 10 s, 30 times --max-queue-wait).
func TestAttack17StalledBodyHoldsBoundForever(t *testing.T) {
	s, token := inflightServer(t, 300*time.Millisecond)
	s.tenant(t, "beta")
	other := s.clients("connect", "beta", s.key(t, policy.Ingester, "beta"))
	stop1, stop2 := holdBytes(t, s, token), holdBytes(t, s, token)
	defer stop1()
	defer stop2()
	waitFor(t, s, "full", func(st InflightStats) bool { return st.HeldBytes == st.MaxBytes })

	_, err := other.ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}}))
	t.Logf("tenant beta's append while tenant acme's bodies stall: %v", err)

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && s.h.InflightStats().HeldBytes != 0 {
		time.Sleep(50 * time.Millisecond)
	}
	if st := s.h.InflightStats(); st.HeldBytes != 0 {
		_, err := other.ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(2)}}))
		t.Errorf("10 s after two requests stalled their bodies they still hold the bound (%+v); another tenant's append: %v", st, err)
	}
}

// TestAttack17LyingContentLength: a request that declares 10 bytes and
// sends a full message is charged 10 bytes; the server must read no more
// than it declared (HTTP/1.1: the rest is not this request's body), so
// the message cannot be appended through a 10-byte charge.
func TestAttack17LyingContentLength(t *testing.T) {
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
