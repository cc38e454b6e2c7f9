package rpc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
)

// accessRecords reads a tenant's access log straight from the ledger (not
// through ListAccessLog, which would record itself).
func (s *testServer) accessRecords(t *testing.T, tenant string) []*v1.AccessRecord {
	t.Helper()
	var out []*v1.AccessRecord
	for from := uint64(0); ; {
		es, next, err := s.l.EntriesOfKind(context.Background(), tenant, format.KindAccess, from, 1000)
		if err != nil {
			t.Fatalf("EntriesOfKind(%s) = %v", tenant, err)
		}
		for _, e := range es {
			r := &v1.AccessRecord{}
			if err := proto.Unmarshal(e.Payload, r); err != nil {
				t.Fatalf("access entry %d of %s: %v", e.Header.Index, tenant, err)
			}
			out = append(out, r)
		}
		if next == 0 {
			return out
		}
		from = next
	}
}

// allAccessRecords reads the access logs of every tenant.
func (s *testServer) allAccessRecords(t *testing.T) map[string][]*v1.AccessRecord {
	t.Helper()
	out := map[string][]*v1.AccessRecord{}
	for _, tenant := range s.l.Tenants() {
		out[tenant] = s.accessRecords(t, tenant)
	}
	return out
}

func countRecords(m map[string][]*v1.AccessRecord) int {
	n := 0
	for _, rs := range m {
		n += len(rs)
	}
	return n
}

// accessRecordLimit is the most an access record may take, whatever the
// request: every string in it is bounded.
const accessRecordLimit = 2048

// TestAccessRecordsBounded sends requests whose targets, reasons and
// headers are as large as a request may be, and full of control
// characters, and checks that no access record grows with them.
func TestAccessRecordsBounded(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	s.tenant(t, "acme")
	s.tenant(t, "globex")
	huge := strings.Repeat("A\n\x1b[31m", 150_000) // about 1 MiB, with newlines and terminal escapes
	// A key bound to acme, naming globex: the refusal is recorded in
	// globex's log.
	ing := s.clients("connect", "globex", s.key(t, policy.Ingester, "acme"))
	_, err := ing.ingest.GetVersion(ctx, connect.NewRequest(&v1.GetVersionRequest{Id: huge}))
	wantCode(t, "GetVersion(foreign tenant)", err, connect.CodePermissionDenied, "")
	_, err = ing.admin.RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: huge}))
	wantCode(t, "RevokeKey(ingester)", err, connect.CodePermissionDenied, "")
	_, err = ing.admin.CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Name: huge}))
	wantCode(t, "CreateTenant(ingester)", err, connect.CodePermissionDenied, "")
	co := s.clients("connect", "globex", s.key(t, policy.ComplianceOfficer, "acme"))
	_, err = co.retention.ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: huge, Reason: huge}))
	wantCode(t, "ReleaseHold(foreign tenant)", err, connect.CodePermissionDenied, "")
	_, err = co.audit.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: []byte(huge)}))
	wantCode(t, "GetTrace(foreign tenant)", err, connect.CodePermissionDenied, "")
	// Allowed calls that fail: the reason echoes the request.
	own := s.clients("connect", "acme", s.key(t, policy.ComplianceOfficer, "acme"))
	_, err = own.retention.GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: huge}))
	wantCode(t, "GetErasure(huge id)", err, connect.CodeNotFound, "")
	_, err = own.retention.ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: huge[:900], Reason: "r"}))
	wantCode(t, "ReleaseHold(unknown)", err, connect.CodeNotFound, "")
	adm := s.clients("connect", "", s.key(t, policy.Admin, policy.AllTenants))
	_, err = adm.admin.RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: huge}))
	wantCode(t, "RevokeKey(huge id)", err, connect.CodeInvalidArgument, "id")
	_, err = adm.admin.CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Name: huge}))
	wantCode(t, "CreateTenant(huge name)", err, connect.CodeInvalidArgument, "name")

	all := s.allAccessRecords(t)
	if len(all["globex"]) == 0 || len(all["system"]) == 0 || len(all["acme"]) == 0 {
		t.Fatalf("expected records in globex, system and acme; got %d, %d, %d", len(all["globex"]), len(all["system"]), len(all["acme"]))
	}
	for tenant, rs := range all {
		for i, r := range rs {
			if n := proto.Size(r); n > accessRecordLimit {
				t.Errorf("%s access record %d is %d bytes (target %d, reason %d bytes), want at most %d", tenant, i, n, len(r.GetTarget()), len(r.GetReason()), accessRecordLimit)
			}
			for name, v := range map[string]string{"target": r.GetTarget(), "reason": r.GetReason(), "peer": r.GetPeer(), "tenant": r.GetTenant(), "key_id": r.GetKeyId()} {
				if at := strings.IndexFunc(v, unicode.IsControl); at >= 0 {
					t.Errorf("%s access record %d: %s holds a control character at %d: %.80q", tenant, i, name, at, v)
				}
			}
		}
	}
}

