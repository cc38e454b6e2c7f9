package retention

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/veritrace/veritrace/ledger"
)

// Leases: an erasure or sweep plan is worked on by one process at a time,
// whichever node it runs on. Before it plans, stores, resumes or drops
// the chunks of a plan, a process takes the plan's lease, the state record
// "erasure-lease/<id>", with one atomic update (ledger.UpdateState): the
// lease names the node and the run of the process that holds it, when it
// ends, and its fencing token. A lease is taken if there is none, if it
// has ended (or was released), or if it is the same node's from an
// earlier run (a node is one process at a time: its earlier run is over);
// every taking raises the token by one, and the record is never deleted
// (releasing ends it), so a token is never given twice for one plan. The
// holder remembers its token and renews the lease only while the record
// still carries it: a process that lost a lease never takes it again in
// the same operation, even once it is released (the operation fails with
// ErrBusy). Every write of a plan (its chunks and its header) checks, in
// the same atomic write, that the record carries the writer's token
// (ledger.PutStateIf), so a process that lost the lease writes nothing
// more; destroying keys and marking entries erased check it right before
// (docs/RETENTION.md, "Several processes over one database"). The lease
// of an erasure request is taken by its request id before the request is
// looked up, so that two requests with one id never both plan.
const stateLease = "erasure-lease/"

// leaseTTL is how long a lease lasts without being renewed; each step of
// carrying out a plan renews it.
const leaseTTL = 10 * time.Minute

// leaseRenewEvery is how often a holder renews a lease while it works
// (keepLease): a third of its length, so that two renewals may fail
// before it ends.
var leaseRenewEvery = leaseTTL / 3

// leaseTicker starts keepLease's clock, a ticker of leaseRenewEvery, and
// returns its channel and its stop; tests tick it by hand.
var leaseTicker = func() (<-chan time.Time, func()) {
	t := time.NewTicker(leaseRenewEvery)
	return t.C, t.Stop
}

// testHookLeaseWritten, if set, is called after every write of a plan's
// lease record by acquire (taken or renewed).
var testHookLeaseWritten func(tenant, id string)

type lease struct {
	Node  string    `json:"node"`
	Run   string    `json:"run"`
	Until time.Time `json:"until"`
	// Token is the lease's fencing token: 1 when first taken, one more at
	// every taking; 0 in leases of an earlier build.
	Token uint64 `json:"token,omitempty"`
}

// runID returns the id of this Service value's run, made once.
func (s *Service) runID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run == "" {
		b := make([]byte, 8)
		rand.Read(b)
		s.run = hex.EncodeToString(b)
	}
	return s.run
}

// errLeaseLost: a plan's lease is held by another process.
var errLeaseLost = fmt.Errorf("%w: the plan's lease is held by another process", ErrBusy)

// heldToken returns the token this process holds plan id's lease with (0:
// none), and sets it to t unless t is nil (*t == 0: forget it).
func (s *Service) heldToken(tenant, id string, t *uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := tenant + "/" + id
	old := s.tokens[k]
	switch {
	case t == nil:
	case *t == 0:
		delete(s.tokens, k)
	default:
		if s.tokens == nil {
			s.tokens = map[string]uint64{}
		}
		s.tokens[k] = *t
	}
	return old
}

// acquire takes (or renews) the lease of plan id for this process; ErrBusy
// if another process holds it, or took it since this process did.
func (s *Service) acquire(ctx context.Context, tenant, id string) error {
	run, now := s.runID(), s.now()
	mine := s.heldToken(tenant, id, nil)
	var token uint64
	err := s.L.UpdateState(ctx, tenant, stateLease+id, func(old []byte) ([]byte, error) {
		var l lease
		if old != nil {
			if err := json.Unmarshal(old, &l); err != nil {
				return nil, fmt.Errorf("lease of %s: %w", id, err)
			}
		}
		switch {
		case mine != 0:
			// Renewed only if nobody took it since: never taken back.
			if old == nil || l.Token != mine || l.Node != s.Node || l.Run != run {
				return nil, errLeaseLost
			}
			token = mine
		case old != nil && l.Node != s.Node && now.Before(l.Until):
			return nil, errLeaseLost
		default:
			token = l.Token + 1
		}
		return json.Marshal(&lease{Node: s.Node, Run: run, Until: now.Add(leaseTTL), Token: token})
	})
	if err != nil {
		return err
	}
	if testHookLeaseWritten != nil {
		testHookLeaseWritten(tenant, id)
	}
	s.heldToken(tenant, id, &token)
	return nil
}

