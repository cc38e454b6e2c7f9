package retention

import (
	"context"

	"github.com/veritrace/veritrace/ledger"
)

// Classification is a tenant's policy in force at a point of its log, for
// the spans of one append (Classifier): it is read (and checked against
// the database) once, not per span, and shared: no copy per span.
type Classification struct {
	p *Policy
	// from is the log's size read before p was found current: no later
	// revision's entry was in the log below it.
	from uint64
}

// Class returns the retention class of a span.
func (c *Classification) Class(f SpanFacts) string { return c.p.Classify(f) }

// Days returns the retention period of a class (Policy.Days).
func (c *Classification) Days(class string) (int, bool) { return c.p.Days(class) }

// Revision is the policy revision the classification is made under.
func (c *Classification) Revision() int { return c.p.Revision }

// Classifier returns the tenant's policy in force now, for classifying
// the spans of one request.
func (s *Service) Classifier(ctx context.Context, tenant string) (*Classification, error) {
	p, err := s.policy(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return &Classification{p: p}, nil
}

// ClassOf returns the retention class of a span under the tenant's policy.
func (s *Service) ClassOf(ctx context.Context, tenant string, f SpanFacts) (string, error) {
	c, err := s.Classifier(ctx, tenant)
	if err != nil {
		return "", err
	}
	return c.Class(f), nil
}

// Appender appends records to a tenant's log under a precondition
// (ledger.Ledger.AppendUnless).
type Appender func(ctx context.Context, tenant string, recs []ledger.Record, u ledger.Unless) ([]ledger.Receipt, error)

// AppendSpans appends the records build makes, their retention classes
// given by the classification it is passed. appendFn nil is the ledger's
// AppendUnless.
func (s *Service) AppendSpans(ctx context.Context, tenant string, build func(*Classification) ([]ledger.Record, error), appendFn Appender) ([]ledger.Receipt, error) {
	c, err := s.Classifier(ctx, tenant)
	if err != nil {
		return nil, err
	}
	recs, err := build(c)
	if err != nil {
		return nil, err
	}
	if s.beforeSpanAppend != nil {
		s.beforeSpanAppend()
	}
	return s.L.Append(ctx, tenant, recs)
}
