package rpc

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// retryableByOTLPGRPC says whether an official OTLP/gRPC exporter retries
// an export that failed with err (OTLP specification, "Failures" of
// OTLP/gRPC: UNAVAILABLE and the other transient codes always,
// RESOURCE_EXHAUSTED only with RetryInfo).
func retryableByOTLPGRPC(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeCanceled, connect.CodeDeadlineExceeded, connect.CodeAborted, connect.CodeOutOfRange,
		connect.CodeUnavailable, connect.CodeDataLoss:
		return true
	case connect.CodeResourceExhausted:
		var ce *connect.Error
		if !errors.As(err, &ce) {
			return false
		}
		for _, d := range ce.Details() {
			if v, err := d.Value(); err == nil {
				if _, ok := v.(*errdetails.RetryInfo); ok {
					return true
				}
			}
		}
	}
	return false
}

// TestGRPCExportByteWaitRefusalIsRetryable: an OTLP gRPC export, valid,
// that waits past MaxQueueWait for room for its bytes must be refused so
// that the official exporters retry it (UNAVAILABLE, or RESOURCE_EXHAUSTED
// with RetryInfo), as an export waiting for a slot is, and as the ledger's
// own overload is (otlp.GRPCError). A gRPC export is charged the whole
// OTLP.MaxBytes (no Content-Length), so with the defaults 16 of them
// fill --max-inflight-bytes and 8 one key's share when the client sends no
// Content-Length (grpc-go does not; connect-go's gRPC client, used here,
// does, so the test makes the bound smaller than two exports): the bytes
// wait, not the slot wait, is the one grpc-go exporters meet first.
func TestGRPCExportByteWaitRefusalIsRetryable(t *testing.T) {
	s, entered, release := startFirstExportBlocked(t, Options{MaxRequestBytes: 700, MaxInflightBytes: 700, MaxQueueWait: new(200 * time.Millisecond),
		OTLP: OTLPOptions{MaxBytes: 700}})
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	first := exportAsync(ctx, ing, otlpSpan(1))
	<-entered
	defer func() {
		if t.Failed() {
			t.Logf("stats: %+v", s.h.InflightStats())
		}
	}()

	_, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(2))))
	if !retryableByOTLPGRPC(err) {
		t.Errorf("a valid gRPC export refused after waiting for room for its bytes = %v (code %v); an OTLP/gRPC exporter drops it: want UNAVAILABLE or RESOURCE_EXHAUSTED with RetryInfo", err, connect.CodeOf(err))
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// TestNativeAppendsNotStarvedBySlotWaiters: while the only export
// slot is taken, OTLP exports of two keys wait for it, each holding its
// byte charge though nothing of it is read; a native AppendSpans of a third
// key still goes through. (It passes: connect-go's clients send a
// Content-Length, so a waiter holds its body's size. A grpc-go exporter
// sends none and a waiter holds the whole OTLP.MaxBytes: not covered.)
func TestNativeAppendsNotStarvedBySlotWaiters(t *testing.T) {
	s, entered, release := startFirstExportBlocked(t, Options{MaxRequestBytes: 1 << 20, MaxInflightBytes: 4 << 20, MaxKeyInflightBytes: 2 << 20,
		OTLP: OTLPOptions{MaxBytes: 1 << 20, MaxConcurrent: 1}})
	ctx := context.Background()
	a := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	b := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	errs := make(chan error, 4)
	export := func(c clients, n int) {
		_, err := c.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(n))))
		errs <- err
	}
	go export(a, 1)
	<-entered // key a's first export holds the only slot
	go export(a, 2)
	go export(b, 3)
	go export(b, 4)
	waitFor(t, s, "three exports waiting for the slot", func(st InflightStats) bool {
		return st.ExportsInProgress == 1 && st.ExportsWaiting == 3
	})
	t.Logf("stats with one export in progress and three waiting for a slot: %+v", s.h.InflightStats())

	c := s.clients("connect", "default", s.key(t, policy.Ingester, "default"))
	actx, cancel := context.WithTimeout(ctx, 30*time.Second) // the slot is released only after: a bound on a hang, not a speed
	_, err := c.ingest.AppendSpans(actx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(1)}}))
	cancel()
	if err != nil {
		t.Errorf("a native AppendSpans of another key while OTLP exports wait for a slot (one in progress) = %v; want it appended", err)
	}
	close(release)
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("export: %v", err)
		}
	}
}

// TestWaitedCountsRequests: InflightStats.Waited counts "requests
// that had to wait"; an export that waits for bytes and then for a slot
// is one request.
func TestWaitedCountsRequests(t *testing.T) {
	entered := make(chan int64, 3)
	release := make(chan struct{})
	var calls atomic.Int64
	var l atomic.Pointer[ledger.Ledger]
	s := startServerWith(t, Options{MaxRequestBytes: 700, MaxInflightBytes: 1000, MaxKeyInflightBytes: 1000,
		OTLP: OTLPOptions{MaxBytes: 700, MaxConcurrent: 1},
		otlpAppend: func(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error) {
			entered <- calls.Add(1)
			<-release
			return l.Load().Append(ctx, tenant, recs)
		}})
	l.Store(s.l)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	errs := make(chan error, 3)
	export := func(n int) {
		_, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(n))))
		errs <- err
	}
	go export(1)
	<-entered // A: 1 MiB and the slot
	go export(2)
	waitFor(t, s, "B waiting for the slot", func(st InflightStats) bool { return st.ExportsWaiting == 1 })
	go export(3)
	waitFor(t, s, "C waiting for bytes", func(st InflightStats) bool { return st.Waiting == 2 })
	// A ends: B takes the slot (A gives it back before its bytes), C its
	// bytes, then waits for the slot.
	release <- struct{}{}
	<-entered
	waitFor(t, s, "C waiting for the slot", func(st InflightStats) bool { return st.ExportsWaiting == 1 && st.ExportsInProgress == 1 })
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st := s.h.InflightStats(); st.Waited != 2 {
		t.Errorf("Waited = %d after two exports had to wait (one of them twice, for bytes then for a slot), want 2: %+v", st.Waited, st)
	}
}

