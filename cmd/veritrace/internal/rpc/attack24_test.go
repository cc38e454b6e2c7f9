package rpc

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/policy"
)

// Attack24: a PlaceHold asked again with its request id (its answer
// lost) is recorded twice in the access log, and places one hold. An
// auditor reading the access log must be able to tell the two records are
// one request asked twice, not two placings of which one is missing from
// the log: the target names the request id, as an erasure's does
// ("erasure <request id>"). It names only the subject's pseudonym and the
// case, the same for two different holds of one case.
func TestAttack24AccessLogNamesHoldRequestID(t *testing.T) {
	ts := startServer(t, 0)
	ctx := context.Background()
	co := ts.clients("connect", "", ts.key(t, policy.ComplianceOfficer, "default")).retention
	req := &v1.PlaceHoldRequest{RequestId: "hold-attack24-a", Scope: &v1.HoldScope{Tenant: true}, CaseRef: "CASE-7", Reason: "litigation"}
	for i := 0; i < 2; i++ {
		if _, err := co.PlaceHold(ctx, connect.NewRequest(req)); err != nil {
			t.Fatal(err)
		}
	}
	var targets []string
	for _, rs := range ts.allAccessRecords(t) {
		for _, r := range rs {
			if r.GetProcedure() == veritracev1connect.RetentionServicePlaceHoldProcedure {
				targets = append(targets, r.GetTarget())
			}
		}
	}
	if len(targets) != 2 {
		t.Fatalf("access records of PlaceHold = %q, want 2", targets)
	}
	for _, tg := range targets {
		if !strings.Contains(tg, req.RequestId) {
			t.Errorf("access record target of PlaceHold with request id %s = %q: names neither the request id nor the hold", req.RequestId, tg)
		}
	}
}
