package rpc

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// A call that names a subject or session is recorded so that the access
// log's --subject and --session filters find it, whatever else the client
// sends: no client-controlled field (a trace id of any length, a model, a
// request id, a case reference) comes before the names or pushes them past
// the target's cut. Every target kind that has names is checked, with each
// of its client fields at its longest.
func TestTargetNamesBeforeClientFields(t *testing.T) {
	n := namer{
		id:   func(field uint8, v string) string { return "pseudonym:" + strings.Repeat(v[:2], 12) },
		hold: func(string) string { return " subject=pseudonym:" + strings.Repeat("al", 12) },
	}
	subject, session := "subject=pseudonym:"+strings.Repeat("al", 12), "session=pseudonym:"+strings.Repeat("s1", 12)
	long := strings.Repeat("x", 4*maxTargetBytes)
	query := func(traceID int) *v1.TraceQuery {
		return &v1.TraceQuery{TraceId: bytes.Repeat([]byte{0xab}, traceID), SubjectId: "alice", SessionId: "s1", Model: long, VersionId: long}
	}
	type tc struct {
		target func(any, namer) string
		msg    any
		want   []string
	}
	cases := map[string]tc{
		"hold subject":            {holdTarget, &v1.PlaceHoldRequest{RequestId: long, CaseRef: long, Scope: &v1.HoldScope{SubjectId: "alice"}}, []string{subject}},
		"hold session":            {holdTarget, &v1.PlaceHoldRequest{RequestId: long, CaseRef: long, Scope: &v1.HoldScope{SessionId: "s1"}}, []string{session}},
		"access log":              {accessLogTarget, &v1.ListAccessLogRequest{FromIndex: math.MaxUint64, SubjectId: "alice"}, []string{subject}},
		"release":                 {releaseTarget, &v1.ReleaseHoldRequest{HoldId: long}, []string{subject}},
		"release, id like a name": {releaseTarget, &v1.ReleaseHoldRequest{HoldId: "session=" + strings.Repeat("s1", 12)}, []string{subject}},
	}
	for _, size := range []int{0, 1, 15, 16, 17, 40, 60, 80, 200, 10000} {
		q := query(size)
		cases["query, trace id of "+strconv.Itoa(size)] = tc{queryTarget, &v1.QueryTracesRequest{Query: q}, []string{session, subject}}
		cases["aggregate, trace id of "+strconv.Itoa(size)] = tc{aggregateTarget, &v1.AggregateTracesRequest{Query: q, GroupByAttribute: long}, []string{session, subject}}
		cases["export, trace id of "+strconv.Itoa(size)] = tc{exportTarget, &v1.ExportBundleRequest{Selector: q}, []string{session, subject}}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := targetText(c.target(c.msg, n))
			if names := namedIn(got); !slices.Equal(names, c.want) {
				t.Errorf("recorded as %q: namedIn = %q, want %q (the --subject and --session filters miss it)", got, names, c.want)
			}
		})
	}
}

// A query's trace id is recorded as 32 hex digits when it is one (16
// bytes), and otherwise by its length only: the call is refused as
// invalid, and client bytes of any length are not worth recording.
func TestTargetTraceID(t *testing.T) {
	n := namer{id: func(uint8, string) string { return "pseudonym:x" }}
	for size, want := range map[int]string{
		16:  "query trace=" + strings.Repeat("ab", 16),
		15:  "query trace=(invalid, 15 bytes)",
		1e6: "query trace=(invalid, 1000000 bytes)",
	} {
		got := targetText(queryTarget(&v1.QueryTracesRequest{Query: &v1.TraceQuery{TraceId: bytes.Repeat([]byte{0xab}, size)}}, n))
		if got != want {
			t.Errorf("query with a %d-byte trace id recorded as %q, want %q", size, got, want)
		}
	}
}
