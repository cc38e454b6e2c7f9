package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
)

// DefaultRefusalPeriod is how long refusals of one burst are counted before
// their summary is written to the access log.
const DefaultRefusalPeriod = time.Minute

// Bounds of the refusal bursts kept in memory (docs/ACCESS.md,
// "Refusals").
const (
	// maxBurstsPerLog is the share of the table one log may hold: further
	// refusals that would open a burst in that log are counted in its
	// overflow burst, so that noise in one log (the system log above all)
	// never takes another log's room.
	maxBurstsPerLog = 16
	// maxBursts bounds the table's memory: open bursts of every log
	// together, overflow bursts apart (at most one per log, and logs are
	// tenants an admin created).
	maxBursts         = 4096
	maxSummaryProcs   = 16
	maxSummaryTenants = 8
	maxSummaryPeers   = 8
	maxSummaryCodes   = 8
	maxSummaryKeys    = 8
	maxSummaryTargets = 8
)

// refusals coalesces refused requests into bursts, so that a client
// hammering the server with refused requests costs one access record per
// burst and period instead of one fsynced append per request
// (docs/ACCESS.md, "Refusals").
//
// A burst is the refusals of one peer (peerKey) recorded in one log: with
// one key, when that key is bound to the log's tenant; else with any key or
// none (accessEvent.burstKeyID). Its first refusal is recorded on its own,
// durably, before it is answered; later ones are counted and answered at
// once. Every period, a burst that counted any writes a summary record
// (durable, in the same log) and goes on; one that counted none is over,
// and the next refusal opens a new burst with a record of its own. Close
// writes the summaries of every burst. A crash loses at most the counts of
// the current period: each burst's first refusal is already in the log.
//
// A log holds at most maxBurstsPerLog bursts, and the table maxBursts in
// all; refusals that would open a burst beyond either bound go to their
// log's overflow burst (key and peer empty), a burst like the others whose
// summaries list the peers, keys and targets they saw. Each of a log's at
// most maxBurstsPerLog+1 bursts writes a record (its opening or a summary)
// at most once a period, and a burst that ends frees its place only at the
// end of a quiet period, so a log gets at most maxBurstsPerLog+1 records in
// any period, give or take how late timers fire, and never twice that
// (TestRefusalWorstCasePerLog).
type refusals struct {
	period time.Duration // <= 0: every refusal is recorded on its own
	now    func() time.Time
	write  func(ctx context.Context, rec *v1.AccessRecord, log string) error
	log    *slog.Logger

	// afterFunc starts a burst's timer; nil: time.AfterFunc.
	afterFunc func(time.Duration, func()) refusalTimer

	mu       sync.Mutex
	closed   bool
	bursts   map[burstKey]*burst
	perLog   map[string]int // open bursts of each log, overflow bursts apart
	open     int            // open bursts of every log, overflow bursts apart
	inflight sync.WaitGroup // summaries being written by timers
}

// burstKey names a burst. An overflow burst has no peer and no key.
type burstKey struct {
	log, peer, key string
	overflow       bool
}

// refusalTimer is what refusals needs of a *time.Timer.
type refusalTimer interface {
	Stop() bool
	Reset(time.Duration) bool
}

type burst struct {
	key   burstKey
	role  policy.Role // the key's role when the burst is one key's, else none
	timer refusalTimer
	// opening is closed once the burst's first refusal is recorded; openErr
	// says whether that failed. Nil for bursts opened without a record.
	opening chan struct{}
	openErr error
	t       tally
}

// tally is what a summary says.
type tally struct {
	n              uint64
	first, last    time.Time
	procs, tenants boundedSet
	peers, codes   boundedSet
	keys, targets  boundedSet
}

// boundedSet holds at most max distinct strings and counts the additions
// it had no room for.
type boundedSet struct {
	items  []string
	others uint32
}

func (s *boundedSet) add(v string, max int) {
	if slices.Contains(s.items, v) {
		return
	}
	if len(s.items) >= max {
		if s.others < ^uint32(0) {
			s.others++
		}
		return
	}
	s.items = append(s.items, v)
}

func (t *tally) add(ev *accessEvent, peer string) {
	t.n++
	if t.first.IsZero() || ev.time.Before(t.first) {
		t.first = ev.time
	}
	if ev.time.After(t.last) {
		t.last = ev.time
	}
	t.procs.add(logText(ev.procedure, maxProcedureBytes), maxSummaryProcs)
	if ev.tenant != "" {
		t.tenants.add(logText(ev.tenant, maxTenantBytes), maxSummaryTenants)
	}
	t.peers.add(peer, maxSummaryPeers)
	t.codes.add(ev.code.String(), maxSummaryCodes)
	if ev.keyKnown {
		t.keys.add(logText(ev.keyID, maxKeyIDBytes), maxSummaryKeys)
	}
	if ev.target != "" {
		t.targets.add(targetText(ev.target), maxSummaryTargets)
	}
}

