package retention

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

const sessionField = 2

func TestCheck(t *testing.T) {
	base := DefaultPolicy()
	yes := true
	locked := Policy{FloorDays: 1, Default: Rule{Class: DefaultClass, Days: 200, Mode: Governance},
		Rules: []Rule{{Class: "errors", Days: 400, Mode: Compliance, Match: Match{Errors: &yes}}}}
	tests := []struct {
		name      string
		old, next Policy
		reason    string
		want      error
	}{
		{"ok", base, locked, "", nil},
		{"below floor", base, Policy{FloorDays: 30, Default: Rule{Class: DefaultClass, Days: 10, Mode: Governance}}, "", ErrBelowFloor},
		{"high risk floor", base, Policy{HighRisk: true, FloorDays: 1, Default: Rule{Class: DefaultClass, Days: 90, Mode: Governance}}, "x", ErrBelowFloor},
		{"shorten compliance", locked, func() Policy { p := locked; p.Rules = []Rule{{Class: "errors", Days: 300, Mode: Compliance}}; return p }(), "x", ErrLocked},
		{"remove compliance", locked, Policy{FloorDays: 1, Default: locked.Default}, "x", ErrLocked},
		{"compliance to governance", locked, func() Policy { p := locked; p.Rules = []Rule{{Class: "errors", Days: 500, Mode: Governance}}; return p }(), "x", ErrLocked},
		{"extend compliance", locked, func() Policy { p := locked; p.Rules = []Rule{{Class: "errors", Days: 500, Mode: Compliance}}; return p }(), "", nil},
		{"shorten governance without reason", locked, func() Policy { p := locked; p.Default.Days = 100; return p }(), "", ErrNoReason},
		{"shorten governance with reason", locked, func() Policy { p := locked; p.Default.Days = 100; return p }(), "DPO decision 2026-11", nil},
		{"reserved class", base, Policy{FloorDays: 1, Default: base.Default, Rules: []Rule{{Class: "access", Days: 200, Mode: Governance}}}, "", ErrBadPolicy},
		{"bad mode", base, Policy{FloorDays: 1, Default: Rule{Class: DefaultClass, Days: 200, Mode: "forever"}}, "", ErrBadPolicy},
	}
	for _, tt := range tests {
		if err := Check(&tt.old, &tt.next, tt.reason); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("Check(%s) = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	yes := true
	p := Policy{Default: Rule{Class: DefaultClass, Days: 30}, Rules: []Rule{
		{Class: "errors", Days: 90, Match: Match{Errors: &yes}},
		{Class: "tools", Days: 60, Match: Match{Kinds: []uint8{4}}},
		{Class: "eu", Days: 365, Match: Match{Attributes: map[string]string{"region": "eu"}}},
	}}
	for _, tt := range []struct {
		f    SpanFacts
		want string
	}{
		{SpanFacts{Kind: 1}, "default"},
		{SpanFacts{Kind: 4, Error: true}, "errors"},
		{SpanFacts{Kind: 4}, "tools"},
		{SpanFacts{Kind: 1, Attributes: map[string]string{"region": "eu"}}, "eu"},
	} {
		if got := p.Classify(tt.f); got != tt.want {
			t.Errorf("Classify(%+v) = %s, want %s", tt.f, got, tt.want)
		}
	}
	if d, ok := p.Days("versions"); ok {
		t.Errorf("versions expire after %d days", d)
	}
}

// clock is a settable clock shared by the ledger and the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	dir   string
	clock *clock
	l     *ledger.Ledger
	s     *Service
	keys  *ledger.Keys
}

func newEnv(t *testing.T) *env { return newEnvB(t) }

func newEnvB(t testing.TB) *env {
	e := &env{dir: t.TempDir(), clock: &clock{t: time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)}}
	var err error
	if e.keys, _, err = ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: e.dir}); err != nil {
		t.Fatal(err)
	}
	e.open(t)
	return e
}

func (e *env) open(t testing.TB) {
	t.Helper()
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: e.dir, Keys: e.keys, Logger: slog.New(slog.DiscardHandler), Now: e.clock.Now, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.l = l
	e.s = &Service{L: l, SessionField: sessionField, Now: e.clock.Now, Log: slog.New(slog.DiscardHandler)}
	t.Cleanup(func() { l.Close() })
}

var spanSeq int

