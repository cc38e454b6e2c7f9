package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
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
	ev := &accessEvent{procedure: "/veritrace.v1.LedgerService/GetEntry", peer: peer, keyID: key, keyKnown: key != "", keyBound: key != "", time: clk.now(), tenant: "acme"}
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
	r.flush(r.bursts[key])
	got := f.taken()
	if len(got) != 1 || got[0].GetSummary().GetCount() != 4 || got[0].GetPeer() != "192.0.2.1" || got[0].GetKeyId() != "k1" ||
		got[0].GetSummary().GetFirstTime().AsTime().Sub(got[0].GetSummary().GetLastTime().AsTime()) != -3*time.Second {
		t.Fatalf("first period's summary: %v", got)
	}
	// A period without refusals ends the burst; the next refusal opens a
	// new one, recorded on its own.
	r.flush(r.bursts[key])
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
	r.flush(r.bursts[key])
	r.refuse(ctx, refusal(clk, "192.0.2.1:5002", "k1"), "acme", true)
	f.fail = nil
	r.flush(r.bursts[key])
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

// TestRefusalTableBounded: a log holds at most maxBurstsPerLog bursts;
// peers beyond that share its overflow burst (opened with a record like any
// burst), whose summary lists some of them, and take nothing from another
// log. When the whole table is full, a log's new bursts go to its overflow
// burst, which still names the keys and targets it saw.
func TestRefusalTableBounded(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := &logsByName{}
	r := &refusals{period: time.Hour, now: clk.now, write: f.write, log: slog.New(slog.DiscardHandler)}
	const extra = 50
	for i := 0; i < maxBurstsPerLog+extra; i++ {
		peer := fmt.Sprintf("10.%d.%d.%d:1234", i>>16&0xff, i>>8&0xff, i&0xff)
		if err := r.refuse(ctx, refusal(clk, peer, ""), "system", true); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.bursts); n != maxBurstsPerLog+1 {
		t.Errorf("%d bursts open, want %d and the overflow", n, maxBurstsPerLog)
	}
	if ind := len(f.of("system")); ind != maxBurstsPerLog+1 {
		t.Errorf("%d records of their own, want %d and the overflow's first", ind, maxBurstsPerLog)
	}
	// Another log still has its own room.
	if err := r.refuse(ctx, refusal(clk, "192.0.2.9:1", "5eed5eed5eed5eed"), "acme", true); err != nil {
		t.Fatal(err)
	}
	if rs := f.of("acme"); len(rs) != 1 || rs[0].GetKeyId() != "5eed5eed5eed5eed" || rs[0].GetSummary() != nil {
		t.Errorf("acme's log after system's filled its share: %v, want the refusal on its own", rs)
	}
	if err := r.close(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.of("system")[maxBurstsPerLog+1:]
	if len(got) != 1 {
		t.Fatalf("close wrote %d summaries in the system log, want the overflow's", len(got))
	}
	sum := got[0].GetSummary()
	if sum.GetCount() != extra-1 || len(sum.GetPeers()) != maxSummaryPeers || sum.GetOtherPeers() != extra-1-maxSummaryPeers || got[0].GetPeer() != "" || got[0].GetKeyId() != "" {
		t.Errorf("overflow summary = %v", got[0])
	}

	// The whole table: every log at its share, until maxBursts.
	f = &logsByName{}
	r = &refusals{period: time.Hour, now: clk.now, write: f.write, log: slog.New(slog.DiscardHandler)}
	for i := 0; i < maxBursts; i++ {
		log := fmt.Sprint("t", i/maxBurstsPerLog)
		if err := r.refuse(ctx, refusal(clk, fmt.Sprintf("10.0.%d.%d:1", i>>8&0xff, i&0xff), ""), log, true); err != nil {
			t.Fatal(err)
		}
	}
	probe := refusal(clk, "198.51.100.7:5000", "5eed5eed5eed5eed")
	probe.keyBound, probe.target = false, "export subject=ceo"
	for i := 0; i < 2; i++ {
		if err := r.refuse(ctx, probe, "acme", true); err != nil {
			t.Fatal(err)
		}
	}
	if n, open := len(r.bursts), r.open; n != maxBursts+1 || open != maxBursts {
		t.Errorf("%d bursts in the table (%d open), want %d open and acme's overflow", n, open, maxBursts)
	}
	if err := r.close(ctx); err != nil {
		t.Fatal(err)
	}
	rs := f.of("acme")
	if len(rs) != 2 || rs[0].GetKeyId() != probe.keyID || rs[0].GetTarget() != probe.target || rs[1].GetSummary().GetCount() != 1 ||
		!slices.Equal(rs[1].GetSummary().GetKeyIds(), []string{probe.keyID}) || !slices.Equal(rs[1].GetSummary().GetTargets(), []string{probe.target}) ||
		!slices.Equal(rs[1].GetSummary().GetPeers(), []string{"198.51.100.7"}) || rs[1].GetKeyId() != "" || rs[1].GetPeer() != "" {
		t.Errorf("acme's log once the table was full: %v, want the overflow's first refusal and a summary naming the key, its target and its peer", rs)
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

// The most an access record's payload can be: a record of its own, and a
// refusal summary (docs/ACCESS.md).
const (
	maxAccessRecordBytes  = 1024
	maxSummaryRecordBytes = 5 * 1024
)

// worstRefusal is a refusal whose every string is as long as a record lets
// it be once escaped (a NUL becomes four bytes), and distinct for each i.
func worstRefusal(clk *clock, i int) *accessEvent {
	long := func(prefix string) string { return fmt.Sprintf("%s%d", prefix, i) + strings.Repeat("\x00", 1000) }
	ev := &accessEvent{procedure: long("/p"), peer: long("peer"), keyID: fmt.Sprintf("%016x", i), keyKnown: true, keyBound: i%2 == 0,
		tenant: long("t"), target: long("target "), role: policy.ComplianceOfficer, time: clk.now()}
	ev.deny(connect.Code(16-i%16), long("reason ")) // the longest names first
	return ev
}

// TestRefusalRecordSizes: a record of its own and a summary stay within
// their documented bounds however many distinct and long procedures,
// tenants, peers, keys and targets their refusals had.
func TestRefusalRecordSizes(t *testing.T) {
	clk := newClock()
	if n := proto.Size(worstRefusal(clk, 1).proto()); n > maxAccessRecordBytes {
		t.Errorf("a refusal's own record is %d bytes, want at most %d", n, maxAccessRecordBytes)
	}
	b := &burst{key: burstKey{log: "acme", peer: peerKey(strings.Repeat("\x01", 100)), key: "0123456789abcdef"}, role: policy.ComplianceOfficer}
	var tl tally
	for i := 0; i < 100; i++ {
		tl.add(worstRefusal(clk, i), peerKey(fmt.Sprintf("%d%s", i, strings.Repeat("\x02", 100))))
	}
	tl.n = ^uint64(0)
	for _, set := range []*boundedSet{&tl.procs, &tl.tenants, &tl.peers, &tl.codes, &tl.keys, &tl.targets} {
		set.others = ^uint32(0)
	}
	rec := b.record(tl, clk.now())
	sum := rec.GetSummary()
	if len(sum.GetProcedures()) != maxSummaryProcs || len(sum.GetTenants()) != maxSummaryTenants || len(sum.GetPeers()) != maxSummaryPeers ||
		len(sum.GetCodes()) != maxSummaryCodes || len(sum.GetKeyIds()) != maxSummaryKeys || len(sum.GetTargets()) != maxSummaryTargets {
		t.Fatalf("the summary's lists are not full: %v", sum)
	}
	if n := proto.Size(rec); n > maxSummaryRecordBytes {
		t.Errorf("a summary with every list full is %d bytes, want at most %d", n, maxSummaryRecordBytes)
	}
	t.Logf("largest record of its own %d bytes, largest summary %d bytes", proto.Size(worstRefusal(clk, 1).proto()), proto.Size(rec))
}

// fakeTimers runs the refusal timers on a test's clock.
type fakeTimers struct {
	clk *clock
	ts  []*fakeTimer
}

type fakeTimer struct {
	ft     *fakeTimers
	due    time.Time
	f      func()
	active bool
}

func (ft *fakeTimers) after(d time.Duration, f func()) refusalTimer {
	t := &fakeTimer{ft: ft, due: ft.clk.now().Add(d), f: f, active: true}
	ft.ts = append(ft.ts, t)
	return t
}

func (t *fakeTimer) Stop() bool { was := t.active; t.active = false; return was }
func (t *fakeTimer) Reset(d time.Duration) bool {
	was := t.active
	t.due, t.active = t.ft.clk.now().Add(d), true
	return was
}

// fire runs the timers that are due, earliest first.
func (ft *fakeTimers) fire() {
	for {
		var next *fakeTimer
		for _, t := range ft.ts {
			if t.active && !t.due.After(ft.clk.now()) && (next == nil || t.due.Before(next.due)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.active = false
		next.f()
	}
	ft.ts = slices.DeleteFunc(ft.ts, func(t *fakeTimer) bool { return !t.active })
}

// TestRefusalWorstCasePerLog: whatever the refusals, one log gets at most
// maxBurstsPerLog+1 records in any period (one per burst it may hold: its
// share of the table and its overflow burst), so at most that many times
// the largest summary in bytes, and never twice as many in a closed window
// of one period (docs/ACCESS.md, "Refusals": 17 records and 85 KiB a
// minute). The adversary: 60 peers, each refused every second for a while
// (some with keys bound to the log, some with other keys), then quiet for a
// while, so that bursts keep ending and opening, with every string as long
// as a record allows; meanwhile the system log is flooded too. Timers run
// on the test's clock. Every refusal is accounted for once the summaries
// are written.
func TestRefusalWorstCasePerLog(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	ft := &fakeTimers{clk: clk}
	type write struct {
		at   time.Time
		size int
		n    uint64
	}
	var mu sync.Mutex
	writes := map[string][]write{}
	r := &refusals{period: time.Minute, now: clk.now, log: slog.New(slog.DiscardHandler), afterFunc: ft.after,
		write: func(_ context.Context, rec *v1.AccessRecord, log string) error {
			mu.Lock()
			defer mu.Unlock()
			n := uint64(1)
			if rec.GetSummary() != nil {
				n = rec.GetSummary().GetCount()
			}
			writes[log] = append(writes[log], write{clk.now(), proto.Size(rec), n})
			return nil
		}}
	rng := rand.New(rand.NewPCG(9, 7))
	const peers, minutes = 60, 15
	quietUntil := make([]time.Time, peers)
	activeUntil := make([]time.Time, peers)
	sent := map[string]uint64{}
	for step := 0; step < minutes*60; step++ {
		clk.advance(time.Second)
		ft.fire()
		for p := 0; p < peers; p++ {
			now := clk.now()
			if now.Before(quietUntil[p]) {
				continue
			}
			if !now.Before(activeUntil[p]) {
				// A new phase: active for 1 s to 2 min, then quiet for 1 to 2 min.
				activeUntil[p] = now.Add(time.Duration(1+rng.IntN(120)) * time.Second)
				quietUntil[p] = activeUntil[p].Add(time.Duration(60+rng.IntN(60)) * time.Second)
			}
			for _, log := range []string{"acme", "system"} {
				ev := worstRefusal(clk, rng.IntN(1000))
				ev.peer = fmt.Sprintf("192.0.2.%d:%d", p, 1000+step)
				ev.keyBound = log == "acme" && p%3 == 0
				if err := r.refuse(ctx, ev, log, p%5 != 0); err != nil {
					t.Fatal(err)
				}
				sent[log]++
			}
		}
	}
	mu.Lock()
	acme := slices.Clone(writes["acme"])
	mu.Unlock()
	most, mostClosed, mostBytes := 0, 0, 0
	for i, w := range acme {
		n, closed, bytes := 0, 0, 0
		for _, o := range acme[i:] {
			if o.at.Before(w.at.Add(r.period)) {
				n++
				bytes += o.size
			}
			if !o.at.After(w.at.Add(r.period)) {
				closed++
			}
		}
		most, mostClosed, mostBytes = max(most, n), max(mostClosed, closed), max(mostBytes, bytes)
	}
	t.Logf("acme: %d records in %d minutes; at most %d records (%d bytes) in a minute, %d in a closed minute", len(acme), minutes, most, mostBytes, mostClosed)
	if most > maxBurstsPerLog+1 || mostBytes > (maxBurstsPerLog+1)*maxSummaryRecordBytes || mostClosed > 2*(maxBurstsPerLog+1) {
		t.Errorf("acme's log got %d records (%d bytes) in a minute and %d in a closed minute; want at most %d (%d bytes) and %d",
			most, mostBytes, mostClosed, maxBurstsPerLog+1, (maxBurstsPerLog+1)*maxSummaryRecordBytes, 2*(maxBurstsPerLog+1))
	}
	if most < maxBurstsPerLog {
		t.Errorf("the adversary got at most %d records a minute into acme's log: too weak to show the bound", most)
	}
	if err := r.close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for log, n := range sent {
		var accounted uint64
		for _, w := range writes[log] {
			accounted += w.n
		}
		if accounted != n {
			t.Errorf("the %s log accounts for %d refusals, want %d", log, accounted, n)
		}
	}
}

// TestRefusalCloseKeepsFailedSummary: a summary that fails while the
// server shuts down gives its counts back, and Close writes them.
func TestRefusalCloseKeepsFailedSummary(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := &fakeLog{}
	release, writing := make(chan struct{}), make(chan struct{})
	var calls int
	r := newTestRefusals(f, clk)
	r.write = func(ctx context.Context, rec *v1.AccessRecord, log string) error {
		f.mu.Lock()
		calls++
		second := calls == 2
		f.mu.Unlock()
		if second { // the first summary: held, then failed
			close(writing)
			<-release
			return errors.New("disk full")
		}
		return f.write(ctx, rec, log)
	}
	for i := 0; i < 3; i++ {
		if err := r.refuse(ctx, refusal(clk, "192.0.2.1:4000", "k1"), "acme", true); err != nil {
			t.Fatal(err)
		}
	}
	b := r.bursts[burstKey{log: "acme", peer: "192.0.2.1", key: "k1"}]
	go r.flush(b)
	<-writing
	closed := make(chan error)
	go func() { closed <- r.close(ctx) }()
	for { // Close has begun
		r.mu.Lock()
		c := r.closed
		r.mu.Unlock()
		if c {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if ind, sum := summaryCounts(f.taken()); ind != 1 || sum != 2 {
		t.Errorf("after a summary failed during Close: %d records of their own and %d refusals summarised, want 1 and 2", ind, sum)
	}
}
