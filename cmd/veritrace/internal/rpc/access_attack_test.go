package rpc

// Attacks on the access log, refusal bursts and readers (review of issue
// 9). Each test states the promise it holds the code to.

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
)

// logsByName is a fake access log that keeps which log each record went to.
type logsByName struct {
	mu   sync.Mutex
	recs map[string][]*v1.AccessRecord
}

func (f *logsByName) write(_ context.Context, r *v1.AccessRecord, log string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recs == nil {
		f.recs = map[string][]*v1.AccessRecord{}
	}
	f.recs[log] = append(f.recs[log], r)
	return nil
}

func (f *logsByName) of(log string) []*v1.AccessRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recs[log]
}

// TestAttackMintedKeysFloodAnotherTenantsLog: docs/ACCESS.md promises that
// a client hammering the server with refused requests "costs at most one
// append when it starts and one per minute while it lasts", and that
// "inventing ids opens no new bursts". But a burst is per key, and a
// tenant admin mints keys at will (no limit): the admin of acme, from one
// address, mints keys for acme and has each make one request naming
// globex. Every one of them opens a burst of its own, so each is an
// fsynced record in globex's access log, which globex keeps for years, and
// each key that goes on costs globex a summary a minute. Up to the burst
// table's 1024, after which (see the next test) the table is full for
// everyone.
func TestAttackMintedKeysFloodAnotherTenantsLog(t *testing.T) {
	s := startServerWith(t, Options{RefusalPeriod: time.Hour})
	ctx := context.Background()
	s.tenant(t, "acme")
	s.tenant(t, "globex")
	adm := s.clients("connect", "", s.key(t, policy.Admin, "acme"))
	before := len(s.accessRecords(t, "globex"))
	const keys = 40
	for i := 0; i < keys; i++ {
		r, err := adm.admin.CreateKey(ctx, connect.NewRequest(&v1.CreateKeyRequest{Role: v1.Role_ROLE_INGESTER, Tenants: []string{"acme"}, Label: fmt.Sprint("k", i)}))
		if err != nil {
			t.Fatalf("tenant admin: CreateKey = %v", err)
		}
		c := s.clients("connect", "globex", r.Msg.GetToken())
		_, err = c.ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{}))
		wantCode(t, "GetCheckpoint(globex)", err, connect.CodePermissionDenied, "")
	}
	if got := len(s.accessRecords(t, "globex")) - before; got > 2 {
		t.Errorf("one peer, %d keys minted by a tenant admin of acme, one refused request each: %d fsynced records in globex's access log; want at most a couple (one burst per peer)", keys, got)
	}
}

// TestAttackFullBurstTableHidesWhoProbed: the burst table is shared by
// every log (1024 bursts), and when it is full a refusal that would open a
// burst goes to its log's overflow burst, which records no key id. So
// unauthenticated noise from 1024 addresses (an IPv6 /54; each burst kept
// open by one request a minute) silences the records of every tenant: an
// auditor key of another tenant that then probes acme leaves acme's
// auditors a summary saying that something was refused, but not which
// key, although that key authenticated. docs/ACCESS.md: "an operator and
// an auditor see every burst (its first refusal, with its reason and
// target, and its counts)".
func TestAttackFullBurstTableHidesWhoProbed(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := &logsByName{}
	r := &refusals{period: time.Hour, now: clk.now, write: f.write, log: slog.New(slog.DiscardHandler), bursts: map[burstKey]*burst{}}
	for i := 0; i < maxBursts; i++ {
		ev := &accessEvent{procedure: "/veritrace.v1.LedgerService/GetEntry", peer: fmt.Sprintf("[2001:db8:0:%x::1]:443", i), time: clk.now()}
		ev.deny(connect.CodeUnauthenticated, "invalid API key")
		if err := r.refuse(ctx, ev, ledger.SystemTenant, true); err != nil {
			t.Fatal(err)
		}
	}
	probe := &accessEvent{procedure: "/veritrace.v1.AuditService/ExportBundle", peer: "198.51.100.7:5000", keyID: "5eed5eed5eed5eed", keyKnown: true,
		role: policy.Auditor, tenant: "acme", target: "export subject=ceo", time: clk.now()}
	probe.deny(connect.CodePermissionDenied, `this API key may not access tenant "acme"`)
	if err := r.refuse(ctx, probe, "acme", true); err != nil {
		t.Fatal(err)
	}
	if err := r.close(ctx); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, rec := range f.of("acme") {
		seen = append(seen, fmt.Sprintf("key %q target %q summary %v", rec.GetKeyId(), rec.GetTarget(), rec.GetSummary() != nil))
		if rec.GetKeyId() == probe.keyID {
			return
		}
	}
	t.Errorf("after unauthenticated noise filled the burst table, acme's access log does not name the authenticated key that probed it; acme's records: %v", seen)
}

// TestAttackRefusalSummaryDropsTargets: docs/ACCESS.md: targets are
// computed for refused calls "(a refused call's target tells the tenant's
// auditors what was tried)". Within a burst only the first refusal keeps
// its target: a key of another tenant that is refused reading entry 1 of
// acme and then refused exporting the traces of subject "ceo" and of
// session "board-7" leaves acme's auditors "entry 1" and a count.
func TestAttackRefusalSummaryDropsTargets(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := &logsByName{}
	r := &refusals{period: time.Hour, now: clk.now, write: f.write, log: slog.New(slog.DiscardHandler), bursts: map[burstKey]*burst{}}
	targets := []string{"entry 1", "export subject=ceo", "export session=board-7"}
	for _, target := range targets {
		ev := &accessEvent{procedure: "/veritrace.v1.AuditService/ExportBundle", peer: "198.51.100.7:5000", keyID: "5eed5eed5eed5eed", keyKnown: true,
			role: policy.Auditor, tenant: "acme", target: target, time: clk.now()}
		ev.deny(connect.CodePermissionDenied, `this API key may not access tenant "acme"`)
		if err := r.refuse(ctx, ev, "acme", true); err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Second)
	}
	if err := r.close(ctx); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, rec := range f.of("acme") {
		all.WriteString(rec.GetTarget() + "\n")
		b, _ := proto.Marshal(rec) // a summary could list targets in any field
		all.Write(b)
	}
	for _, target := range targets {
		if !strings.Contains(all.String(), target) {
			t.Errorf("acme's access log does not show the refused target %q; records: %v", target, f.of("acme"))
		}
	}
}