// spans appends n spans of a subject and session in one trace; class "" is
// the policy's.
func (e *env) spans(t *testing.T, subject, session string, trace byte, n int, errorSpans bool, marker string) []uint64 {
	t.Helper()
	ctx := context.Background()
	var recs []ledger.Record
	for i := 0; i < n; i++ {
		spanSeq++
		class, _ := e.s.ClassOf(ctx, "default", SpanFacts{Kind: 1, Error: errorSpans})
		r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: subject, RetentionClass: class,
			Payload: []byte(fmt.Sprintf("%s %s span %d", marker, subject, spanSeq))}
		r.TraceID[0], r.TraceID[15] = trace, 1
		r.SpanID[0], r.SpanID[7] = byte(spanSeq>>8), byte(spanSeq)
		if session != "" {
			r.Terms = []ledger.Term{{Field: sessionField, Value: []byte(session)}}
		}
		recs = append(recs, r)
	}
	rs, err := e.l.Append(ctx, "default", recs)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, r := range rs {
		out = append(out, r.Index)
	}
	return out
}

func (e *env) erased(t *testing.T, idxs []uint64) []bool {
	t.Helper()
	var out []bool
	for _, i := range idxs {
		en, err := e.l.GetEntry(context.Background(), "default", i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, en.Erased)
	}
	return out
}

func (e *env) verify(t *testing.T) {
	t.Helper()
	e.l.Close()
	res, err := ledger.VerifyDir(context.Background(), e.dir, e.keys.Master, e.l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if len(r.Problems) > 0 {
			t.Fatalf("the ledger does not verify: %v", r.Problems)
		}
	}
	e.open(t)
}

func TestEraseSubjectWithHold(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	alice1 := e.spans(t, "alice", "s1", 1, 3, false, "MARK-A1")
	bob := e.spans(t, "bob", "s2", 2, 2, false, "bob")
	alice2 := e.spans(t, "alice", "s3", 3, 2, false, "MARK-A2")
	// A legal hold on alice's second trace.
	hold, _, err := e.s.PlaceHold(ctx, "default", HoldScope{TraceID: "03000000000000000000000000000001"}, "CASE-7", "litigation", "co-key")
	if err != nil {
		t.Fatal(err)
	}

	req := ErasureRequest{ID: "req-1", Subject: "alice", LegalBasis: "GDPR Art. 17(1)(a)", Ticket: "DSR-42", Reason: "subject request", RequestedBy: "co-key", DryRun: true}
	plan, err := e.s.Erase(ctx, "default", req)
	if err != nil {
		t.Fatal(err)
	}
	if plan.State != "dry-run" || fmt.Sprint(plan.Erase) != fmt.Sprint(alice1) || len(plan.Held) != 2 || plan.Held[0].CaseRef != "CASE-7" {
		t.Fatalf("dry run = %+v", plan)
	}
	if got := e.erased(t, alice1); fmt.Sprint(got) != "[false false false]" {
		t.Fatalf("a dry run erased something: %v", got)
	}

	req.DryRun = false
	er, err := e.s.Erase(ctx, "default", req)
	if err != nil {
		t.Fatal(err)
	}
	if er.State != "done" || er.Tombstone == nil {
		t.Fatalf("Erase() = %+v", er)
	}
	if got := e.erased(t, alice1); fmt.Sprint(got) != "[true true true]" {
		t.Errorf("alice's first trace erased = %v", got)
	}
	if got := e.erased(t, append(alice2, bob...)); fmt.Sprint(got) != "[false false false false]" {
		t.Errorf("held and other entries erased = %v", got)
	}
	en, _ := e.l.GetEntry(ctx, "default", alice1[0])
	if en.ErasedBy == nil || *en.ErasedBy != *er.Tombstone {
		t.Errorf("entry %d: ErasedBy = %v, want %d", alice1[0], en.ErasedBy, *er.Tombstone)
	}
	// The tombstone names the erased entries and the held ones.
	tsEntry, err := e.l.GetEntry(ctx, "default", *er.Tombstone)
	if err != nil || tsEntry.Header.Kind != format.KindTombstone {
		t.Fatalf("tombstone entry: %v, %v", tsEntry, err)
	}
	var ts format.Tombstone
	json.Unmarshal(tsEntry.Payload, &ts)
	if len(ts.Erased) != 3 || len(ts.Held) != 2 || ts.Held[0].HoldID != hold.ID || strings.Contains(string(tsEntry.Payload), "alice") {
		t.Errorf("tombstone = %s", tsEntry.Payload)
	}
	// The receipt is signed by the log key.
	v, _ := note.NewVerifier(e.l.VerifierKey())
	n, err := note.Open([]byte(er.ReceiptSig), note.VerifierList(v))
	if err != nil {
		t.Fatalf("receipt signature: %v", err)
	}
	if n.Text != format.ReceiptSignatureBody(e.l.Origin("default"), sha256.Sum256(er.Receipt)) {
		t.Errorf("receipt signature body = %q", n.Text)
	}
	if parts := receiptTombstones(t, e, er); len(parts) != 1 {
		t.Errorf("the receipt names %d tombstones, want 1", len(parts))
	}
	// Idempotent by request id; status can be fetched.
	again, err := e.s.Erase(ctx, "default", req)
	if err != nil || string(again.Receipt) != string(er.Receipt) {
		t.Errorf("Erase(same id) = %v, %v; want the first outcome", again, err)
	}
	if st, err := e.s.ErasureStatus(ctx, "default", "req-1"); err != nil || st.State != "done" {
		t.Errorf("ErasureStatus = %v, %v", st, err)
	}
	// Releasing the hold and erasing again erases the rest.
	if _, _, err := e.s.ReleaseHold(ctx, "default", hold.ID, "case closed", "co-key"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "req-2", Subject: "alice", LegalBasis: "GDPR Art. 17", Reason: "hold released"}); err != nil {
		t.Fatal(err)
	}
	if got := e.erased(t, alice2); fmt.Sprint(got) != "[true true]" {
		t.Errorf("after release: %v", got)
	}
	// Errors.
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "req-3", Subject: "alice", LegalBasis: "x", Reason: "y"}); !errors.Is(err, ErrNothingToErase) {
		t.Errorf("Erase(erased subject) = %v, want ErrNothingToErase", err)
	}
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "req-4", Subject: "nobody", LegalBasis: "x", Reason: "y"}); !errors.Is(err, ErrNothingToErase) {
		t.Errorf("Erase(unknown subject) = %v, want ErrNothingToErase", err)
	}
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "req-5", Subject: "bob", LegalBasis: "x"}); !errors.Is(err, ErrNoReason) {
		t.Errorf("Erase(no reason) = %v, want ErrNoReason", err)
	}
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "bad id!", Subject: "bob", LegalBasis: "x", Reason: "y"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Erase(bad id) = %v, want ErrInvalid", err)
	}
	e.verify(t)
}

