package retention

import (
	"context"
	"errors"
	"fmt"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// Classification is a tenant's policy in force at a point of its log, for
// the spans of one append (Classifier): it is read (and checked against
// the database) once, not per span, and shared: no copy per span.
type Classification struct {
	p      *Policy
	tenant string
}

// Class returns the retention class of a span.
func (c *Classification) Class(f SpanFacts) string { return c.p.Classify(f) }

// Longer returns whichever of two classes c keeps longer (Policy.Days; a
// class that never expires is longest; a on a tie). "" is shorter than any
// class.
func (c *Classification) Longer(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	da, ea := c.p.Days(a)
	db, eb := c.p.Days(b)
	if ea && (!eb || db > da) {
		return b
	}
	return a
}

// Revision is the policy revision the classification is made under.
func (c *Classification) Revision() int { return c.p.Revision }

// unless is the durable precondition of an append classified by c: the
// next revision's retention entry is not in the log. Revisions are
// recorded one after the other (SetPolicy appends revision N+1 only once
// N is recorded), so where the append commits without it, the last
// retention entry before the appended entries is c's revision's (none for
// revision 0, the default policy).
func (c *Classification) unless() ledger.Unless {
	return ledger.Unless{Absent: []ledger.Identity{{Kind: format.KindRetention, ID: policyID(c.tenant, c.p.Revision+1)}}}
}

// Classifier returns the tenant's policy in force now, for classifying
// the spans of one request.
func (s *Service) Classifier(ctx context.Context, tenant string) (*Classification, error) {
	p, err := s.policy(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return &Classification{p: p, tenant: tenant}, nil
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

// maxClassifyAttempts bounds how often AppendSpans classifies its spans
// again because a policy change was recorded meanwhile.
const maxClassifyAttempts = 8

// AppendSpans appends the records build makes, their retention classes
// given by the classification it is passed, so that every span is
// classified under the revision in force where its append commits: the
// policy whose retention entry is the last one before the span's entry
// in the log (the default policy if there is none). The records are
// appended with a durable precondition, checked by the ledger's writer in
// the transaction that would commit them: the next revision's retention
// entry is not in the log (one point read). If it is (a policy change, on
// any node, between the classification and the commit), nothing is
// written, and the spans are
// classified again under the new revision and appended again, at most
// maxClassifyAttempts times in all; then it fails with a *ChangingError
// (errors.Is ErrPolicyChanged) having appended nothing. build MUST
// expect to be called more than once, and return records whose classes
// depend only on the classification it is given. Records appended before
// (Duplicate receipts) keep the class they were committed with.
//
// appendFn nil is the ledger's AppendUnless; a replacement MUST check the
// precondition likewise or the guarantee is lost.
func (s *Service) AppendSpans(ctx context.Context, tenant string, build func(*Classification) ([]ledger.Record, error), appendFn Appender) ([]ledger.Receipt, error) {
	if appendFn == nil {
		appendFn = s.L.AppendUnless
	}
	for attempt := 1; ; attempt++ {
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
		rs, err := appendFn(ctx, tenant, recs, c.unless())
		if !errors.Is(err, ledger.ErrPrecondition) {
			return rs, err
		}
		if attempt == maxClassifyAttempts {
			return nil, &ChangingError{Attempts: attempt}
		}
	}
}

// ChangingError: the tenant's retention policy was changed again each
// time the spans of an append were classified; nothing was appended. It
// is ErrPolicyChanged; sending the spans again is safe.
type ChangingError struct{ Attempts int }

func (e *ChangingError) Error() string {
	return fmt.Sprintf("%v: the retention policy changed %d times while these spans were classified and appended; nothing was appended: send them again", ErrPolicyChanged, e.Attempts)
}

func (e *ChangingError) Is(target error) bool { return target == ErrPolicyChanged }