// TestAttackReadersFailOnOneUndecodableEntry (issue 9, item 5: "make every
// reader robust to any stored payload: one undecodable entry is shown as
// such, never an internal for the whole answer"). Payloads written straight
// into the ledger: an access record that is not protobuf, one whose time
// has no proto JSON form, and a span that is not protobuf. ListAccessLog,
// AggregateTraces and QueryTraces with summaries (the console's search
// page) answer internal for the whole page.
func TestAttackReadersFailOnOneUndecodableEntry(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	ing := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	if _, err := ing.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{testSpan(0), testSpan(1)}})); err != nil {
		t.Fatal(err)
	}
	badTime, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&v1.AccessRecord{KeyId: "0011223344556677", Procedure: "/x", Outcome: v1.AccessOutcome_ACCESS_OUTCOME_ALLOWED,
		Time: &timestamppb.Timestamp{Seconds: 1 << 62}})
	garbage := testSpan(2)
	rec, err := spanRecord("span", garbage, maxSpanBytes)
	if err != nil {
		t.Fatal(err)
	}
	rec.Payload = []byte("\xffnot protobuf")
	// The access records go to logs of their own, so that each shows its
	// failure: a record that is not protobuf fails every protocol, one
	// whose time is out of range fails the JSON one.
	s.tenant(t, "notproto")
	s.tenant(t, "badtime")
	for tenant, payload := range map[string][]byte{"notproto": []byte("\xffnot protobuf"), "badtime": badTime} {
		access := ledger.Record{Kind: format.KindAccess, SubKind: uint8(format.AccessAllowed), RetentionClass: accessRetentionClass, Payload: payload}
		if _, err := s.l.Append(ctx, tenant, []ledger.Record{access}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.l.Append(ctx, "default", []ledger.Record{rec}); err != nil {
		t.Fatal(err)
	}
	from := timestamppb.New(time.Now().Add(-time.Hour))
	to := timestamppb.New(time.Now().Add(time.Hour))
	for _, protocol := range []string{"connect", "json"} {
		t.Run(protocol, func(t *testing.T) {
			auditor := s.key(t, policy.Auditor, policy.AllTenants)
			for _, tenant := range []string{"notproto", "badtime"} {
				_, err := s.clients(protocol, tenant, auditor).ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{}))
				if err != nil {
					t.Errorf("ListAccessLog(%s) with one undecodable access record = %v; want the page, that entry shown as undecodable", tenant, err)
				}
			}
			c := s.clients(protocol, "", auditor)
			_, err := c.audit.AggregateTraces(ctx, connect.NewRequest(&v1.AggregateTracesRequest{Query: &v1.TraceQuery{From: from, To: to}}))
			if err != nil {
				t.Errorf("AggregateTraces() over one undecodable span = %v; want the figures, that span counted as undecodable", err)
			}
			_, err = c.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{}, WithSummaries: true}))
			if err != nil {
				t.Errorf("QueryTraces(with_summaries) over one undecodable span = %v; want the page", err)
			}
		})
	}
}

// TestAttackRefusedExportRecordsNoTarget: docs/ACCESS.md: "Targets are
// computed once the key is authenticated, for allowed and refused calls
// alike (a refused call's target tells the tenant's auditors what was
// tried)". ExportBundle is a server stream, whose request the interceptor
// has not read when it refuses the call, so a refused export, the most
// telling probe there is, is recorded with no target at all: globex's
// auditors see that an acme key was refused an export, not whose data it
// asked for.
func TestAttackRefusedExportRecordsNoTarget(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	s.tenant(t, "acme")
	s.tenant(t, "globex")
	c := s.clients("connect", "globex", s.key(t, policy.Auditor, "acme"))
	// globex holds data of its CEO: the refusal names the CEO by the
	// pseudonym the auditors of globex can look up (issue 9 item 2: never
	// by the id).
	g := s.clients("connect", "globex", s.key(t, policy.Ingester, "globex"))
	sp := testSpan(0)
	sp.SubjectId = "ceo-of-globex"
	if _, err := g.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: []*v1.Span{sp}})); err != nil {
		t.Fatal(err)
	}
	_, err := readBundle(ctx, c, &v1.TraceQuery{SubjectId: "ceo-of-globex"}, 0)
	wantCode(t, "ExportBundle(globex) with an acme key", err, connect.CodePermissionDenied, "")
	rs := s.accessRecords(t, "globex")
	if len(rs) != 1 {
		t.Fatalf("globex's access log holds %d records, want the refusal: %v", len(rs), rs)
	}
	want := "export subject=" + s.pseudonym(t, "globex", audit.FieldSubject, "ceo-of-globex")
	if rs[0].GetTarget() != want || strings.Contains(rs[0].GetTarget(), "ceo-of-globex") {
		t.Errorf("the refused export is recorded with target %q; want what it tried to export (%s)", rs[0].GetTarget(), want)
	}
}
