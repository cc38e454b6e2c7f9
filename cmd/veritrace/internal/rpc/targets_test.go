package rpc

import (
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

func TestLogText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"entry 42", 100, "entry 42"},
		{"a\nb\tc\x1b[31m", 100, `a\nb\tc\x1b[31m`},
		{`back\slash`, 100, `back\\slash`},
		{"bad \xff utf8", 100, `bad \xff utf8`},
		{"rtl \u202e override", 100, `rtl \u202e override`},
		{"müller", 100, "müller"},
		{"0123456789", 10, "0123456789"},
		{"0123456789a", 10, "0123456..."},
		{"ééééé", 8, "éé..."}, // never cuts inside a character
		{"\n\n\n\n", 8, `\n\n\n\n`},
		{"\n\n\n\n\n", 8, `\n\n...`},
	} {
		if got := logText(tc.in, tc.max); got != tc.want {
			t.Errorf("logText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func FuzzLogText(f *testing.F) {
	f.Add("entry 42\n", 16)
	f.Add("\xff\xfe\u202e", 5)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 3 || max > 1<<12 {
			return
		}
		got := logText(s, max)
		if len(got) > max {
			t.Fatalf("logText(%q, %d) = %q: %d bytes", s, max, got, len(got))
		}
		if !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool { return r != ' ' && !unicode.IsPrint(r) }) {
			t.Fatalf("logText(%q, %d) = %q: not printable", s, max, got)
		}
		if len(s) <= max && !strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || r == utf8.RuneError || r != ' ' && !unicode.IsPrint(r) }) && got != s {
			t.Fatalf("logText(%q, %d) = %q: changed a short printable string", s, max, got)
		}
	})
}

// TestTargetsQuoteClientText: every value a client sends that a target
// names reads as itself when it is one plain word, and is quoted (Go
// syntax, escaped once) otherwise, so that it cannot pass for the text
// around it; names come right after the verb, before any free text.
func TestTargetsQuoteClientText(t *testing.T) {
	const p = "pseudonym:abababababababababababab"
	const held = "3f2a9c1d-5e6b-4a80-9c1d-5e6b7a803f2a" // a hold on a subject
	n := namer{
		id: func(field uint8, v string) string { return p },
		hold: func(id string) string {
			if id == held {
				return " subject=" + p
			}
			return ""
		},
	}
	from := timestamppb.New(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name   string
		target func(any, namer) string
		msg    any
		want   string
	}{
		{"erasure", eraseTarget, &v1.EraseRequest{RequestId: "dsr-118"}, "erasure dsr-118"},
		{"erasure, malformed id", eraseTarget, &v1.EraseRequest{RequestId: "x for case CASE-7"}, `erasure "x for case CASE-7"`},
		{"dry run, id with a newline", eraseTarget, &v1.EraseRequest{RequestId: "x\ny", DryRun: true}, `dry run of erasure "x\ny"`},
		{"get erasure, id with a quote", erasureTarget, &v1.GetErasureRequest{RequestId: `q"r`}, `erasure "q\"r"`},
		{"hold, id with a quote", holdTarget, &v1.PlaceHoldRequest{RequestId: `q"r`, CaseRef: "CASE-7"}, `hold request "q\"r" for case CASE-7`},
		{"hold, case in words", holdTarget, &v1.PlaceHoldRequest{Scope: &v1.HoldScope{SubjectId: "s"}, RequestId: "h-1", CaseRef: `Smith v. Jones \ 7`},
			`hold subject=` + p + ` request h-1 for case "Smith v. Jones \\ 7"`},
		{"release", releaseTarget, &v1.ReleaseHoldRequest{HoldId: held}, "hold subject=" + p + " " + held},
		{"release, unknown hold", releaseTarget, &v1.ReleaseHoldRequest{HoldId: "9c1d5e6b-3f2a-4a80-9c1d-5e6b7a803f2a"}, "hold 9c1d5e6b-3f2a-4a80-9c1d-5e6b7a803f2a"},
		{"release, malformed id", releaseTarget, &v1.ReleaseHoldRequest{HoldId: "h1 and h2"}, `hold "h1 and h2"`},
		{"revoke, malformed id", revokeKeyTarget, &v1.RevokeKeyRequest{Id: "k1 of tenant acme"}, `key "k1 of tenant acme"`},
		{"tenant, malformed name", createTenantTarget, &v1.CreateTenantRequest{Name: "acme (refused)"}, `tenant "acme (refused)"`},
		{"key, a tenant with a comma", createKeyTarget, &v1.CreateKeyRequest{Role: v1.Role_ROLE_AUDITOR, Tenants: []string{"a,b", "c"}}, `new auditor key for "a,b",c`},
		{"version, malformed id", versionTarget, &v1.GetVersionRequest{Id: "v1 of app"}, `version "v1 of app"`},
		{"aggregate, attribute in words", aggregateTarget, &v1.AggregateTracesRequest{Query: &v1.TraceQuery{}, GroupByAttribute: "a b"}, `aggregate (everything) by "a b"`},
		{"query, names first", queryTarget, &v1.QueryTracesRequest{Query: &v1.TraceQuery{SubjectId: "s", Model: "gpt-4o", From: from, ErrorsOnly: true}},
			"query subject=" + p + " errors from=2026-11-01T00:00:00Z model=gpt-4o"},
		{"query, model in words", queryTarget, &v1.QueryTracesRequest{Query: &v1.TraceQuery{SessionId: "s", Model: "gpt subject=" + p}},
			"query session=" + p + ` model="gpt subject=pseudonym:ababababababababab..."`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := targetText(tc.target(tc.msg, n))
			if got != tc.want {
				t.Errorf("recorded target = %s, want %s", got, tc.want)
			}
			// The access-log filter finds the names whatever follows them,
			// and nothing in free text.
			wantNames := strings.Count(tc.want, "="+p)
			if got := namedIn(got); len(got) != wantNames && (strings.HasPrefix(tc.want, "query") || strings.HasPrefix(tc.want, "hold")) {
				t.Errorf("namedIn = %q, want %d names", got, wantNames)
			}
		})
	}
}