// release ends the lease of plan id if this process holds it, keeping its
// token in the record, and forgets it.
func (s *Service) release(ctx context.Context, tenant, id string) {
	var none uint64
	mine := s.heldToken(tenant, id, &none)
	if mine == 0 {
		return
	}
	run := s.runID()
	err := s.L.UpdateState(ctx, tenant, stateLease+id, func(old []byte) ([]byte, error) {
		var l lease
		if old == nil || json.Unmarshal(old, &l) != nil || l.Node != s.Node || l.Run != run || l.Token != mine {
			return old, nil // not ours: leave it
		}
		l.Until = time.Time{}
		return json.Marshal(&l)
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log().WarnContext(ctx, "a plan's lease could not be released; it ends by itself", "tenant", tenant, "id", id, "err", err)
	}
}

// holding returns a check, made atomically with a write, that this
// process holds plan id's lease, whose record is b.
func (s *Service) holding(tenant, id string) func(b []byte) error {
	mine, run := s.heldToken(tenant, id, nil), s.runID()
	return func(b []byte) error {
		var l lease
		if mine == 0 || b == nil || json.Unmarshal(b, &l) != nil || l.Node != s.Node || l.Run != run || l.Token != mine {
			return errLeaseLost
		}
		return nil
	}
}

// leaseEnded reports whether plan id has no lease, or one that has ended
// (released, or not renewed in time), and this process does not hold it.
func (s *Service) leaseEnded(ctx context.Context, tenant, id string) (bool, error) {
	if s.heldToken(tenant, id, nil) != 0 {
		return false, nil
	}
	b, err := s.L.GetState(ctx, tenant, stateLease+id)
	if errors.Is(err, ledger.ErrNotFound) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	var l lease
	if err := json.Unmarshal(b, &l); err != nil {
		return false, fmt.Errorf("lease of %s: %w", id, err)
	}
	return !s.now().Before(l.Until), nil
}

// keepLease renews plan id's lease, which this process holds (acquire),
// every leaseRenewEvery while its holder works, so that a step longer
// than the lease (a Shred of many keys, a plan of many entries) is not
// taken over while it runs. A plan's run starts it once, where the run
// takes the lease (Erase, Sweep, finishPlan, Resume), and keeps it to the
// end: complete starts none of its own, so the lease is written once a
// period.
//
// It returns a context for the work, with ctx's values, ended only once
// a renewal finds the lease taken by another process (cause
// errLeaseLost), not when ctx ends: the work decides whether its caller
// may stop it (planning may; complete, once its tombstone is written,
// runs to the end). And it returns stop, which ends the renewals and
// returns errLeaseLost if the lease was lost, else nil; calling it again
// returns the same and does nothing more. Every write still checks the
// lease where it commits: the context only stops the holder's work
// sooner. A renewal that fails for another reason (storage) is logged and
// tried again at the next period.
func (s *Service) keepLease(ctx context.Context, tenant, id string) (context.Context, func() error) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	done, stopped := make(chan struct{}), make(chan struct{})
	var lost error
	go func() {
		defer close(stopped)
		tick, stopTicker := leaseTicker()
		defer stopTicker()
		for {
			select {
			case <-done:
				return
			case <-tick:
			}
			err := s.acquire(ctx, tenant, id)
			switch {
			case err == nil:
			case errors.Is(err, ErrBusy):
				lost = err
				s.log().ErrorContext(ctx, "lost the lease of an erasure or sweep while working on it: another process took it over; this one stops and writes nothing more", "tenant", tenant, "id", id)
				cancel(err)
				return
			default:
				s.log().WarnContext(ctx, "a plan's lease could not be renewed; trying again", "tenant", tenant, "id", id, "err", err)
			}
		}
	}()
	return ctx, sync.OnceValue(func() error {
		close(done)
		<-stopped
		cancel(nil)
		return lost
	})
}

// untilCancelled returns ctx ended also when the caller's context ends,
// with the cause of whichever ended first, and its cancel.
func untilCancelled(ctx, caller context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(caller, func() { cancel(context.Cause(caller)) })
	return ctx, func() { stop(); cancel(nil) }
}