// TestMalformedTenantHeader: a request whose Veritrace-Tenant header is
// not a tenant name is refused with invalid_argument and leaves no record,
// with or without a valid key.
func TestMalformedTenantHeader(t *testing.T) {
	s := startServer(t, 0)
	ctx := context.Background()
	token := s.key(t, policy.Auditor, policy.AllTenants)
	before := countRecords(s.allAccessRecords(t))
	for _, tenant := range []string{"Not A Tenant", strings.Repeat("x", 5000), "../system", "a\tb"} {
		for name, tok := range map[string]string{"valid key": token, "no key": "", "bad key": "vtk_0123"} {
			c := s.clients("connect", "", tok)
			req := connect.NewRequest(&v1.GetEntryRequest{})
			req.Header().Set(TenantHeader, tenant)
			_, err := c.ledger.GetEntry(ctx, req)
			wantCode(t, "GetEntry(tenant "+tenant[:min(len(tenant), 20)]+", "+name+")", err, connect.CodeInvalidArgument, TenantHeader)
		}
	}
	if after := countRecords(s.allAccessRecords(t)); after != before {
		t.Errorf("malformed tenant headers left %d access records, want none", after-before)
	}
}

// clock is a test clock that moves only when told.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestRefusalsCoalesced: a client hammering the server with refused
// requests (a wrong secret, then a key of another tenant) leaves one record
// per burst until the burst's summary is due, and every refusal is
// accounted for in the log once the summaries are written.
func TestRefusalsCoalesced(t *testing.T) {
	clk := newClock()
	s := startServerWith(t, Options{RefusalPeriod: time.Hour, Now: clk.now})
	ctx := context.Background()
	s.tenant(t, "acme")
	s.tenant(t, "globex")
	ing := s.key(t, policy.Ingester, "acme")
	ingID, _, _ := parseToken(ing)
	wrong := ing[:len(ing)-43] + strings.Repeat("A", 43)
	before := s.allAccessRecords(t)
	const n = 100
	codes := map[connect.Code]int{}
	for i := 0; i < n; i++ {
		_, err := s.clients("connect", "acme", wrong).ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: uint64(i)}))
		codes[connect.CodeOf(err)]++
		_, err = s.clients("grpc", "globex", ing).ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: uint64(i)}))
		codes[connect.CodeOf(err)]++
	}
	// The clock does not move: the peer has its burst of failed
	// authentications, then is told to slow down.
	want := map[connect.Code]int{connect.CodeUnauthenticated: DefaultAuthFailureBurst, connect.CodeResourceExhausted: n - DefaultAuthFailureBurst, connect.CodePermissionDenied: n}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("answers = %v, want %v", codes, want)
	}
	after := s.allAccessRecords(t)
	if got := countRecords(after) - countRecords(before); got != 2 {
		t.Errorf("%d refused requests wrote %d access records before any summary was due, want 2 (each burst's first)", 2*n, got)
	}
	if err := s.h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	final := s.allAccessRecords(t)
	var summaries []string
	accounted := 0
	for tenant, rs := range final {
		for _, r := range rs[len(before[tenant]):] {
			sum := r.GetSummary()
			if sum == nil {
				accounted++
				continue
			}
			accounted += int(sum.GetCount())
			summaries = append(summaries, fmt.Sprintf("%s: %d from %v key %q role %s codes %v procedures %v tenants %v peer %s keys %v targets %v and %d more",
				tenant, sum.GetCount(), sum.GetPeers(), r.GetKeyId(), r.GetRole(), sum.GetCodes(), sum.GetProcedures(), sum.GetTenants(), r.GetPeer(),
				sum.GetKeyIds(), sum.GetTargets(), sum.GetOtherTargets()))
			if r.GetOutcome() != v1.AccessOutcome_ACCESS_OUTCOME_DENIED || !sum.GetFirstTime().AsTime().Equal(clk.now()) || !sum.GetLastTime().AsTime().Equal(clk.now()) {
				t.Errorf("summary %v: want outcome denied, first and last time %v", r, clk.now())
			}
		}
	}
	slices.Sort(summaries)
	id := fmt.Sprintf("%x", ingID)
	// The key is not bound to globex, so its refusals there are the
	// peer's, the summary naming the key; a wrong secret proves no key.
	wantSummaries := []string{
		"globex: 99 from [127.0.0.1] key \"\" role ROLE_UNSPECIFIED codes [permission_denied] procedures [/veritrace.v1.LedgerService/GetEntry] tenants [globex] peer 127.0.0.1" +
			" keys [" + id + "] targets [entry 1 entry 2 entry 3 entry 4 entry 5 entry 6 entry 7 entry 8] and 91 more",
		"system: 99 from [127.0.0.1] key \"\" role ROLE_UNSPECIFIED codes [resource_exhausted unauthenticated] procedures [/veritrace.v1.LedgerService/GetEntry] tenants [] peer 127.0.0.1" +
			" keys [] targets [] and 0 more",
	}
	if diff := cmp.Diff(wantSummaries, summaries); diff != "" {
		t.Errorf("summaries (-want +got):\n%s", diff)
	}
	if accounted != 2*n {
		t.Errorf("the access logs account for %d refusals, want %d", accounted, 2*n)
	}
}

