package rpc

import (
	"context"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// slotorderEnter admits an OTLP export of key charged charge bytes on g
// (admit, as enter does), in a goroutine; once admitted it sends key to order (if
// not nil), then its release to admitted.
func slotorderEnter(ctx context.Context, g *inflight, key string, charge int64, order chan<- string) slotorderExport {
	e := slotorderExport{admitted: make(chan func(), 1), failed: make(chan error, 1)}
	go func() {
		var waited bool
		release, err := g.admit(ctx, g.waitUntil(), key, charge, true, &waited)
		if err != nil {
			e.failed <- err
			return
		}
		if order != nil {
			order <- key
		}
		e.admitted <- release
	}()
	return e
}

// slotorderExport is an export slotorderEnter admits: its release once
// admitted, or its error.
type slotorderExport struct {
	admitted chan func()
	failed   chan error
}

func (e slotorderExport) mustAdmit(t *testing.T) func() {
	t.Helper()
	select {
	case r := <-e.admitted:
		return r
	case err := <-e.failed:
		t.Fatalf("export refused: %v", err)
	}
	return nil
}

// slotorderPoll polls g's stats until ok; a watchdog bounds the poll,
// not a measure.
func slotorderPoll(t *testing.T, g *inflight, what string, ok func(InflightStats) bool) {
	t.Helper()
	for range 4000 {
		if ok(g.stats()) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("never %s: %+v", what, g.stats())
}

// slotorderUntil polls g's stats until ok, or e is admitted or refused;
// it reports which. A watchdog bounds the poll, not a measure.
func slotorderUntil(t *testing.T, g *inflight, e slotorderExport, ok func(InflightStats) bool) (admitted func(), err error, waiting bool) {
	t.Helper()
	for range 4000 {
		select {
		case r := <-e.admitted:
			return r, nil, false
		case err := <-e.failed:
			return nil, err, false
		default:
		}
		if ok(g.stats()) {
			return nil, nil, true
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("export neither admitted, refused nor seen waiting: %+v", g.stats())
	return nil, nil, false
}

// TestKeySlotWaitersHoldNoServerBytes: the operator gives four apps a
// slot each (--otlp-max-concurrent 4, --otlp-max-key-concurrent 1, the
// byte share at its default, half). Apps A and B each have an export in
// progress (their whole share of slots) and one more, as large as their
// byte share allows, queued for their own key's slot. App C, which holds
// nothing, then exports: two of the four slots are free, and it is
// admitted at once. An export queued for its key's slot holds its key's
// bytes only, not the server's (the waits' order: a key's bytes, its
// slots, then the server's bytes, its slots); before 2026-11-22 the two
// queued exports held every byte of the server, and C waited for bytes
// that only A's and B's own exports could free.
func TestKeySlotWaitersHoldNoServerBytes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := newInflight(1000, 500, 4, 1, 0, time.Second, 1, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var releases []func()
	defer func() {
		cancel()
		for _, r := range releases {
			r()
		}
	}()
	for _, key := range []string{"A", "B"} {
		releases = append(releases, slotorderEnter(ctx, g, key, 10, nil).mustAdmit(t))
	}
	queued := []slotorderExport{slotorderEnter(ctx, g, "A", 490, nil), slotorderEnter(ctx, g, "B", 490, nil)}
	_ = queued
	for i := 0; g.stats().ExportsWaitingForKey != 2; i++ {
		if i > 4000 {
			t.Fatalf("A's and B's second exports never queued for their key's slot: %+v", g.stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	c := slotorderEnter(ctx, g, "C", 100, nil)
	release, err, waiting := slotorderUntil(t, g, c, func(st InflightStats) bool { return st.Waiting == 3 })
	if release != nil {
		releases = append(releases, release)
	}
	if waiting || err != nil {
		t.Fatalf("key C, holding nothing, with %d of %d export slots free, is not admitted (waiting %v, err %v): A's and B's exports queued for their own key's slot hold the server's bytes: %+v",
			g.exportSlots-g.stats().ExportsInProgress, g.exportSlots, waiting, err, g.stats())
	}
}

// TestKeyWithoutExportsTakesTheNextSlot: with the default shares (half of
// the slots), keys A and B each hold their whole share, so every slot
// between them, and each has two more exports waiting for its share. Key
// C, which holds nothing, exports after them: it waits (two keys at their
// share hold every slot, as docs/OTLP.md says), but only for the next
// slot freed: when one of A's exports ends, C's is admitted, ahead of the
// exports of A and B that came before it. Those wait for their key's
// share, not in the server's queue; were they in it, one of them would
// take the freed slot.
func TestKeyWithoutExportsTakesTheNextSlot(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := newInflight(1000, 500, 4, 2, 0, time.Second, 1, log)
	ctx, cancel := context.WithCancel(context.Background())
	order := make(chan string, 16) // the keys of the exports admitted, in order
	var releases []func()
	defer func() {
		cancel()
		for _, r := range releases {
			r()
		}
	}()
	for _, key := range []string{"A", "A", "B", "B"} {
		releases = append(releases, slotorderEnter(ctx, g, key, 10, order).mustAdmit(t))
		<-order
	}
	// A's first, so that were they in the server's queue, the freed slot
	// would go to one of A's, and be seen taken at once.
	for i, key := range []string{"A", "A", "B", "B"} {
		slotorderEnter(ctx, g, key, 10, order)
		slotorderPoll(t, g, "A's and B's further exports waiting for their key's share", func(st InflightStats) bool {
			return st.ExportsWaitingForKey == int64(i+1)
		})
	}
	c := slotorderEnter(ctx, g, "C", 10, order)
	slotorderPoll(t, g, "C's export waiting for a slot", func(st InflightStats) bool {
		return st.ExportsWaiting == 5 && st.ExportsInProgress == 4
	})

	releases[0]() // one of A's exports ends
	var first string
	select {
	case first = <-order:
	case <-time.After(time.Minute): // a watchdog, not a measure
		t.Fatalf("no export admitted within a minute of a slot being freed: %+v", g.stats())
	}
	if first != "C" {
		t.Fatalf("the slot freed went to an export of key %s, which came before C's but whose key holds its share (or did until then), want C's: %+v", first, g.stats())
	}
	releases = append(releases, c.mustAdmit(t))
	// A's next export now has A's share, and waits for a slot; the others
	// still wait for their key's share.
	slotorderPoll(t, g, "A's next export waiting for a slot", func(st InflightStats) bool {
		return st.ExportsInProgress == 4 && st.ExportsWaiting == 4 && st.ExportsWaitingForKey == 3
	})
	select {
	case key := <-order:
		t.Fatalf("an export of %s admitted with every slot held: %+v", key, g.stats())
	default:
	}
}

// TestKeySlotWaitersHoldNoServerBytesServer is
// TestKeySlotWaitersHoldNoServerBytes through a real server and the OTLP
// gRPC clients: four export slots, one per key, the byte share at its
// default (half of --max-inflight-bytes, here two of the largest
// requests). Apps acme and globex each have an export blocked in its
// append (their whole share of slots) and one more, of about 63 KiB,
// queued for their key's slot. App initech then exports a small batch
// (two spans): two slots are free, and it is appended at once, not held
// up by bytes the queued exports of the other two apps hold.
func TestKeySlotWaitersHoldNoServerBytesServer(t *testing.T) {
	const limit = 64 << 10
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	var entered atomic.Int64
	var l atomic.Pointer[ledger.Ledger]
	opts := Options{MaxRequestBytes: limit, MaxInflightBytes: 2 * limit, OTLP: OTLPOptions{MaxBytes: limit, MaxConcurrent: 4, MaxKeyConcurrent: 1}}
	opts.otlpAppend = func(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error) {
		if tenant != "initech" {
			entered.Add(1)
			<-release
		}
		return l.Load().Append(ctx, tenant, recs)
	}
	s := startServerWith(t, opts)
	l.Store(s.l)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	big := otlpSpan(2)
	big.Attributes = append(big.Attributes, kv("pad", strings.Repeat("x", 64<<10-1100)))
	for i, tenant := range []string{"acme", "globex"} {
		n := int64(i + 1)
		s.tenant(t, tenant)
		c := s.clients("grpc", "", s.key(t, policy.Ingester, tenant))
		go c.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(1))))
		waitFor(t, s, tenant+"'s first export in its append", func(st InflightStats) bool {
			return entered.Load() == n && st.ExportsInProgress == n
		})
		go c.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(big)))
		waitFor(t, s, tenant+"'s second export queued for its key's slot", func(st InflightStats) bool {
			return st.ExportsWaitingForKey == n && st.Waiting == n
		})
	}
	s.tenant(t, "initech")
	c := s.clients("grpc", "", s.key(t, policy.Ingester, "initech"))
	done := exportAsync(ctx, c, otlpSpan(3), otlpSpan(4))
	for range 4000 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("initech's export with two slots free: %v", err)
			}
			return
		default:
		}
		if st := s.h.InflightStats(); st.Waiting == 3 {
			t.Fatalf("initech's export, its key holding nothing, waits for bytes with %d of %d export slots free: the exports of acme and globex queued for their own key's slot hold the server's bytes: %+v",
				st.ExportSlots-st.ExportsInProgress, st.ExportSlots, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("initech's export neither appended nor waiting: %+v", s.h.InflightStats())
}

// TestPanickingHandlerGivesEverythingBack: a handler that panics behind
// the gate (an append, an export) still gives back what its request was
// admitted with: its key's bytes and slot and the server's.
func TestPanickingHandlerGivesEverythingBack(t *testing.T) {
	for _, export := range []bool{false, true} {
		g := newInflight(1000, 500, 2, 1, 0, time.Second, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
		var calls atomic.Int64
		srv := httptest.NewUnstartedServer(g.gate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			panic("handler bug")
		}), 100, export))
		srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0)
		srv.Start()
		// More than a key's share of slots, one after another: what one
		// held is given back once its handler has panicked (before its
		// connection is closed, which its client sees).
		for i := range 3 {
			resp, err := http.Post(srv.URL, "application/proto", strings.NewReader("body"))
			if err == nil {
				resp.Body.Close()
			}
			if st := g.stats(); st.HeldBytes != 0 || st.ExportsInProgress != 0 || st.Waiting != 0 || calls.Load() != int64(i+1) {
				t.Errorf("export %v: after %d requests whose handler panicked (handler run %d times): %+v", export, i+1, calls.Load(), st)
				break
			}
			checkAllFree(t, g)
		}
		srv.Close()
	}
}