func TestEraseSessionKeepsTheSubjectsOtherSessions(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s1 := e.spans(t, "dora", "s1", 1, 2, false, "x")
	s2 := e.spans(t, "dora", "s2", 2, 2, false, "x")
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "r", Session: "s1", LegalBasis: "GDPR Art. 17", Reason: "session"}); err != nil {
		t.Fatal(err)
	}
	if got := e.erased(t, append(s1, s2...)); fmt.Sprint(got) != "[true true false false]" {
		t.Errorf("erased = %v", got)
	}
	en, _ := e.l.GetEntry(ctx, "default", s2[0])
	if !strings.Contains(string(en.Payload), "dora") {
		t.Errorf("the other session's payload is gone: %q", en.Payload)
	}
	e.verify(t)
}

func TestSweepWithInjectedClock(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	yes := true
	p := Policy{FloorDays: 30, Default: Rule{Class: DefaultClass, Days: 60, Mode: Governance},
		Rules: []Rule{{Class: "errors", Days: 90, Mode: Compliance, Match: Match{Errors: &yes}}}}
	if _, _, err := e.s.SetPolicy(ctx, "default", p, "co-key", "data minimisation review 2026-01"); err != nil {
		t.Fatal(err)
	}
	normal := e.spans(t, "erin", "s", 1, 2, false, "n")
	errs := e.spans(t, "erin", "s", 2, 2, true, "e")
	held := e.spans(t, "", "", 3, 1, false, "held")
	if _, _, err := e.s.PlaceHold(ctx, "default", HoldScope{TraceID: "03000000000000000000000000000001"}, "CASE-1", "audit", "co"); err != nil {
		t.Fatal(err)
	}
	all := append(append(append([]uint64{}, normal...), errs...), held...)

	e.clock.Add(59 * Day)
	if r, err := e.s.Sweep(ctx, "default"); err != nil || r.Erased != 0 {
		t.Fatalf("sweep at day 59 = %+v, %v", r, err)
	}
	e.clock.Add(2 * Day) // day 61: the default class has expired
	r, err := e.s.Sweep(ctx, "default")
	if err != nil || r.Erased != 2 || r.Tombstone == nil || r.Held != 1 {
		t.Fatalf("sweep at day 61 = %+v, %v", r, err)
	}
	if got := e.erased(t, all); fmt.Sprint(got) != "[true true false false false]" {
		t.Errorf("after day 61: %v", got)
	}
	e.clock.Add(30 * Day) // day 91: errors expire too; the hold keeps its entry
	if r, err := e.s.Sweep(ctx, "default"); err != nil || r.Erased != 2 {
		t.Fatalf("sweep at day 91 = %+v, %v", r, err)
	}
	if got := e.erased(t, all); fmt.Sprint(got) != "[true true true true false]" {
		t.Errorf("after day 91: %v", got)
	}
	// A second sweep finds nothing new and does not churn the held key.
	if r, err := e.s.Sweep(ctx, "default"); err != nil || r.Erased != 0 || r.Tombstone != nil {
		t.Errorf("sweep again = %+v, %v", r, err)
	}
	// Compliance mode cannot be shortened, nor the floor undercut.
	p.Revision, p.Rules[0].Days = 1, 60
	if _, _, err := e.s.SetPolicy(ctx, "default", p, "co-key", "cheaper"); !errors.Is(err, ErrLocked) {
		t.Errorf("SetPolicy(shorten compliance) = %v, want ErrLocked", err)
	}
	e.verify(t)
}

