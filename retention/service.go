package retention

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// Errors callers branch on.
var (
	// ErrNothingToErase: the selector matches no entry with a payload.
	ErrNothingToErase = errors.New("no entry with a payload matches")
	// ErrInvalid: a malformed request (missing fields, bad ids).
	ErrInvalid = errors.New("invalid request")
	// ErrHoldReleased: the hold was released already.
	ErrHoldReleased = errors.New("hold already released")
	// ErrBusy: another process (node) is carrying out the same erasure
	// request, or holds its plan's lease, or (*BusyError) another plan
	// claimed some of the entries selected and has not erased them yet;
	// asking again later is safe.
	ErrBusy = errors.New("another node is carrying out this erasure request")
)

// Names of state records.
const (
	statePolicy  = "retention"
	stateHold    = "hold/"
	stateErasure = "erasure/"
)

// Service applies retention, holds and erasure to a ledger. Its methods are
// safe for concurrent use; erasures and sweeps run one at a time.
type Service struct {
	L *ledger.Ledger
	// SessionField is the index field of span session ids (audit.FieldSession).
	SessionField uint8
	Now          func() time.Time
	Log          *slog.Logger
	// Node names the process among those sharing the database: unique
	// among the processes running at once, and the same after a restart
	// (a restarted node takes over the leases of its previous run at
	// Resume). "" is a node like any other name.
	Node string

	mu       sync.Mutex
	policies map[string]cachedPolicy
	run      string // this value's run among the node's (lease.go)
	// tokens: the fencing token of each lease this process holds, by
	// "tenant/id" (lease.go); the leases themselves are durable.
	tokens map[string]uint64
	// work runs one erasure, sweep, policy change or hold release at a
	// time in this process: it saves work that would be refused, and
	// guards nothing. What keeps them safe between processes is durable,
	// checked where each write commits: plan leases (lease.go), the
	// preconditions of a plan's first tombstone (commitPlan) and
	// conditional state updates.
	work sync.Mutex
	// unfinished: plans the last Resume could not finish (Unfinished).
	unfinished []string
	// beforePolicyAppend, if set, runs in SetPolicy after the change is
	// checked and before its entry is appended (tests: another node's
	// change in between).
	beforePolicyAppend func()
	// beforeSpanAppend, if set, runs in AppendSpans after the spans are
	// classified and before they are appended (tests: another node's
	// policy change in between).
	beforeSpanAppend func()
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// recordID makes the identity of a tombstone, retention or hold entry.
func recordID(parts ...string) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	var id [32]byte
	h.Sum(id[:0])
	return id
}

func (s *Service) appendRecord(ctx context.Context, tenant string, kind format.Kind, sub uint8, id [32]byte, v any) (uint64, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rs, err := s.L.Append(ctx, tenant, []ledger.Record{{Kind: kind, SubKind: sub, ID: id, RetentionClass: RecordsClass, Payload: payload}})
	if err != nil {
		return 0, err
	}
	return rs[0].Index, nil
}

// clone deep-copies a policy, so that callers never share its rules.
func (p *Policy) clone() *Policy {
	b, _ := json.Marshal(p)
	c := &Policy{}
	json.Unmarshal(b, c)
	return c
}

