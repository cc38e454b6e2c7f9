package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// TestShutdownAnswersAppendsWaitingForRoom: at shutdown an append waiting
// for room under --max-inflight-bytes is answered at once, retryably
// (unavailable, "the server is shutting down"), instead of holding the
// shutdown to --shutdown-timeout (it could wait --max-queue-wait, longer);
// an append admitted before goes on and is acknowledged, and serve ends
// cleanly once it has.
func TestShutdownAnswersAppendsWaitingForRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server")
	}
	dir := t.TempDir()
	logs := &lockedBuffer{}
	const bound = 64 << 10
	addr, stop := startServeLog(t, serveConfig{DataDir: dir, MaxRequestBytes: bound, OTLPMaxBytes: bound, MaxInflightBytes: bound,
		MaxQueueWait: 10 * time.Minute, BodyTimeout: 10 * time.Minute, ShutdownTimeout: 2 * time.Minute},
		slog.New(slog.NewTextHandler(logs, nil)))
	url := "http://" + addr
	app := crashRoles(t, url, dir, v1.Role_ROLE_INGESTER)[v1.Role_ROLE_INGESTER]

	// The holder: an append without a Content-Length is charged the whole
	// bound; its body stalls halfway until the test lets it go on. It asks
	// for 100 Continue, which the server sends once it reads the body:
	// once it is admitted.
	body, err := proto.Marshal(&v1.AppendSpansRequest{Spans: []*v1.Span{benchSpan(1, "admitted before the shutdown")}})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	admitted := make(chan struct{})
	trace := &httptrace.ClientTrace{Got100Continue: func() { close(admitted) }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodPost,
		url+veritracev1connect.IngestServiceAppendSpansProcedure, pr)
	req.Header.Set("Expect", "100-continue")
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Connect-Protocol-Version", "1")
	req.Header.Set("Authorization", "Bearer "+app)
	held := make(chan error, 1)
	go func() {
		hc := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 10 * time.Minute}}
		resp, err := hc.Do(req)
		if err == nil {
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = &httpStatusError{status: resp.StatusCode, body: string(out)}
			}
		}
		held <- err
	}()
	select {
	case <-admitted:
	case err := <-held:
		t.Fatalf("the append meant to hold the bound = %v before it was admitted", err)
	}
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}

	// The waiter: parked until the server logs that appends wait.
	waiter := make(chan error, 1)
	go func() {
		ingest := (&clientFlags{addr: url, token: app}).ingest()
		_, err := ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{benchSpan(2, "waiting for room")}}))
		waiter <- err
	}()
	for !strings.Contains(logs.String(), "appends wait for room") {
		select {
		case err := <-waiter:
			t.Fatalf("the append meant to wait for room was answered first: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Answered while the holder still stalls, long before the shutdown
	// timeout (2 minutes) or the queue wait (10): 20 s only bounds a hang.
	select {
	case err := <-waiter:
		if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "shutting down") {
			t.Errorf("an append waiting for room at shutdown = %v; want unavailable, the server is shutting down", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("an append waiting for room was not answered within 20 s of the shutdown's start (shutdown timeout 2m, queue wait 10m): it holds the shutdown")
	}
	if _, err := pw.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-held; err != nil {
		t.Errorf("the append admitted before the shutdown = %v; want it acknowledged", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("serve = %v after a shutdown whose requests all finished", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("serve did not end within a minute of its last request; log:\n%s", logs)
	}
}
