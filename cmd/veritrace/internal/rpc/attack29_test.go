package rpc

import (
	"strings"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"

	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// attack29 drives inflight as enter does for an OTLP export: bytes
// (acquire), then a slot (exportSlot).
type attack29Export struct {
	admitted chan func() // the release of an admitted export
	failed   chan error
}

func attack29Enter(ctx context.Context, g *inflight, key string, charge int64) attack29Export {
	e := attack29Export{admitted: make(chan func(), 1), failed: make(chan error, 1)}
	go func() {
		var waited bool
		until := g.waitUntil()
		bytes, err := g.acquire(ctx, until, key, charge, &waited)
		if err != nil {
			e.failed <- err
			return
		}
		slot, err := g.exportSlot(ctx, until, key, &waited)
		if err != nil {
			bytes()
			e.failed <- err
			return
		}
		e.admitted <- func() { slot(); bytes() }
	}()
	return e
}

func (e attack29Export) mustAdmit(t *testing.T) func() {
	t.Helper()
	select {
	case r := <-e.admitted:
		return r
	case err := <-e.failed:
		t.Fatalf("export refused: %v", err)
	}
	return nil
}

// attack29Until polls g's stats until ok, or e is admitted or refused;
// it reports which. A watchdog bounds the poll, not a measure.
func attack29Until(t *testing.T, g *inflight, e attack29Export, ok func(InflightStats) bool) (admitted func(), err error, waiting bool) {
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

// TestAttack29KeySlotWaitersHoldServerBytes: the operator gives four apps
// a slot each (--otlp-max-concurrent 4, --otlp-max-key-concurrent 1,
// the byte share at its default, half). Apps A and B each have an export
// in progress (their whole share of slots) and one more queued for their
// own key's slot: queued, each holds its charge of the server's bytes
// (the waits' order: bytes before slots), together all of them. App C,
// which holds nothing, then exports: two of the four slots are free, yet
// C waits for bytes held by exports that wait for slots only A's and B's
// own exports can give back. C should be admitted at once.
func TestAttack29KeySlotWaitersHoldServerBytes(t *testing.T) {
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
		releases = append(releases, attack29Enter(ctx, g, key, 10).mustAdmit(t))
	}
	queued := []attack29Export{attack29Enter(ctx, g, "A", 490), attack29Enter(ctx, g, "B", 490)}
	_ = queued
	for i := 0; g.stats().ExportsWaitingForKey != 2; i++ {
		if i > 4000 {
			t.Fatalf("A's and B's second exports never queued for their key's slot: %+v", g.stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	c := attack29Enter(ctx, g, "C", 100)
	release, err, waiting := attack29Until(t, g, c, func(st InflightStats) bool { return st.Waiting == 3 })
	if release != nil {
		releases = append(releases, release)
	}
	if waiting || err != nil {
		t.Fatalf("key C, holding nothing, with %d of %d export slots free, is not admitted (waiting %v, err %v): A's and B's exports queued for their own key's slot hold the server's bytes: %+v",
			g.exportSlots-g.stats().ExportsInProgress, g.exportSlots, waiting, err, g.stats())
	}
}

// TestAttack29TwoKeysStarveAThird: with the default shares (half of the
// slots and half of the bytes), two keys whose exports are slow take
// every slot between them; a third key's export, holding nothing, waits
// for a slot until --max-queue-wait and is refused. docs/OTLP.md: "another
// key's export finds a slot among the other half".
func TestAttack29TwoKeysStarveAThird(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := newInflight(1000, 500, 4, 2, 0, time.Second, 1, log)
	ctx, cancel := context.WithCancel(context.Background())
	var releases []func()
	defer func() {
		cancel()
		for _, r := range releases {
			r()
		}
	}()
	for _, key := range []string{"A", "A", "B", "B"} {
		releases = append(releases, attack29Enter(ctx, g, key, 10).mustAdmit(t))
	}
	c := attack29Enter(ctx, g, "C", 10)
	release, err, waiting := attack29Until(t, g, c, func(st InflightStats) bool { return st.ExportsWaiting == 1 })
	if release != nil {
		releases = append(releases, release)
	}
	if waiting || err != nil {
		t.Fatalf("key C, holding nothing, is not admitted (waiting %v, err %v): keys A and B hold every slot at their default share: %+v", waiting, err, g.stats())
	}
}

// TestAttack29KeySlotWaitersHoldServerBytesServer is
// TestAttack29KeySlotWaitersHoldServerBytes through a real server and the
// OTLP gRPC clients: four export slots, one per key, the byte share at
// its default (half of --max-inflight-bytes, here two of the largest
// requests). Apps acme and globex each have an export blocked in its
// append (their whole share of slots) and one more, of about 63 KiB,
// queued for their key's slot, holding its charge of the server's bytes.
// App initech then exports a small batch (two spans): two slots are free, and it
// should be appended at once; it waits for bytes held by the queued
// exports of the other two apps.
func TestAttack29KeySlotWaitersHoldServerBytesServer(t *testing.T) {
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
	done := make(chan error, 1)
	go func() {
		_, err := c.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(3), otlpSpan(4))))
		done <- err
	}()
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
