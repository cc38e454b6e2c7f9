package retention

import (
	"context"
	"encoding/json"
	"sort"
)

// Erasures lists a tenant's erasure requests and sweeps (dry runs are not
// kept), the most recently requested first, at most limit of them. It
// reads every erasure record of the tenant: one per request or sweep.
func (s *Service) Erasures(ctx context.Context, tenant string, limit int) ([]*Erasure, error) {
	_, values, err := s.L.ListState(ctx, tenant, stateErasure)
	if err != nil {
		return nil, err
	}
	out := make([]*Erasure, 0, len(values))
	for _, v := range values {
		er := &Erasure{}
		if err := json.Unmarshal(v, er); err != nil {
			return nil, err
		}
		out = append(out, er)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].RequestedAt.After(out[j].RequestedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