// TestUnauthenticatedRateLimited: a peer that keeps failing
// authentication is told to slow down, with a hint of when to retry, over
// Connect and gRPC; it regains tries as time passes; a valid key from the
// same peer is served throughout.
func TestUnauthenticatedRateLimited(t *testing.T) {
	clk := newClock()
	s := startServerWith(t, Options{Now: clk.now})
	ctx := context.Background()
	token := s.key(t, policy.Auditor, "default")
	bad := "vtk_0123456789abcdef_" + strings.Repeat("A", 43)
	try := func(protocol string) error {
		_, err := s.clients(protocol, "", bad).ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{}))
		return err
	}
	for i := 0; i < DefaultAuthFailureBurst; i++ {
		wantCode(t, fmt.Sprintf("failure %d", i), try("connect"), connect.CodeUnauthenticated, "invalid API key")
	}
	for _, protocol := range []string{"connect", "grpc"} {
		err := try(protocol)
		wantCode(t, protocol+" failure over the burst", err, connect.CodeResourceExhausted, "retry in 1s")
		var ce *connect.Error
		if !errors.As(err, &ce) {
			continue
		}
		if got := ce.Meta().Get("Retry-After"); got != "1" {
			t.Errorf("%s: Retry-After %q, want 1", protocol, got)
		}
		var delay time.Duration
		for _, d := range ce.Details() {
			if m, err := d.Value(); err == nil {
				if ri, ok := m.(*errdetails.RetryInfo); ok {
					delay = ri.GetRetryDelay().AsDuration()
				}
			}
		}
		if delay != time.Second {
			t.Errorf("%s: RetryInfo delay %v, want 1s", protocol, delay)
		}
	}
	if _, err := s.clients("connect", "", token).ledger.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{})); err != nil {
		t.Errorf("a valid key from the throttled peer: %v", err)
	}
	clk.advance(3 * time.Second) // three more tries
	for i := 0; i < 3; i++ {
		wantCode(t, fmt.Sprintf("failure %d after 3s", i), try("grpc"), connect.CodeUnauthenticated, "invalid API key")
	}
	wantCode(t, "fourth failure after 3s", try("grpc"), connect.CodeResourceExhausted, "retry in")
}

// TestRefusalSummaryEachPeriod: the server writes a burst's summary when
// its period ends, without being closed.
func TestRefusalSummaryEachPeriod(t *testing.T) {
	// A period long enough that the three refusals fall in one burst even
	// on a loaded machine; the summary is still written at the period's end,
	// with no later request to trigger it.
	s := startServerWith(t, Options{RefusalPeriod: time.Second})
	ctx := context.Background()
	s.tenant(t, "acme")
	c := s.clients("connect", "acme", s.key(t, policy.Ingester, "acme"))
	for i := 0; i < 3; i++ {
		_, err := c.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{}))
		wantCode(t, "GetEntry(ingester)", err, connect.CodePermissionDenied, "")
	}
	// Every refusal is accounted for, in a full record or a summary's count,
	// and the burst's later refusals are summarised.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rs := s.accessRecords(t, "acme")
		full, summarised := 0, uint64(0)
		for _, r := range rs {
			if sum := r.GetSummary(); sum != nil {
				summarised += sum.GetCount()
			} else {
				full++
			}
		}
		if summarised > 0 && uint64(full)+summarised == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the three refusals are not all in full records and summaries (%d full, %d summarised): %v", full, summarised, rs)
		}
	}
}
