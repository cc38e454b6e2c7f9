package retention

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// SweepResult says what a sweep did in one tenant.
type SweepResult struct {
	Tenant string
	Erased int
	Held   int
	// Kept counts the OTLP entries of expired buckets kept because others
	// are: resource entries whose trace is kept, log records whose span
	// is (docs/RETENTION.md, "Resource entries", "Log records").
	Kept      int
	Tombstone *uint64
}

func bucketName(b ledger.Bucket) string { return fmt.Sprintf("%d/%s", b.Day, b.Class) }

// parseBucketName parses bucketName's "day/class".
func parseBucketName(name string) (day uint32, class string, ok bool) {
	d, class, ok := strings.Cut(name, "/")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.ParseUint(d, 10, 32)
	return uint32(n), class, err == nil && class != ""
}

// Sweep expires the payloads of a tenant whose retention period has passed.
// Data keys are laid out by expiry bucket (day, class), so a sweep works on
// buckets, not on keys: it retires every bucket whose day ended more than
// its class's period ago, lists the entries under them in one pass over
// their days' index ranges, and destroys every bucket without held entries
// whole; in a bucket with held entries, keys whose entries are all held
// stay and the others are destroyed after their held entries are re-sealed.
// All destruction is one DropPrefix. One tombstone lists what was purged
// and why. It first finishes the tenant's running plans whose lease ended
// (takeOverTenant); one that cannot be finished is logged and listed by
// Unfinished, and the sweep goes on without its entries.
func (s *Service) Sweep(ctx context.Context, tenant string) (*SweepResult, error) {
	if err := s.takeOverTenant(ctx, tenant); err != nil {
		return nil, err
	}
	s.work.Lock()
	defer s.work.Unlock()
	res := &SweepResult{Tenant: tenant}
	p, err := s.currentPolicy(ctx, tenant)
	if err != nil {
		return nil, err
	}
	all, err := s.L.Buckets(ctx, tenant)
	if err != nil {
		return nil, err
	}
	now := s.now().Unix()
	var expired []ledger.Bucket
	classes := map[string]int{}
	for _, b := range all {
		if classInPeriod(p, b.Class, int64(b.Day), now) {
			continue
		}
		expired = append(expired, b)
		classes[b.Class], _ = p.Days(b.Class)
	}
	if len(expired) == 0 {
		return res, nil
	}
	var why []string
	for c, d := range classes {
		why = append(why, fmt.Sprintf("class %s: %d days", c, d))
	}
	slices.Sort(why)
	er := &Erasure{ID: "sweep-" + uuid.NewString(), Kind: "expiry", Tenant: tenant, State: "executing", Selector: "expiry",
		Reason: fmt.Sprintf("retention period ended (%s)", strings.Join(why, "; ")), RequestedAt: s.now()}
	for _, b := range expired {
		er.Expired = append(er.Expired, bucketName(b))
	}
	if _, err := s.planSweep(ctx, er); err != nil {
		return nil, err
	}
	if len(er.Erase) == 0 && len(er.Buckets) == 0 && len(er.Keys) == 0 && len(er.Pseudonyms) == 0 {
		res.Held, res.Kept = len(er.Held), er.kept
		return res, nil
	}
	defer s.release(context.WithoutCancel(ctx), tenant, er.ID)
	if err := s.putErasure(ctx, er); err != nil {
		return nil, err
	}
	if err := s.runPlan(ctx, er); err != nil {
		// Stored and unfinished, perhaps past its first tombstone: the
		// health check lists it until the periodic takeover (takeOver) or
		// the next start finishes it.
		s.markUnfinished(tenant, er.ID)
		return nil, err
	}
	res.Erased, res.Held, res.Kept, res.Tombstone = len(er.Erase), len(er.Held), er.kept, er.Tombstone
	s.L.RequestValueLogGC()
	return res, nil
}

