package rpc

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// TestOneKeyCannotTakeEveryExportSlot: key A (tenant acme) sends as many
// OTLP exports as there are export slots, over gRPC and HTTP, and each
// blocks in its append; key B (tenant globex), which holds nothing, then
// exports over gRPC and HTTP. B's exports must go through at once, while
// A's still block: A holds at most its share of the slots (by default
// half), and its further exports wait for its share, not in front of B.
// Once A's are released, every export of A is appended too.
func TestOneKeyCannotTakeEveryExportSlot(t *testing.T) {
	const slots = 4
	var enteredA atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // a failure leaves no handler blocked
	var l atomic.Pointer[ledger.Ledger]
	s := startServerWith(t, Options{OTLP: OTLPOptions{MaxConcurrent: slots},
		otlpAppend: func(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error) {
			if tenant == "acme" {
				enteredA.Add(1)
				<-release
			}
			return l.Load().Append(ctx, tenant, recs)
		}})
	l.Store(s.l)
	ctx := context.Background()
	s.tenant(t, "acme")
	s.tenant(t, "globex")
	a := s.clients("grpc", "", s.key(t, policy.Ingester, "acme"))
	b := s.clients("grpc", "", s.key(t, policy.Ingester, "globex"))
	defer func() {
		if t.Failed() {
			t.Logf("stats: %+v", s.h.InflightStats())
		}
	}()
	errsA := make(chan error, slots)
	for i := range slots {
		go func() {
			var err error
			if i%2 == 0 {
				_, err = a.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(100+i))))
			} else if _, _, err = a.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(100+i)))); err != nil {
				err = fmt.Errorf("OTLP/HTTP: %w", err)
			}
			errsA <- err
		}()
	}
	// Every export of A is in its append (holding a slot) or waiting.
	waitFor(t, s, "key A's exports in progress or waiting", func(st InflightStats) bool {
		return st.ExportsInProgress+st.ExportsWaiting == slots && enteredA.Load() == st.ExportsInProgress
	})

	for _, proto := range []string{"gRPC", "OTLP/HTTP"} {
		done := make(chan error, 1)
		go func() {
			var err error
			if proto == "gRPC" {
				_, err = b.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(200))))
			} else {
				_, _, err = b.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(201))))
			}
			done <- err
		}()
		waitFor(t, s, "key B's "+proto+" export answered, or waiting for a slot behind key A's", func(st InflightStats) bool {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("key B's %s export while key A's exports block = %v, want it appended", proto, err)
				}
				done <- nil
				return true
			default:
			}
			return st.ExportsInProgress == slots && st.ExportsWaiting > 0 && enteredA.Load() == slots
		})
		select {
		case <-done:
		default:
			t.Fatalf("key B's %s export (B holds nothing) waits for a slot: key A's %d exports hold every one of the %d slots: %+v",
				proto, enteredA.Load(), slots, s.h.InflightStats())
		}
	}
	if n, _ := otlpEntries(t, s.l, "globex"); n != 2 {
		t.Errorf("%d spans of key B stored while key A's exports block, want 2", n)
	}

	unblock()
	for range slots {
		if err := <-errsA; err != nil {
			t.Errorf("an export of key A: %v", err)
		}
	}
	if n, _ := otlpEntries(t, s.l, "acme"); n != slots {
		t.Errorf("%d spans of key A stored, want %d", n, slots)
	}
	waitFor(t, s, "everything given back", func(st InflightStats) bool {
		return st.HeldBytes == 0 && st.Waiting == 0 && st.ExportsInProgress == 0 && st.ExportsWaiting == 0
	})
}