// Policy returns a copy of a tenant's retention policy (DefaultPolicy if it
// never set one).
func (s *Service) Policy(ctx context.Context, tenant string) (*Policy, error) {
	p, err := s.policy(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return p.clone(), nil
}

// policy returns the tenant's current policy snapshot, shared: callers
// MUST NOT modify it. SetPolicy replaces a snapshot, never changes one.
// The snapshot is this process's cache, checked against the database at
// every call: if the tenant's log has not grown since it was last found
// current, no node can have set a later revision (a revision is an entry
// of the log); otherwise one lookup of the next revision's entry tells.
// So classification follows a policy another node set from its first
// call after the change; a request classifies all its spans with one
// call (Classifier), and its append commits only if no later revision
// did meanwhile (AppendSpans).
func (s *Service) policy(ctx context.Context, tenant string) (*Policy, error) {
	size, err := s.L.Size(ctx, tenant)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	c := s.policies[tenant]
	s.mu.Unlock()
	if c.p != nil && c.at == size {
		return c.p, nil
	}
	if c.p != nil {
		_, found, err := s.L.IdentityIndex(ctx, tenant, format.KindRetention, policyID(tenant, c.p.Revision+1))
		if err != nil {
			return nil, err
		}
		if !found {
			s.cachePolicy(tenant, c.p, size)
			return c.p, nil
		}
	}
	return s.currentPolicy(ctx, tenant)
}

// SetPolicy replaces a tenant's policy after Check. next.Revision is the
// revision the change was made from (0: the default policy, never set):
// an optimistic-concurrency check. If it is not the current revision the
// call fails with a *StaleError (errors.Is ErrPolicyChanged) and writes
// nothing, so that a change made from an out-of-date copy never
// overwrites another. The check is durable: the change is appended as the
// entry of revision next.Revision+1, whose identity is unique in the
// tenant's log and checked where the append commits, so of two changes
// made from the same revision, on any nodes, exactly one is recorded.
// The change is appended to the tenant's log (a retention entry with the
// whole policy, who and why) before it takes effect. It returns the
// policy and the entry's index. A policy whose rules equal the current
// ones records nothing: it returns the current policy and the index of
// its entry (0 for the default policy, which has none).
func (s *Service) SetPolicy(ctx context.Context, tenant string, next Policy, by, reason string) (*Policy, uint64, error) {
	s.work.Lock()
	defer s.work.Unlock()
	old, err := s.currentPolicy(ctx, tenant)
	if err != nil {
		return nil, 0, err
	}
	if next.Revision != old.Revision {
		if p, idx, ok, err := s.retried(ctx, tenant, &next, reason); err != nil || ok {
			return p, idx, err
		}
		return nil, 0, &StaleError{Current: old.Revision, Edited: next.Revision}
	}
	old = old.clone()
	next = *next.clone() // the caller keeps its slices and maps
	if sameRules(old, &next) {
		if old.Revision == 0 {
			return old, 0, nil
		}
		idx, found, err := s.L.IdentityIndex(ctx, tenant, format.KindRetention, policyID(tenant, old.Revision))
		if err != nil {
			return nil, 0, err
		}
		if !found {
			return nil, 0, fmt.Errorf("retention policy of %s: revision %d has no entry", tenant, old.Revision)
		}
		return old, idx, nil
	}
	if err := Check(old, &next, reason); err != nil {
		return nil, 0, err
	}
	next.Default.Class = DefaultClass
	if s.beforePolicyAppend != nil {
		s.beforePolicyAppend()
	}
	next.Revision, next.UpdatedBy, next.UpdatedAt, next.Reason = old.Revision+1, by, s.now(), reason
	// The revision's entry is the change: of two changes made from the
	// same revision, on any nodes, the second appends nothing.
	idx, err := s.appendRecord(ctx, tenant, format.KindRetention, format.RetentionRules, policyID(tenant, next.Revision), &next)
	if errors.Is(err, ledger.ErrAlreadyExists) {
		// Revision next.Revision exists: recorded by another request,
		// perhaps not yet acknowledged (then currentPolicy does not show it).
		// It may be this very change, recorded by an earlier try.
		edited := next
		edited.Revision = old.Revision
		if p, idx, ok, err := s.retried(ctx, tenant, &edited, reason); err != nil || ok {
			return p, idx, err
		}
		current := next.Revision
		if p, err := s.currentPolicy(ctx, tenant); err == nil {
			current = max(current, p.Revision)
		}
		return nil, 0, &StaleError{Current: current, Edited: old.Revision}
	}
	if err != nil {
		return nil, 0, err
	}
	if err := s.storePolicy(ctx, tenant, &next); err != nil {
		return nil, 0, err
	}
	return next.clone(), idx, nil
}

// retried looks for next, a change made from revision next.Revision with
// the reason given, among those recorded: if revision next.Revision+1 is
// in the tenant's log (published: acknowledged or about to be) with the
// same rules (sameRules) and the same reason, next is a retry of the
// request that recorded it, whose answer was lost, and retried returns
// that revision and its entry's index, ok. Who set it is not compared: a
// colleague's retry of the same change is the same request. It writes
// nothing.
func (s *Service) retried(ctx context.Context, tenant string, next *Policy, reason string) (*Policy, uint64, bool, error) {
	if next.Revision < 0 {
		return nil, 0, false, nil
	}
	idx, found, err := s.L.IdentityIndex(ctx, tenant, format.KindRetention, policyID(tenant, next.Revision+1))
	if err != nil || !found {
		return nil, 0, false, err
	}
	en, err := s.L.GetEntry(ctx, tenant, idx)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, 0, false, nil // being appended, not yet published
	}
	if err != nil {
		return nil, 0, false, err
	}
	p := &Policy{}
	if err := json.Unmarshal(en.Payload, p); err != nil {
		return nil, 0, false, fmt.Errorf("retention entry %d of %s: %w", idx, tenant, err)
	}
	if p.Reason != reason || !sameRules(p, next) {
		return nil, 0, false, nil
	}
	return p, idx, true, nil
}