// planSweep makes (or makes again) a sweep's plan from its expired
// buckets: it retires them (again: harmless), lists the entries under
// them and decides with the holds in force which are erased and which
// kept, which buckets are destroyed whole and which keys one by one. It
// returns the size of the log read before the holds (held).
func (s *Service) planSweep(ctx context.Context, er *Erasure) (uint64, error) {
	// The log's size before the policy is read: the plan commits only if
	// no retention entry is at that index or later (commitPlan), so that
	// a sweep never erases under a policy superseded before it committed.
	size0, err := s.L.Size(ctx, er.Tenant)
	if err != nil {
		return 0, err
	}
	p, err := s.currentPolicy(ctx, er.Tenant)
	if err != nil {
		return 0, err
	}
	// Entries another plan (an erasure) has committed to erase are named
	// by its tombstone, not this one's; their keys go with the buckets.
	// Read before the buckets' entries are listed: a plan finished
	// since has destroyed its keys, and its entries are not listed.
	claimed, err := s.claimed(ctx, er)
	if err != nil {
		return 0, err
	}
	now := s.now().Unix()
	var expired []ledger.Bucket
	for _, name := range er.Expired {
		day, class, ok := parseBucketName(name)
		if !ok {
			return 0, fmt.Errorf("sweep %s: malformed bucket %q", er.ID, name)
		}
		if classInPeriod(p, class, int64(day), now) {
			continue // kept longer by a policy set since the sweep began
		}
		b, err := s.L.ExpiryBucket(ctx, er.Tenant, day, class)
		if err != nil {
			return 0, err
		}
		expired = append(expired, b)
	}
	// The subjects and sessions of the entries come in the same pass over
	// their envelopes (lastOf decides whose pseudonym keys go).
	entries, err := s.L.RetireBuckets(ctx, er.Tenant, expired, ledger.SubjectField, s.SessionField)
	if err != nil {
		return 0, err
	}
	idxs := make([]uint64, len(entries))
	for i, e := range entries {
		idxs[i] = e.Index
	}
	hs, _, err := s.held(ctx, er.Tenant, idxs)
	if err != nil {
		return 0, err
	}
	size := size0
	er.HoldsAt = &size

	// Resource entries stay while their trace is kept, log records while
	// their span is (keptByOthers).
	var cands []uint64
	for _, e := range entries {
		if hs[e.Index] == nil && claimed[e.Index] == "" {
			cands = append(cands, e.Index)
		}
	}
	kept, err := s.keptByOthers(ctx, er.Tenant, p, now, size0, cands)
	if err != nil {
		return 0, err
	}
	er.kept = len(kept)

	type keyState struct {
		ref        *ledger.KeyRef
		kept, gone int
	}
	keys := map[[16]byte]*keyState{}
	heldBucket := map[ledger.Bucket]bool{}
	var ids []ledger.TermRef
	er.Erase, er.Held, er.Keys, er.KeyRefs, er.Buckets = nil, nil, nil, nil, nil
	for _, e := range entries {
		k := keys[e.Key.ID]
		if k == nil {
			k = &keyState{ref: e.Key}
			keys[e.Key.ID] = k
		}
		if h := hs[e.Index]; h != nil {
			er.Held = append(er.Held, format.HeldEntry{Index: e.Index, HoldID: h.ID, CaseRef: h.CaseRef})
			heldBucket[e.Key.Bucket()] = true
			k.kept++
		} else if claimed[e.Index] != "" {
			k.gone++
		} else if kept[e.Index] {
			// Kept like a held entry, without a hold to name: its bucket
			// is not destroyed whole, its key stays or it is re-sealed.
			heldBucket[e.Key.Bucket()] = true
			k.kept++
		} else {
			er.Erase = append(er.Erase, e.Index)
			ids = append(ids, e.Terms...)
			k.gone++
		}
	}
	// A bucket with neither a live entry nor key material left (destroyed
	// by another sweep since this one began) is not this plan's: a plan
	// made again with nothing else to do ends with no tombstone.
	live := map[string]bool{}
	for _, e := range entries {
		live[bucketName(e.Key.Bucket())] = true
	}
	have, err := s.L.Buckets(ctx, er.Tenant)
	if err != nil {
		return 0, err
	}
	for _, b := range have {
		live[bucketName(b)] = true
	}
	for _, b := range expired {
		if !heldBucket[b] && live[bucketName(b)] {
			er.Buckets = append(er.Buckets, bucketName(b))
		}
	}
	for id, k := range keys {
		// A key whose entries are all held stays: destroying it would only
		// re-seal the same entries under a new key of the same scope.
		if heldBucket[k.ref.Bucket()] && k.gone > 0 {
			er.Keys = append(er.Keys, hex.EncodeToString(id[:]))
			er.KeyRefs = append(er.KeyRefs, k.ref)
		}
	}
	slices.Sort(er.Keys)
	slices.SortFunc(er.KeyRefs, func(a, b *ledger.KeyRef) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	// Subjects and sessions whose last live entries expire lose their
	// pseudonym keys with them (lastOf).
	if er.Pseudonyms, err = s.lastOf(ctx, er, ids, claimed); err != nil {
		return 0, err
	}
	return size, nil
}

// SweepAll sweeps every tenant, each after finishing its running plans
// whose lease has ended (Sweep).
func (s *Service) SweepAll(ctx context.Context) ([]*SweepResult, error) {
	var out []*SweepResult
	for _, t := range s.L.Tenants() {
		r, err := s.Sweep(ctx, t)
		if err != nil {
			return out, fmt.Errorf("sweep %s: %w", t, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Run, until ctx ends, takes over the running plans whose lease has ended
// (takeOver) every takeOverEvery, and sweeps every interval (0: never). The
// caller owns the goroutine Run blocks.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	takeOvers := time.NewTicker(takeOverEvery)
	defer takeOvers.Stop()
	var sweeps <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		sweeps = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-takeOvers.C:
			if err := s.takeOver(ctx); err != nil && ctx.Err() == nil {
				s.log().ErrorContext(ctx, "take over plans", "err", err)
			}
		case <-sweeps:
			if _, err := s.SweepAll(ctx); err != nil && ctx.Err() == nil {
				s.log().ErrorContext(ctx, "sweep", "err", err)
			}
		}
	}
}

// takeOverEvery is how often Run looks for plans whose lease has ended:
// a lease's length, so a dead process's plan waits at most two.
var takeOverEvery = leaseTTL

// takeOver finishes every running plan (erasure or sweep, in the index of
// running plans) whose lease has ended: one whose process failed, or died,
// mid-plan. A plan another process holds a live lease of is left to it;
// a plan this process works on holds a live lease too. One it cannot
// finish is logged and listed by Unfinished (the health check reports
// it) until a later takeOver, asking again, or Resume finishes it. It
// returns an error only if the running plans cannot be listed; its cost
// is one read of the index per tenant and one of the lease per running
// plan.
func (s *Service) takeOver(ctx context.Context) error {
	for _, tenant := range s.L.Tenants() {
		if err := s.takeOverTenant(ctx, tenant); err != nil {
			return err
		}
	}
	return nil
}

// takeOverTenant is takeOver in one tenant. Sweep and Erase run it first,
// so that work asked for on demand never plans around (or reports done
// beside) entries a failed process's plan claimed and left readable.
func (s *Service) takeOverTenant(ctx context.Context, tenant string) error {
	ids, err := s.runningPlans(ctx, tenant)
	if err != nil {
		return err
	}
	s.unlistDone(ctx, tenant, ids)
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The header first, without the lease: a plan done (its
		// record stale, left by the index's first build) or never
		// stored is not taken, and its record goes.
		er, err := s.getErasure(ctx, tenant, id, false)
		if errors.Is(err, ledger.ErrNotFound) || err == nil && er.State != "executing" {
			if err := s.L.DeleteStates(ctx, tenant, []string{stateRunning + id}); err != nil {
				s.log().ErrorContext(ctx, "the record of a finished erasure or sweep could not be dropped from the running plans", "tenant", tenant, "id", id, "err", err)
			}
			s.unlist(tenant, id)
			continue
		}
		if ended, err := s.leaseEnded(ctx, tenant, id); err != nil || !ended {
			if err != nil {
				s.log().ErrorContext(ctx, "the lease of a running erasure or sweep could not be read", "tenant", tenant, "id", id, "err", err)
			}
			continue
		}
		if err := s.finishPlan(ctx, tenant, id); err != nil && !errors.Is(err, ErrBusy) {
			s.log().ErrorContext(ctx, "a running erasure or sweep whose lease ended could not be finished", "tenant", tenant, "id", id, "err", err)
			s.markUnfinished(tenant, id)
		}
	}
	return nil
}

// unlistDone drops from Unfinished the plans of tenant that are not
// running (not in running) and whose header says they are done or is
// gone: another process finished them, or a takeover here did.
func (s *Service) unlistDone(ctx context.Context, tenant string, running []string) {
	for _, n := range s.Unfinished() {
		t, id, _ := strings.Cut(n, "/")
		if t != tenant || slices.Contains(running, id) {
			continue
		}
		er, err := s.getErasure(ctx, tenant, id, false)
		if errors.Is(err, ledger.ErrNotFound) || err == nil && er.State != "executing" {
			s.unlist(tenant, id)
		}
	}
}

// finishPlan takes plan id's lease, reads the plan again under it and
// finishes it if it is still executing. ErrBusy: another process holds
// the lease.
func (s *Service) finishPlan(ctx context.Context, tenant, id string) error {
	s.work.Lock()
	defer s.work.Unlock()
	// Again under the lock: acquire takes a live lease of this node's,
	// and one of this process's operations may have taken it since.
	if ended, err := s.leaseEnded(ctx, tenant, id); err != nil || !ended {
		if err == nil {
			err = errLeaseLost
		}
		return err
	}
	if err := s.acquire(ctx, tenant, id); err != nil {
		return err
	}
	defer s.release(context.WithoutCancel(ctx), tenant, id)
	er, err := s.getErasure(ctx, tenant, id, false)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil // not stored: nothing was done
	} else if err != nil {
		return err
	}
	if er.State != "executing" {
		s.finished(er)
		return nil
	}
	s.log().WarnContext(ctx, "taking over an erasure or sweep whose lease ended", "tenant", tenant, "id", id, "kind", er.what())
	return s.runPlan(ctx, er)
}
