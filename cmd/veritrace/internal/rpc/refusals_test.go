package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// fakeLog is the tiny stand-in for the ledger that refusals writes to.
type fakeLog struct {
	mu      sync.Mutex
	records []*v1.AccessRecord
	fail    error
	gate    chan struct{} // when set, writes wait for it
}

func (f *fakeLog) write(_ context.Context, r *v1.AccessRecord, _ string) error {
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.records = append(f.records, r)
	return nil
}

func (f *fakeLog) taken() []*v1.AccessRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.records
	f.records = nil
	return out
}

func newTestRefusals(f *fakeLog, clk *clock) *refusals {
	// The period is long so that no timer fires; tests call flush.
	return &refusals{period: time.Hour, now: clk.now, write: f.write, log: slog.New(slog.DiscardHandler), bursts: map[burstKey]*burst{}}
}

func refusal(clk *clock, peer, key string) *accessEvent {
	ev := &accessEvent{procedure: "/veritrace.v1.LedgerService/GetEntry", peer: peer, keyID: key, keyKnown: key != "", time: clk.now(), tenant: "acme"}
	ev.deny(connect.CodePermissionDenied, "no")
	return ev
}

func summaryCounts(rs []*v1.AccessRecord) (individual int, summarised uint64) {
	for _, r := range rs {
		if r.GetSummary() == nil {
			individual++
		} else {
			summarised += r.GetSummary().GetCount()
		}
	}
	return individual, summarised
}

// TestRefusalBursts walks a burst through its life: opened with a record,
// counted, summarised each period, over after a quiet period.
func TestRefusalBursts(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := &fakeLog{}
	r := newTestRefusals(f, clk)
	key := burstKey{log: "acme", peer: "192.0.2.1", key: "k1"}
	for i := 0; i < 5; i++ {
		if err := r.refuse(ctx, refusal(clk, "192.0.2.1:"+fmt.Sprint(4000+i), "k1"), "acme", true); err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Second)
	}
	if got := f.taken(); len(got) != 1 || got[0].GetSummary() != nil {
		t.Fatalf("after 5 refusals: %v, want the first on its own", got)
	}
	r.flush(key)
	got := f.taken()
	if len(got) != 1 || got[0].GetSummary().GetCount() != 4 || got[0].GetPeer() != "192.0.2.1" || got[0].GetKeyId() != "k1" ||
		got[0].GetSummary().GetFirstTime().AsTime().Sub(got[0].GetSummary().GetLastTime().AsTime()) != -3*time.Second {
		t.Fatalf("first period's summary: %v", got)
	}
	// A period without refusals ends the burst; the next refusal opens a
	// new one, recorded on its own.
	r.flush(key)
	if got := f.taken(); len(got) != 0 {
		t.Fatalf("quiet period wrote %v", got)
	}
	if err := r.refuse(ctx, refusal(clk, "192.0.2.1:5000", "k1"), "acme", true); err != nil {
		t.Fatal(err)
	}
	if got := f.taken(); len(got) != 1 || got[0].GetSummary() != nil {
		t.Fatalf("a new burst: %v, want a record of its own", got)
	}
	// A summary that cannot be written is kept for the next period.
	r.refuse(ctx, refusal(clk, "192.0.2.1:5001", "k1"), "acme", true)
	f.fail = errors.New("disk full")
	r.flush(key)
	r.refuse(ctx, refusal(clk, "192.0.2.1:5002", "k1"), "acme", true)
	f.fail = nil
	r.flush(key)
	if got := f.taken(); len(got) != 1 || got[0].GetSummary().GetCount() != 2 {
		t.Fatalf("after a failed summary: %v, want one summary of 2", got)
	}
	// Close writes what is pending; later refusals are recorded one by one.
	r.refuse(ctx, refusal(clk, "192.0.2.1:5003", "k1"), "acme", true)
	if err := r.close(ctx); err != nil {
		t.Fatal(err)
	}
	r.refuse(ctx, refusal(clk, "192.0.2.1:5004", "k1"), "acme", true)
	if ind, sum := summaryCounts(f.taken()); ind != 1 || sum != 1 {
		t.Errorf("close and after: %d records of their own and %d summarised, want 1 and 1", ind, sum)
	}
}

// TestRefusalOpeningFails: when a burst's first refusal cannot be
// recorded, neither it nor the refusals that waited for it are answered as
// refused, and the next refusal tries to open the burst again.
func TestRefusalOpeningFails(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := &fakeLog{fail: errors.New("disk full"), gate: make(chan struct{})}
	r := newTestRefusals(f, clk)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- r.refuse(ctx, refusal(clk, "192.0.2.1:4000", "k1"), "acme", true)
		}()
	}
	// Nobody is answered while the opening record is being written.
	select {
	case err := <-errs:
		t.Fatalf("a refusal was answered (%v) before its burst's record was written", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(f.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Error("a refusal was answered as refused although its burst's record failed")
		}
	}
	f.fail, f.gate = nil, nil
	if err := r.refuse(ctx, refusal(clk, "192.0.2.1:4000", "k1"), "acme", true); err != nil {
		t.Fatal(err)
	}
	if got := f.taken(); len(got) != 1 || got[0].GetSummary() != nil {
		t.Errorf("after the failure: %v, want a record of its own", got)
	}
}

