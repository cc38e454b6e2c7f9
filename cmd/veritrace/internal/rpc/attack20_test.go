package rpc

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/policy"
)

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

// TestAttack20DripBodyHoldsTheBoundForever: the body timeout cuts a body
// only when it sends nothing for the timeout; one byte per third of it
// keeps a request that declared the largest body admitted, holding its
// whole charge, for as long as the client likes (1 MiB at one byte per
// 10 s is about four months). Two such requests hold the whole bound and
// another tenant's appends are refused for all that time. Expected: a
// body is held to a least rate (or a whole-body deadline), so the bound
// comes back well within 20 body timeouts.
func TestAttack20DripBodyHoldsTheBoundForever(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s, token := bodyTimeoutServer(t, timeout)
	s.tenant(t, "beta")
	other := s.clients("connect", "beta", s.key(t, policy.Ingester, "beta"))
	url := s.url + veritracev1connect.IngestServiceAppendSpansProcedure
	stop1, stop2 := dripBody(t, url, token, timeout/3), dripBody(t, url, token, timeout/3)
	defer stop1()
	defer stop2()
	waitFor(t, s, "full", func(st InflightStats) bool { return st.HeldBytes == st.MaxBytes })
	var err error
	for i := range 20 { // each refusal waits MaxQueueWait (300 ms): 20 body timeouts in all
		if _, err = other.ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(i)}})); err == nil {
			return
		}
	}
	t.Errorf("tenant beta's appends refused for 20 body timeouts while acme's two bodies drip one byte per timeout/3: last %v; stats %+v", err, s.h.InflightStats())
}
