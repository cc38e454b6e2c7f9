package main

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// TestDescribeSummary: `veritrace access-log` prints every list of a
// refusal summary, with the count of what did not fit.
func TestDescribeSummary(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC))
	s := &v1.RefusalSummary{Count: 12, FirstTime: at, LastTime: at, Codes: []string{"permission_denied"},
		Procedures: []string{"/veritrace.v1.AuditService/ExportBundle"}, Tenants: []string{"globex"},
		Peers: []string{"192.0.2.7"}, OtherPeers: 2, KeyIds: []string{"5eed5eed5eed5eed"}, OtherKeyIds: 3,
		Targets: []string{"export subject=ceo,cfo", "entry 1"}, OtherTargets: 9}
	want := "summary: 12 more refused from 2026-11-21T09:00:00Z to 2026-11-21T09:00:00Z; codes permission_denied;" +
		" procedures /veritrace.v1.AuditService/ExportBundle; tenants globex; peers 192.0.2.7 and 2 more;" +
		` keys 5eed5eed5eed5eed and 3 more; targets "export subject=ceo,cfo","entry 1" and 9 more`
	if got := describeSummary(s); got != want {
		t.Errorf("describeSummary() =\n%s\nwant\n%s", got, want)
	}
}