func TestResumeAfterCrash(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	idxs := e.spans(t, "fay", "s", 1, 3, false, "x")
	testHookAfterShred = func() error { return errors.New("simulated crash") }
	_, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "crash", Subject: "fay", LegalBasis: "GDPR Art. 17", Reason: "r"})
	testHookAfterShred = nil
	if err == nil {
		t.Fatal("the simulated crash did not interrupt the erasure")
	}
	st, _ := e.s.ErasureStatus(ctx, "default", "crash")
	if st.State != "executing" {
		t.Fatalf("state after the crash = %s", st.State)
	}
	e.l.Close()
	e.open(t)
	if err := e.s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = e.s.ErasureStatus(ctx, "default", "crash")
	if err != nil || st.State != "done" || st.Tombstone == nil || st.ReceiptSig == "" {
		t.Fatalf("after Resume: %+v, %v", st, err)
	}
	if got := e.erased(t, idxs); fmt.Sprint(got) != "[true true true]" {
		t.Errorf("after Resume: %v", got)
	}
	e.verify(t)
}

// TestBackupCannotRevealErasedPayloads takes a copy of the data directory
// before an erasure, then pairs the old log with the current key store.
func TestBackupCannotRevealErasedPayloads(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	idxs := e.spans(t, "gus", "s", 1, 3, false, "UNIQUE-MARKER-7f3a")
	e.spans(t, "hal", "s", 2, 1, false, "other")
	e.l.Close()
	backup := t.TempDir()
	copyDir(t, e.dir, backup)
	e.open(t)
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "g", Subject: "gus", LegalBasis: "GDPR Art. 17", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	e.l.Close()
	// The marker is in no file, before or after (payloads are sealed).
	for _, d := range []string{e.dir, backup} {
		filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				b, _ := os.ReadFile(p)
				if bytes.Contains(b, []byte("UNIQUE-MARKER-7f3a")) || bytes.Contains(b, []byte("gus")) {
					t.Errorf("%s holds the subject's data in the clear", p)
				}
			}
			return nil
		})
	}
	// The old log with today's key store: the old ciphertext does not open.
	os.RemoveAll(filepath.Join(backup, ledger.KeyDir))
	copyDir(t, filepath.Join(e.dir, ledger.KeyDir), filepath.Join(backup, ledger.KeyDir))
	l, err := ledger.Open(ctx, ledger.Options{Dir: backup, Keys: e.keys, Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, i := range idxs {
		en, err := l.GetEntry(ctx, "default", i)
		if err != nil || !en.Erased || en.Payload != nil {
			t.Errorf("backup entry %d: erased=%v payload=%q err=%v", i, en.Erased, en.Payload, err)
		}
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode())
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
