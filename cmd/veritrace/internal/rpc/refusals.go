package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Bounds of the refusal bursts kept in memory.
const (
	maxBursts          = 1024 // open bursts; further ones share an overflow burst per log
	maxSummaryProcs    = 16
	maxSummaryTenants  = 8
	maxSummaryPeers    = 8
	maxSummaryCodes    = 8
	overflowBurstField = "*"
)

// refusals coalesces refused requests into bursts, so that a client
// hammering the server with refused requests costs one access record per
// burst and period instead of one fsynced append per request
// (docs/ACCESS.md, "Refusals").
//
// A burst is the refusals of one peer (peerKey), with one key id (or none),
// recorded in one log. Its first refusal is recorded on its own, durably,
// before it is answered; later ones are counted and answered at once. Every
// period, a burst that counted any writes a summary record (durable, in the
// same log) and goes on; one that counted none is over, and the next
// refusal opens a new burst with a record of its own. Close writes the
// summaries of every burst. A crash loses at most the counts of the
// current period: each burst's first refusal is already in the log.
//
// The table holds at most maxBursts bursts; when it is full, refusals that
// would open a new burst are counted in one overflow burst of their log
// (key and peer "*"), whose summaries list the peers it saw.
type refusals struct {
	period time.Duration // <= 0: every refusal is recorded on its own
	now    func() time.Time
	write  func(ctx context.Context, rec *v1.AccessRecord, log string) error
	log    *slog.Logger

	mu       sync.Mutex
	closed   bool
	bursts   map[burstKey]*burst
	inflight sync.WaitGroup // summaries being written by timers
}

type burstKey struct{ log, peer, key string }

type burst struct {
	key   burstKey
	role  policy.Role
	timer *time.Timer
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
	}{{&t.procs, &o.procs, maxSummaryProcs}, {&t.tenants, &o.tenants, maxSummaryTenants}, {&t.peers, &o.peers, maxSummaryPeers}, {&t.codes, &o.codes, maxSummaryCodes}} {
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
	key, peer := b.key.key, b.key.peer
	if peer == overflowBurstField {
		key, peer = "", ""
	}
	return &v1.AccessRecord{
		KeyId: key, Role: roleProto(b.role), Outcome: v1.AccessOutcome(format.AccessDenied), Peer: peer,
		Reason: "refused requests counted together (docs/ACCESS.md, Refusals)", Time: timestamppb.New(now),
		Summary: &v1.RefusalSummary{
			Count: t.n, FirstTime: timestamppb.New(t.first), LastTime: timestamppb.New(t.last),
			Procedures: sorted(t.procs.items), OtherProcedures: t.procs.others,
			Codes:   sorted(t.codes.items),
			Tenants: sorted(t.tenants.items), OtherTenants: t.tenants.others,
			Peers: sorted(t.peers.items), OtherPeers: t.peers.others,
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
	if b == nil && len(r.bursts) >= maxBursts {
		key = burstKey{log: log, peer: overflowBurstField, key: overflowBurstField}
		b, open = r.bursts[key], false
	}
	if b == nil {
		b = &burst{key: key, role: ev.role}
		if key.peer == overflowBurstField {
			b.role = ""
		}
		r.bursts[key] = b
		b.timer = time.AfterFunc(r.period, func() { r.flush(key) })
		if open {
			b.opening = make(chan struct{})
			r.mu.Unlock()
			err := r.write(ctx, ev.proto(), log)
			r.mu.Lock()
			b.openErr = err
			close(b.opening)
			if err != nil && r.bursts[key] == b {
				b.timer.Stop()
				delete(r.bursts, key)
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

// flush ends a burst's period: it writes the burst's summary if it counted
// refusals, else the burst is over.
func (r *refusals) flush(key burstKey) {
	r.mu.Lock()
	b := r.bursts[key]
	if r.closed || b == nil {
		r.mu.Unlock()
		return
	}
	if b.t.n == 0 {
		delete(r.bursts, key)
		r.mu.Unlock()
		return
	}
	t := b.t
	b.t = tally{}
	b.timer.Reset(r.period)
	r.inflight.Add(1)
	r.mu.Unlock()
	defer r.inflight.Done()
	if err := r.write(context.Background(), b.record(t, r.now()), key.log); err != nil {
		r.log.Error("record refusal summary; retrying next period", "log", key.log, "refusals", t.n, "err", err)
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
	type pending struct {
		b *burst
		t tally
	}
	var todo []pending
	for _, b := range r.bursts {
		b.timer.Stop()
		if b.t.n > 0 {
			todo = append(todo, pending{b, b.t})
		}
	}
	r.bursts = nil
	r.mu.Unlock()
	r.inflight.Wait()
	var errs []error
	for _, p := range todo {
		if err := r.write(ctx, p.b.record(p.t, r.now()), p.b.key.log); err != nil {
			errs = append(errs, fmt.Errorf("summary of %d refusals in the %s access log: %w", p.t.n, p.b.key.log, err))
		}
	}
	return errors.Join(errs...)
}