// TestRefusalTableBounded: peers beyond the table's bound are counted in
// one overflow burst per log, whose summary lists some of them.
func TestRefusalTableBounded(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := &fakeLog{}
	r := newTestRefusals(f, clk)
	const extra = 50
	for i := 0; i < maxBursts+extra; i++ {
		peer := fmt.Sprintf("10.%d.%d.%d:1234", i>>16&0xff, i>>8&0xff, i&0xff)
		if err := r.refuse(ctx, refusal(clk, peer, ""), "system", true); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.bursts); n != maxBursts+1 {
		t.Errorf("%d bursts open, want %d and the overflow", n, maxBursts)
	}
	if ind := len(f.taken()); ind != maxBursts {
		t.Errorf("%d records of their own, want %d", ind, maxBursts)
	}
	if err := r.close(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.taken()
	if len(got) != 1 {
		t.Fatalf("close wrote %d summaries, want the overflow's", len(got))
	}
	sum := got[0].GetSummary()
	if sum.GetCount() != extra || len(sum.GetPeers()) != maxSummaryPeers || sum.GetOtherPeers() != extra-maxSummaryPeers || got[0].GetPeer() != "" || got[0].GetKeyId() != "" {
		t.Errorf("overflow summary = %v", got[0])
	}
}

// TestRefusalsUncoalesced: with a negative period every refusal is
// recorded on its own.
func TestRefusalsUncoalesced(t *testing.T) {
	clk := newClock()
	f := &fakeLog{}
	r := newTestRefusals(f, clk)
	r.period = -1
	for i := 0; i < 3; i++ {
		r.refuse(context.Background(), refusal(clk, "192.0.2.1:1", "k"), "acme", true)
	}
	if ind, _ := summaryCounts(f.taken()); ind != 3 {
		t.Errorf("%d records, want 3", ind)
	}
}

func TestFailureLimiter(t *testing.T) {
	clk := newClock()
	l := newFailureLimiter(3, 0.5)
	for i := 0; i < 3; i++ {
		if w := l.fail("192.0.2.1", clk.now()); w != 0 {
			t.Fatalf("failure %d: wait %v, want none", i, w)
		}
	}
	if w := l.fail("192.0.2.1", clk.now()); w != 2*time.Second {
		t.Errorf("fourth failure: wait %v, want 2s", w)
	}
	if w := l.fail("192.0.2.2", clk.now()); w != 0 {
		t.Errorf("another peer: wait %v, want none", w)
	}
	clk.advance(2 * time.Second)
	if w := l.fail("192.0.2.1", clk.now()); w != 0 {
		t.Errorf("after 2s: wait %v, want none", w)
	}
	// The table stays bounded: buckets that refilled make room, and peers
	// that find it full of active ones share the overflow bucket.
	for i := 0; i < 2*maxLimiterPeers; i++ {
		l.fail(fmt.Sprintf("10.0.%d.%d", i>>8, i&0xff), clk.now())
	}
	if n := len(l.peers); n > maxLimiterPeers {
		t.Errorf("%d peers in the table, want at most %d", n, maxLimiterPeers)
	}
	clk.advance(time.Hour)
	if w := l.fail("198.51.100.7", clk.now()); w != 0 || l.peers["198.51.100.7"] == nil {
		t.Errorf("a new peer once the others refilled: wait %v, in table %v", w, l.peers["198.51.100.7"] != nil)
	}
}

func TestPeerKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:4000":             "127.0.0.1",
		"[::ffff:192.0.2.1]:80":      "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::/64",
		"not an address\n":           `not an address\n`,
		"[fe80::1%eth0]:80":          `fe80::1%eth0`,
	} {
		if got := peerKey(in); got != want {
			t.Errorf("peerKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRefusalSummaryBounded: a summary stays small however many distinct
// and long procedures, tenants and peers its refusals had.
func TestRefusalSummaryBounded(t *testing.T) {
	clk := newClock()
	f := &fakeLog{}
	r := newTestRefusals(f, clk)
	for i := 0; i < maxBursts; i++ { // fill the table so that peers share the overflow burst
		r.bursts[burstKey{log: "x", peer: fmt.Sprint(i)}] = &burst{timer: time.NewTimer(time.Hour)}
	}
	for i := 0; i < 100; i++ {
		ev := refusal(clk, fmt.Sprintf("[2001:db8:%x::1]:1", i), "")
		ev.procedure = fmt.Sprintf("/%0200d", i)
		ev.tenant = fmt.Sprintf("t%062d", i)
		ev.code = connect.Code(i%16 + 1)
		r.refuse(context.Background(), ev, "system", true)
	}
	r.close(context.Background())
	got := f.taken()
	if len(got) != 1 || got[0].GetSummary().GetCount() != 100 {
		t.Fatalf("close wrote %d records, want the overflow burst's summary of 100", len(got))
	}
	for _, rec := range got {
		if n := proto.Size(rec); n > 4096 {
			t.Errorf("summary of %d refusals is %d bytes", rec.GetSummary().GetCount(), n)
		}
	}
}
