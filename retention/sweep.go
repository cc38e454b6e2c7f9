package retention

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// SweepResult says what a sweep did in one tenant.
type SweepResult struct {
	Tenant    string
	Erased    int
	Held      int
	Tombstone *uint64
}

// Sweep expires the payloads of a tenant whose retention period has passed:
// every data key of a (class, day) older than the class's period is
// destroyed, after the held entries under it are re-sealed; one tombstone
// lists what was purged and why.
func (s *Service) Sweep(ctx context.Context, tenant string) (*SweepResult, error) {
	s.work.Lock()
	defer s.work.Unlock()
	res := &SweepResult{Tenant: tenant}
	p, err := s.Policy(ctx, tenant)
	if err != nil {
		return nil, err
	}
	keys, err := s.L.Keys(ctx, tenant)
	if err != nil {
		return nil, err
	}
	now := s.now().Unix()
	erase := map[uint64]bool{}
	var shred []*ledger.KeyRef
	var held []format.HeldEntry
	classes := map[string]int{}
	for _, k := range keys {
		days, expires := p.Days(k.Class)
		if !expires || (int64(k.Day)+1+int64(days))*86400 > now {
			continue
		}
		idxs, err := s.L.EntriesUnder(ctx, tenant, k)
		if err != nil {
			return nil, err
		}
		hs, err := s.held(ctx, tenant, idxs)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, i := range idxs {
			if h := hs[i]; h != nil {
				held = append(held, format.HeldEntry{Index: i, HoldID: h.ID, CaseRef: h.CaseRef})
			} else {
				erase[i] = true
				n++
			}
		}
		// A key whose entries are all held stays: destroying it would only
		// re-seal the same entries under a new key of the same expired scope.
		if n > 0 {
			shred = append(shred, k)
			classes[k.Class] = days
		}
	}
	res.Held = len(held)
	if len(shred) == 0 {
		return res, nil
	}
	ids := make([]uint64, 0, len(erase))
	for i := range erase {
		ids = append(ids, i)
	}
	slices.Sort(ids)
	var why []string
	for c, d := range classes {
		why = append(why, fmt.Sprintf("class %s: %d days", c, d))
	}
	slices.Sort(why)
	er := &Erasure{ID: "sweep-" + uuid.NewString(), Kind: "expiry", Tenant: tenant, State: "executing", Selector: "expiry",
		Reason: fmt.Sprintf("retention period ended (%s)", strings.Join(why, "; ")), RequestedAt: s.now(), Erase: ids, Held: held}
	for _, k := range shred {
		er.Keys = append(er.Keys, hex.EncodeToString(k.ID[:]))
	}
	if err := s.putErasure(ctx, er); err != nil {
		return nil, err
	}
	if err := s.complete(ctx, er); err != nil {
		return nil, err
	}
	res.Erased, res.Tombstone = len(ids), er.Tombstone
	s.L.RequestValueLogGC()
	return res, nil
}

// SweepAll sweeps every tenant.
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

// Run sweeps every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.SweepAll(ctx); err != nil && ctx.Err() == nil {
				s.log().ErrorContext(ctx, "sweep", "err", err)
			}
		}
	}
}
