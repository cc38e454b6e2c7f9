package retention

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Leases: an erasure or sweep plan is worked on by one process at a time,
// whichever node it runs on. Before it plans, stores, resumes or drops
// the chunks of a plan, a process takes the plan's lease, the state record
// "erasure-lease/<id>", with one atomic update (ledger.UpdateState): the
// lease names the node and the run of the process that holds it and when
// it ends. A lease is taken if there is none, if it has ended, or if it is
// the same node's from an earlier run (a node is one process at a time:
// its earlier run is over). Every write of the plan's header checks, in
// the same atomic write, that the writer still holds the lease
// (ledger.PutStateIf), so a process that lost it writes nothing more.
// The lease of an erasure request is taken by its request id before the
// request is looked up, so that two requests with one id never both plan.
const stateLease = "erasure-lease/"

// leaseTTL is how long a lease lasts without being renewed; each step of
// carrying out a plan renews it.
const leaseTTL = 10 * time.Minute

type lease struct {
	Node  string    `json:"node"`
	Run   string    `json:"run"`
	Until time.Time `json:"until"`
}

// run returns the id of this Service value's run, made once.
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

// acquire takes (or renews) the lease of plan id for this process; ErrBusy
// if another process holds it.
func (s *Service) acquire(ctx context.Context, tenant, id string) error {
	run, now := s.runID(), s.now()
	return s.L.UpdateState(ctx, tenant, stateLease+id, func(old []byte) ([]byte, error) {
		if old != nil {
			var l lease
			if err := json.Unmarshal(old, &l); err != nil {
				return nil, fmt.Errorf("lease of %s: %w", id, err)
			}
			if l.Node != s.Node && now.Before(l.Until) {
				return nil, errLeaseLost
			}
		}
		return json.Marshal(&lease{Node: s.Node, Run: run, Until: now.Add(leaseTTL)})
	})
}

// release gives up the lease of plan id if this process holds it.
func (s *Service) release(ctx context.Context, tenant, id string) {
	run := s.runID()
	err := s.L.UpdateState(ctx, tenant, stateLease+id, func(old []byte) ([]byte, error) {
		var l lease
		if old == nil || json.Unmarshal(old, &l) != nil || l.Node != s.Node || l.Run != run {
			return old, nil // not ours: leave it
		}
		return nil, nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log().WarnContext(ctx, "a plan's lease could not be released; it ends by itself", "tenant", tenant, "id", id, "err", err)
	}
}

// holding checks, atomically with a write, that this process holds the
// lease whose record is b.
func (s *Service) holding(b []byte) error {
	var l lease
	if b == nil || json.Unmarshal(b, &l) != nil || l.Node != s.Node || l.Run != s.runID() {
		return errLeaseLost
	}
	return nil
}