// merge adds another tally's counts (a summary that could not be written).
func (t *tally) merge(o tally) {
	if o.n == 0 {
		return
	}
	if t.n == 0 || o.first.Before(t.first) {
		t.first = o.first
	}
	if o.last.After(t.last) {
		t.last = o.last
	}
	t.n += o.n
	for _, m := range []struct {
		dst, src *boundedSet
		max      int
	}{{&t.procs, &o.procs, maxSummaryProcs}, {&t.tenants, &o.tenants, maxSummaryTenants}, {&t.peers, &o.peers, maxSummaryPeers},
		{&t.codes, &o.codes, maxSummaryCodes}, {&t.keys, &o.keys, maxSummaryKeys}, {&t.targets, &o.targets, maxSummaryTargets}} {
		for _, v := range m.src.items {
			m.dst.add(v, m.max)
		}
		m.dst.others += m.src.others
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// record is the summary record of a burst's tally, written at now.
func (b *burst) record(t tally, now time.Time) *v1.AccessRecord {
	return &v1.AccessRecord{
		KeyId: logText(b.key.key, maxKeyIDBytes), Role: roleProto(b.role), Outcome: v1.AccessOutcome(format.AccessDenied), Peer: b.key.peer,
		Reason: "refused requests counted together (docs/ACCESS.md, Refusals)", Time: timestamppb.New(now),
		Summary: &v1.RefusalSummary{
			Count: t.n, FirstTime: timestamppb.New(t.first), LastTime: timestamppb.New(t.last),
			Procedures: sorted(t.procs.items), OtherProcedures: t.procs.others,
			Codes:   sorted(t.codes.items),
			Tenants: sorted(t.tenants.items), OtherTenants: t.tenants.others,
			Peers: sorted(t.peers.items), OtherPeers: t.peers.others,
			KeyIds: sorted(t.keys.items), OtherKeyIds: t.keys.others,
			Targets: sorted(t.targets.items), OtherTargets: t.targets.others,
		},
	}
}

// refuse records or counts a refused request in the log named. open says
// whether it may open a burst with a record of its own; throttled
// requests may not. It returns an error only if the refusal could not be
// recorded; the request must then not be answered as refused.
func (r *refusals) refuse(ctx context.Context, ev *accessEvent, log string, open bool) error {
	if r.period <= 0 {
		return r.write(ctx, ev.proto(), log)
	}
	peer := peerKey(ev.peer)
	key := burstKey{log: log, peer: peer, key: ev.burstKeyID()}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.write(ctx, ev.proto(), log)
	}
	b := r.bursts[key]
	if b == nil && (r.open >= maxBursts || r.perLog[log] >= maxBurstsPerLog) {
		key = burstKey{log: log, overflow: true}
		b = r.bursts[key]
	}
	if b == nil {
		b = &burst{key: key}
		if key.key != "" {
			b.role = ev.role
		}
		r.add(b)
		after := r.afterFunc
		if after == nil {
			after = func(d time.Duration, f func()) refusalTimer { return time.AfterFunc(d, f) }
		}
		b.timer = after(r.period, func() { r.flush(b) })
		if open {
			b.opening = make(chan struct{})
			r.mu.Unlock()
			err := r.write(ctx, ev.proto(), log)
			r.mu.Lock()
			b.openErr = err
			close(b.opening)
			if err != nil && r.bursts[key] == b {
				b.timer.Stop()
				r.remove(b)
			}
			r.mu.Unlock()
			return err
		}
	}
	b.t.add(ev, peer)
	opening := b.opening
	r.mu.Unlock()
	if opening != nil {
		// Not answered before the burst's own record is durable.
		<-opening
		return b.openErr
	}
	return nil
}

// add puts a new burst in the table. r.mu is held.
func (r *refusals) add(b *burst) {
	if r.bursts == nil {
		r.bursts = map[burstKey]*burst{}
	}
	r.bursts[b.key] = b
	if b.key.overflow {
		return
	}
	if r.perLog == nil {
		r.perLog = map[string]int{}
	}
	r.perLog[b.key.log]++
	r.open++
}

// remove takes a burst out of the table. r.mu is held.
func (r *refusals) remove(b *burst) {
	delete(r.bursts, b.key)
	if b.key.overflow {
		return
	}
	r.open--
	if r.perLog[b.key.log]--; r.perLog[b.key.log] <= 0 {
		delete(r.perLog, b.key.log)
	}
}

// flush ends a burst's period: it writes the burst's summary if it counted
// refusals, else the burst is over. A burst no longer in the table (its
// timer fired as it was removed) is left alone.
func (r *refusals) flush(b *burst) {
	r.mu.Lock()
	if r.closed || b == nil || r.bursts[b.key] != b {
		r.mu.Unlock()
		return
	}
	if b.t.n == 0 {
		r.remove(b)
		r.mu.Unlock()
		return
	}
	t := b.t
	b.t = tally{}
	b.timer.Reset(r.period)
	r.inflight.Add(1)
	r.mu.Unlock()
	defer r.inflight.Done()
	if err := r.write(context.Background(), b.record(t, r.now()), b.key.log); err != nil {
		r.log.Error("record refusal summary; retrying next period", "log", b.key.log, "refusals", t.n, "err", err)
		r.mu.Lock()
		b.t.merge(t)
		r.mu.Unlock()
	}
}

// close writes the summary of every burst that counted refusals. Later
// refusals are recorded one by one.
func (r *refusals) close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	bursts := slices.Collect(maps.Values(r.bursts))
	for _, b := range bursts {
		b.timer.Stop()
	}
	r.bursts, r.perLog, r.open = nil, nil, 0
	r.mu.Unlock()
	// Summaries being written may fail and give their counts back.
	r.inflight.Wait()
	var errs []error
	for _, b := range bursts {
		r.mu.Lock()
		t := b.t
		b.t = tally{}
		r.mu.Unlock()
		if t.n == 0 {
			continue
		}
		if err := r.write(ctx, b.record(t, r.now()), b.key.log); err != nil {
			errs = append(errs, fmt.Errorf("summary of %d refusals in the %s access log: %w", t.n, b.key.log, err))
		}
	}
	return errors.Join(errs...)
}
