package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// The list of a tenant's erasures and sweeps is an index of small state
// records, one per request, named so that name order is newest first:
// "erasure-at/" + 16 hex digits of (MaxInt64 - requested_at in Unix
// nanoseconds) + "/" + the request id. Each holds the request's summary
// (ErasureSummary), never its lists of entries, so a page of the list
// reads that page's records and no plan. putErasure writes the summary
// after the plan; Resume rewrites any summary that is missing or differs
// from its plan (a crash between the two writes, or plans stored before
// the index existed).
const stateErasureAt = "erasure-at/"

// ErasureSummary is what the list of erasures shows of one request or
// sweep: everything but its lists of entries, keys and receipt, with the
// sizes of those lists.
type ErasureSummary struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind,omitempty"` // "" (erasure) or "expiry"
	State       string    `json:"state"`
	Selector    string    `json:"selector"`
	LegalBasis  string    `json:"legal_basis"`
	Ticket      string    `json:"ticket,omitempty"`
	Reason      string    `json:"reason"`
	RequestedBy string    `json:"requested_by,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	Erased      int       `json:"erased"`
	Held        int       `json:"held"`
	Tombstone   *uint64   `json:"tombstone,omitempty"`
}

func summaryOf(er *Erasure) *ErasureSummary {
	return &ErasureSummary{ID: er.ID, Kind: er.Kind, State: er.State, Selector: er.Selector, LegalBasis: er.LegalBasis,
		Ticket: er.Ticket, Reason: er.Reason, RequestedBy: er.RequestedBy, RequestedAt: er.RequestedAt,
		CompletedAt: er.CompletedAt, Erased: er.erasedCount(), Held: er.heldCount(), Tombstone: er.Tombstone}
}

// erasureAtName is the name of a request's record in the list.
func erasureAtName(er *Erasure) string {
	return fmt.Sprintf("%s%016x/%s", stateErasureAt, uint64(math.MaxInt64-er.RequestedAt.UnixNano()), er.ID)
}

// indexErasure writes er's summary into the list, unless it is there
// already as it is.
func (s *Service) indexErasure(ctx context.Context, er *Erasure) error {
	b, err := json.Marshal(summaryOf(er))
	if err != nil {
		return err
	}
	name := erasureAtName(er)
	if old, err := s.L.GetState(ctx, er.Tenant, name); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return s.L.PutState(ctx, er.Tenant, name, b)
}

// MaxErasurePage bounds a page of Erasures.
const MaxErasurePage = 1000

// Erasures lists a tenant's erasure requests and sweeps (dry runs are not
// kept), the most recently requested first: at most limit (up to
// MaxErasurePage) from after the cursor (empty: from the newest), and the
// cursor of the next page ("" after the last). It reads the page's
// summaries only.
func (s *Service) Erasures(ctx context.Context, tenant, cursor string, limit int) ([]*ErasureSummary, string, error) {
	limit = min(max(limit, 1), MaxErasurePage)
	after := ""
	if cursor != "" {
		if !strings.HasPrefix(cursor, stateErasureAt) {
			return nil, "", fmt.Errorf("%w: not a cursor of the list of erasures", ErrInvalid)
		}
		after = cursor
	}
	names, values, err := s.L.ListStatePage(ctx, tenant, stateErasureAt, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(names) > limit {
		names, values = names[:limit], values[:limit]
		next = names[limit-1]
	}
	out := make([]*ErasureSummary, len(values))
	for i, v := range values {
		out[i] = &ErasureSummary{}
		if err := json.Unmarshal(v, out[i]); err != nil {
			return nil, "", fmt.Errorf("erasure summary %s: %w", names[i], err)
		}
	}
	return out, next, nil
}
