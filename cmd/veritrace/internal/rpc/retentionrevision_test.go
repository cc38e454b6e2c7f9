package rpc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// SetRetention takes the policy's revision as the revision it was edited
// from: a change made from an out-of-date copy is refused (Aborted, both
// revisions named) and records nothing; of two changes made from the same
// revision at once exactly one is recorded; the policy as GetRetention
// shows it round-trips; an unchanged policy records nothing.
func TestSetRetentionRevision(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	co2 := s.clients("grpc", "", s.key(t, policy.ComplianceOfficer, "default"))
	show := func() *v1.RetentionPolicy {
		t.Helper()
		r, err := co.retention.GetRetention(ctx, connect.NewRequest(&v1.GetRetentionRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg.GetPolicy()
	}
	set := func(c clients, p *v1.RetentionPolicy, reason string) (*v1.SetRetentionResponse, error) {
		r, err := c.retention.SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: p, Reason: reason}))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	}

	// Show, edit, set: revision 1; a colleague then records revision 2.
	p := show()
	p.DefaultRule.Days = 400
	first, err := set(co, p, "keep longer")
	if err != nil || first.GetPolicy().GetRevision() != 1 {
		t.Fatalf("SetRetention(from the default) = %v, %v; want revision 1", first, err)
	}
	mine := show() // revision 1, as this user shows it
	theirs := show()
	theirs.DefaultRule.Days = 500
	theirsSet, err := set(co2, theirs, "a colleague")
	if err != nil || theirsSet.GetPolicy().GetRevision() != 2 {
		t.Fatalf("SetRetention(the colleague's, from revision 1) = %v, %v; want revision 2", theirsSet, err)
	}
	// This user's change, made from revision 1, is refused.
	mine.DefaultRule.Days = 450
	_, err = set(co, mine, "mine")
	wantCode(t, "SetRetention(edited revision 1, at 2)", err, connect.CodeAborted, "the policy is at revision 2; you edited revision 1: show it again")
	// A policy without a revision was edited from the default (revision 0).
	mine.Revision = 0
	_, err = set(co, mine, "mine")
	wantCode(t, "SetRetention(no revision, at 2)", err, connect.CodeAborted, "you edited revision 0")
	mine.Revision = -1
	_, err = set(co, mine, "mine")
	wantCode(t, "SetRetention(revision -1)", err, connect.CodeInvalidArgument, "policy.revision")
	if got := show(); got.GetRevision() != 2 || got.GetDefaultRule().GetDays() != 500 {
		t.Fatalf("after refused changes the policy is revision %d keeping %d days; want the colleague's revision 2 (500 days)", got.GetRevision(), got.GetDefaultRule().GetDays())
	}

	// Unchanged, as shown: nothing recorded, the current revision answered.
	cur := show()
	again, err := set(co, cur, "no change")
	if err != nil || again.GetPolicy().GetRevision() != 2 || again.GetPolicy().GetReason() != "a colleague" || again.GetIndex() != theirsSet.GetIndex() {
		t.Fatalf("SetRetention(unchanged) = %v, %v; want revision 2 as the colleague recorded it at index %d", again, err, theirsSet.GetIndex())
	}

	// Two changes from the same revision at once, over both protocols,
	// many times: exactly one recorded each time.
	for round := 0; round < 10; round++ {
		base := show()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		edits := []*v1.RetentionPolicy{show(), show()} // both shown before either is set
		for i, c := range []clients{co, co2} {
			p := edits[i]
			p.DefaultRule.Days = 600 + int32(10*round+i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = set(c, p, fmt.Sprintf("round %d, %d", round, i))
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
			} else if connect.CodeOf(err) != connect.CodeAborted || !strings.Contains(err.Error(), fmt.Sprintf("you edited revision %d", base.GetRevision())) {
				t.Fatalf("round %d: SetRetention() = %v; want success or Aborted naming revision %d", round, err, base.GetRevision())
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d of two changes from revision %d recorded (%v); want exactly one", round, won, base.GetRevision(), errs)
		}
		if got := show().GetRevision(); got != base.GetRevision()+1 {
			t.Fatalf("round %d: revision %d, want %d", round, got, base.GetRevision()+1)
		}
	}
}