// TestExportStormLeavesNothingHeld: a storm of OTLP exports over gRPC
// and HTTP with every outcome (appended; client gone while waiting for
// bytes, for a slot, or at the moment it is handed one; refused past
// MaxQueueWait; bad data; body cut) and native appends: once it is over,
// every stat is back to zero and every byte, slot and key share is free.
func TestExportStormLeavesNothingHeld(t *testing.T) {
	if testing.Short() {
		t.Skip("storm")
	}
	const slots = 3
	s := startServerWith(t, Options{MaxRequestBytes: 1 << 20, MaxInflightBytes: 3 << 20, MaxKeyInflightBytes: 2 << 20,
		MaxQueueWait: new(150 * time.Millisecond), BodyTimeout: 100 * time.Millisecond, MinBodyRate: 1024,
		OTLP: OTLPOptions{MaxBytes: 1 << 20, MaxConcurrent: slots}})
	ctx := context.Background()
	var keys []string
	for range 3 {
		keys = append(keys, s.key(t, policy.Ingester, "default"))
	}
	var wg sync.WaitGroup
	var outcomes sync.Map
	note := func(what string, err error) {
		k := what + ": " + connect.CodeOf(err).String()
		if err == nil {
			k = what + ": ok"
		}
		n, _ := outcomes.LoadOrStore(k, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			token := keys[w%len(keys)]
			g := s.clients("grpc", "", token)
			c := s.clients("connect", "default", token)
			for i := range 25 {
				n := w*1000 + i
				cctx, cancel := context.WithCancel(ctx)
				if rng.IntN(3) == 0 { // gives up at a random moment
					time.AfterFunc(time.Duration(rng.IntN(60))*time.Millisecond, cancel)
				}
				switch rng.IntN(5) {
				case 0:
					_, err := g.otlp.traces.CallUnary(cctx, connect.NewRequest(otlpExport(otlpSpan(n))))
					note("grpc", err)
				case 1:
					_, _, err := g.otlp.post(cctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(n))))
					note("http", err)
				case 2:
					_, _, err := g.otlp.post(cctx, otlp.TracesPath, otlp.ContentProtobuf, []byte("\xff\xff\xff not protobuf"))
					note("http bad data", err)
				case 3: // a body that stalls: cut
					pr, pw := io.Pipe()
					body := mustMarshal(otlpExport(otlpSpan(n)))
					// The writer stops once the client has its answer, or
					// gives up (the Go client may wait for the body's end
					// before it returns an early answer over HTTP/1.1).
					sctx, scancel := context.WithTimeout(cctx, 2*time.Second)
					defer scancel()
					go func() { pw.Write(body[:len(body)/2]); <-sctx.Done(); pw.CloseWithError(sctx.Err()) }()
					req, _ := http.NewRequestWithContext(cctx, http.MethodPost, s.url+otlp.TracesPath, pr)
					req.Header.Set("Content-Type", otlp.ContentProtobuf)
					req.Header.Set("Authorization", "Bearer "+token)
					resp, err := http.DefaultClient.Do(req)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							err = connect.NewError(connect.CodeUnknown, errors.New(resp.Status))
						}
					}
					note("http stalled", err)
				case 4:
					_, err := c.ingest.AppendSpans(cctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(n % 200)}}))
					note("native", err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	outcomes.Range(func(k, v any) bool { t.Logf("%s × %d", k, v.(*atomic.Int64).Load()); return true })
	waitFor(t, s, "everything given back", func(st InflightStats) bool {
		return st.HeldBytes == 0 && st.Waiting == 0 && st.ExportsInProgress == 0 && st.ExportsWaiting == 0
	})
	st := s.h.InflightStats()
	t.Logf("after the storm: %+v", st)
	g := s.h.s.inflight
	if !g.sem.TryAcquire(g.max) {
		t.Errorf("the byte bound is not wholly free after the storm")
	}
	if !g.exports.TryAcquire(g.exportSlots) {
		t.Errorf("not every export slot is free after the storm")
	}
	g.mu.Lock()
	if len(g.keys) != 0 {
		t.Errorf("%d key shares still counted after the storm", len(g.keys))
	}
	g.mu.Unlock()
	if st.Refused == 0 || st.BodiesCut == 0 || st.Waited == 0 {
		t.Errorf("the storm did not reach every outcome: %+v", st)
	}
}

// startFirstExportBlocked starts a server with opts whose first OTLP
// export blocks in its append (entered says it has begun) until release
// is closed; the others append at once.
func startFirstExportBlocked(t *testing.T, opts Options) (s *testServer, entered, release chan struct{}) {
	entered, release = make(chan struct{}, 1), make(chan struct{})
	var calls atomic.Int64
	var l atomic.Pointer[ledger.Ledger]
	opts.otlpAppend = func(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error) {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-release
		}
		return l.Load().Append(ctx, tenant, recs)
	}
	s = startServerWith(t, opts)
	l.Store(s.l)
	return s, entered, release
}
