package rpc

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// TestOTLPExportsWaitForASlot: a burst of twice as many OTLP/HTTP and
// twice as many OTLP gRPC exports as there are export slots, all at once
// while every slot is taken: each export waits for a slot and succeeds;
// none is refused (they were refused unavailable / 503 at once, and the
// SDKs back off for seconds before retrying). One key may hold every
// slot here (MaxKeyConcurrent); TestOneKeyCannotTakeEveryExportSlot
// covers the key's share.
func TestOTLPExportsWaitForASlot(t *testing.T) {
	const slots = 4
	var entered atomic.Int64
	release := make(chan struct{})
	var l atomic.Pointer[ledger.Ledger]
	s := startServerWith(t, Options{OTLP: OTLPOptions{MaxConcurrent: slots, MaxKeyConcurrent: slots}, otlpAppend: func(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error) {
		if entered.Add(1) <= slots {
			<-release
		}
		return l.Load().Append(ctx, tenant, recs)
	}})
	l.Store(s.l)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	errs := make(chan error, 4*slots)
	for i := range 2 * slots {
		go func() {
			_, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(1000+i))))
			errs <- err
		}()
		go func() {
			_, _, err := ing.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(2000+i))))
			if err != nil {
				err = fmt.Errorf("OTLP/HTTP: %w", err)
			}
			errs <- err
		}()
	}
	waitFor(t, s, "every slot taken and the other exports waiting", func(st InflightStats) bool {
		return entered.Load() == slots && st.ExportsInProgress == slots && st.ExportsWaiting == 3*slots && st.Waiting == 3*slots
	})
	close(release)
	refused := 0
	for range 4 * slots {
		if err := <-errs; err != nil {
			refused++
			t.Errorf("an export of the burst: %v", err)
		}
	}
	if refused != 0 {
		t.Errorf("%d of %d exports refused, want 0", refused, 4*slots)
	}
	if items, _ := otlpEntries(t, s.l, "default"); items != 4*slots {
		t.Errorf("%d spans stored, want %d", items, 4*slots)
	}
}

// TestOTLPSlotWaiterGivesUpOrIsRefused: while the only export slot is
// taken, an export whose client gives up frees its place at once (over
// HTTP/2), and one that waits past MaxQueueWait is refused retryably: gRPC
// UNAVAILABLE, OTLP/HTTP 503 with Retry-After; neither is appended. Once
// the slot is free, exports go through.
func TestOTLPSlotWaiterGivesUpOrIsRefused(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var calls atomic.Int64
	var l atomic.Pointer[ledger.Ledger]
	s := startServerWith(t, Options{OTLP: OTLPOptions{MaxConcurrent: 1}, MaxQueueWait: new(200 * time.Millisecond),
		otlpAppend: func(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error) {
			if calls.Add(1) == 1 {
				entered <- struct{}{}
				<-release
			}
			return l.Load().Append(ctx, tenant, recs)
		}})
	l.Store(s.l)
	ctx := context.Background()
	ing := s.clients("grpc", "", s.key(t, policy.Ingester, "default"))
	first := exportAsync(ctx, ing, otlpSpan(1))
	<-entered // the first export holds the only slot

	// The export whose client gives up waits on a server whose longest
	// wait it cannot reach (a minute): with 200 ms, a loaded machine can
	// refuse it before the test has seen it wait and cancelled it.
	patient, pentered, prelease := startFirstExportBlocked(t, Options{OTLP: OTLPOptions{MaxConcurrent: 1}, MaxQueueWait: new(time.Minute)})
	ping := patient.clients("grpc", "", patient.key(t, policy.Ingester, "default"))
	pfirst := exportAsync(ctx, ping, otlpSpan(1))
	<-pentered
	t.Cleanup(func() { // a failure before the release would hang the server's shutdown
		select {
		case <-prelease:
		default:
			close(prelease)
		}
	})
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := exportAsync(cctx, ping, otlpSpan(2))
	waitFor(t, patient, "an export waiting for the slot", func(st InflightStats) bool { return st.ExportsWaiting == 1 && st.Waiting == 1 })
	cancel()
	if err := <-gaveUp; connect.CodeOf(err) != connect.CodeCanceled {
		t.Errorf("a waiting export whose client gave up = %v, want canceled", err)
	}
	waitFor(t, patient, "rid of the waiter", func(st InflightStats) bool {
		return st.ExportsWaiting == 0 && st.Waiting == 0 && st.ExportsInProgress == 1
	})
	if st := patient.h.InflightStats(); st.Refused != 0 || st.Waited != 1 {
		t.Errorf("stats after one waiter gave up: %+v; want Refused 0, Waited 1", st)
	}
	close(prelease)
	if err := <-pfirst; err != nil {
		t.Fatal(err)
	}
	if items, _ := otlpEntries(t, patient.l, "default"); items != 1 {
		t.Errorf("%d spans stored by the server whose waiter gave up, want 1: the export that gave up was appended", items)
	}

	_, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(3))))
	wantCode(t, "gRPC export past the longest wait for a slot", err, connect.CodeUnavailable, "waited")
	status, _, err := ing.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(4))))
	var he *httpError
	if status != 503 || !errors.As(err, &he) || he.header.Get("Retry-After") == "" || he.code != connect.CodeUnavailable {
		t.Errorf("OTLP/HTTP export past the longest wait for a slot = %d %v, want 503 unavailable with Retry-After", status, err)
	}
	st := s.h.InflightStats()
	if st.Refused != 2 || st.Waited != 2 || st.ExportSlots != 1 {
		t.Errorf("stats after two waiters were refused: %+v; want Refused 2, Waited 2, ExportSlots 1", st)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d appends while the only slot was taken, want 1", n)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "the slot free and nothing held", func(st InflightStats) bool { return st.ExportsInProgress == 0 && st.HeldBytes == 0 })
	if _, err := ing.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(5)))); err != nil {
		t.Errorf("an export once the slot is free: %v", err)
	}
}