// sameRules reports whether two policies have the same rules (floor,
// high-risk mark, default rule and rules in order), whatever their
// revisions and who changed them last.
func sameRules(a, b *Policy) bool {
	rules := func(p *Policy) []byte {
		q := Policy{HighRisk: p.HighRisk, FloorDays: p.FloorDays, Default: p.Default, Rules: p.Rules}
		q.Default.Match = Match{}
		if len(q.Rules) == 0 {
			q.Rules = nil
		}
		b, _ := json.Marshal(&q)
		return b
	}
	return bytes.Equal(rules(a), rules(b))
}

// ErrPolicyChanged: the policy was changed by another request while this
// one changed it; read it again and decide again.
var ErrPolicyChanged = errors.New("the retention policy was changed meanwhile")

// StaleError: a policy change was made from a revision that is not the
// current one. It is ErrPolicyChanged.
type StaleError struct {
	Current, Edited int
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("%v: the policy is at revision %d; you edited revision %d: show it again, make your change to it and set that", ErrPolicyChanged, e.Current, e.Edited)
}

func (e *StaleError) Is(target error) bool { return target == ErrPolicyChanged }

// policyID is the identity of the retention entry of a policy revision.
func policyID(tenant string, rev int) [32]byte {
	return recordID("retention", tenant, fmt.Sprint(rev))
}

// storePolicy stores a policy as the tenant's state, unless the state
// holds a later revision already, and caches it.
func (s *Service) storePolicy(ctx context.Context, tenant string, p *Policy) error {
	b, _ := json.Marshal(p)
	err := s.L.UpdateState(ctx, tenant, statePolicy, func(old []byte) ([]byte, error) {
		var cur Policy
		if old != nil && json.Unmarshal(old, &cur) == nil && cur.Revision >= p.Revision {
			return old, nil
		}
		return b, nil
	})
	if err != nil {
		return err
	}
	s.cachePolicy(tenant, p, 0)
	return nil
}

// cachedPolicy is a tenant's cached policy and the size of its log read
// before p was last found current (0: not checked yet).
type cachedPolicy struct {
	p  *Policy
	at uint64
}

// cachePolicy keeps p as the tenant's cached policy, found current at log
// size at, unless the cache holds a later revision.
func (s *Service) cachePolicy(tenant string, p *Policy, at uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.policies == nil {
		s.policies = map[string]cachedPolicy{}
	}
	if q := s.policies[tenant]; q.p == nil || q.p.Revision < p.Revision || q.p.Revision == p.Revision && q.at < at {
		s.policies[tenant] = cachedPolicy{p: p, at: at}
	}
}

// currentPolicy reads a tenant's policy from the database, not from this
// process's cache: the state record, then any later revision the log
// holds (set by another node, or appended by a change interrupted before
// its state was stored). Sweeps and policy changes decide with it; the
// cache it refreshes serves classification on the append path.
func (s *Service) currentPolicy(ctx context.Context, tenant string) (*Policy, error) {
	size, err := s.L.Size(ctx, tenant)
	if err != nil {
		return nil, err
	}
	p := &Policy{}
	b, err := s.L.GetState(ctx, tenant, statePolicy)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		d := DefaultPolicy()
		p = &d
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, p); err != nil {
			return nil, fmt.Errorf("retention policy of %s: %w", tenant, err)
		}
	}
	for later := false; ; later = true {
		idx, found, err := s.L.IdentityIndex(ctx, tenant, format.KindRetention, policyID(tenant, p.Revision+1))
		if err != nil {
			return nil, err
		}
		if !found {
			if later {
				return p, s.storePolicy(ctx, tenant, p)
			}
			s.cachePolicy(tenant, p, size)
			return p, nil
		}
		en, err := s.L.GetEntry(ctx, tenant, idx)
		if errors.Is(err, ledger.ErrNotFound) {
			// The next revision's identity is written and its entry not
			// yet in the log's published size: another request is
			// appending it, and it is not acknowledged. p is current
			// until it is (a change made from p then fails at its
			// append, whose identity check sees the revision).
			now, serr := s.L.Size(ctx, tenant)
			if serr != nil {
				return nil, serr
			}
			if idx >= now {
				if later {
					return p, s.storePolicy(ctx, tenant, p)
				}
				return p, nil
			}
			en, err = s.L.GetEntry(ctx, tenant, idx) // published meanwhile
		}
		if err != nil {
			return nil, err
		}
		q := &Policy{}
		if err := json.Unmarshal(en.Payload, q); err != nil {
			return nil, fmt.Errorf("retention entry %d of %s: %w", idx, tenant, err)
		}
		p = q
	}
}
